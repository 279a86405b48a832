"""Testing helpers: hypothesis strategies for grids, tasks, augmentations and program results.

May import: ``arc_sandbox.scoring`` and ``arc_sandbox.executor`` (and hypothesis, which only tests need).
"""
from arc_sandbox._lazy import lazy_exports

__all__ = [
    "augmentations", "grids", "program_results", "result_with_outputs", "task_and_result", "tasks",
]

__getattr__, __dir__ = lazy_exports(globals(), {
    "arc_sandbox.testing.strategies": ("augmentations", "grids", "program_results", "result_with_outputs",
                                       "task_and_result", "tasks"),
})
