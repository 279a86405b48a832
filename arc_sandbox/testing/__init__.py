"""Testing helpers: hypothesis strategies for grids, tasks, augmentations and program results.

May import: ``arc_sandbox.scoring`` and ``arc_sandbox.executor`` (and hypothesis, which only tests need).
"""
