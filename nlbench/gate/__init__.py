"""``nlbench gate``: a regression gate on cost (exact counts) and time (significant and
beyond a threshold) for a pull request, validated on a noisy 2-core machine.

Layout: :mod:`~nlbench.gate.model` (the values), :mod:`~nlbench.gate.statistics`
(Hodges-Lehmann, Mann-Whitney, Holm), :mod:`~nlbench.gate.compare` (the decision),
:mod:`~nlbench.gate.inputs` and :mod:`~nlbench.gate.pytest_benchmark` (what is
compared), :mod:`~nlbench.gate.paired` and :mod:`~nlbench.gate.worktree` (two trees
measured in interleaved rounds), :mod:`~nlbench.gate.output` (table, markdown, JSON),
:mod:`~nlbench.gate.commands` (the three modes)."""
