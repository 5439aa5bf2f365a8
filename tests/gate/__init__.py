"""Tests of nlbench.gate (a package, so its module names cannot clash with same-named
test files elsewhere under tests/)."""
