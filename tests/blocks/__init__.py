"""Tests of nlbench.blocks (a package, so its module names, e.g. test_registry, cannot clash
with same-named test files elsewhere under tests/)."""
