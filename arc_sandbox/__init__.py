"""arc_sandbox: run LLM-written ARC programs safely and fast, and score what they produce.

Layers (each subpackage's docstring says what it owns and what it may import; see docs/architecture.md):
``executor`` (the pool, workers, isolation), ``dsl`` (BARC ``common``), ``scoring``, ``diagnostics``,
``cli`` and ``testing``. The public API below is imported lazily: ``from arc_sandbox import Sandbox``
loads the executor, not scoring or the CLI.
"""
from ._lazy import lazy_exports

__all__ = [
    "GridError", "Isolation", "IsolationError", "Job", "Layer", "LayerStatus", "Limits", "MAX_SIDE", "Pair",
    "ProgramResult", "Sandbox", "SandboxError", "SandboxStats", "Status", "Task", "as_grid", "extract_code",
    "has_fence", "is_grid", "run_program",
    "Augmentation", "Comparison", "MetricsTable", "PartitionScore", "TaskScore", "aggregate", "build_submission",
    "compare", "distinct_grids", "fingerprint", "load_tasks", "open_text", "partition_score", "pass_at_k",
    "random_augmentation", "score_many", "score_outputs", "score_submission", "score_tasks", "similarity_pairs",
    "validate_submission", "write_submission",
    "AllocSite", "MemoryReport", "trace_allocations",
    "RaySandbox", "RaySandboxStats",
]
__version__ = "0.1.0"

__getattr__, __dir__ = lazy_exports(globals(), {
    "arc_sandbox.executor.pool": ("Sandbox", "SandboxError", "SandboxStats", "run_program"),
    "arc_sandbox.executor.results": ("AllocSite", "Job", "ProgramResult", "Status"),
    "arc_sandbox.executor.limits": ("Limits",),
    "arc_sandbox.executor.hardening": ("Isolation", "IsolationError", "Layer", "LayerStatus"),
    "arc_sandbox.executor.extract": ("extract_code", "has_fence"),
    "arc_sandbox.executor.grids": ("GridError", "MAX_SIDE", "as_grid", "is_grid"),
    "arc_sandbox.dsl": ("common",),   # from arc_sandbox import common (docs/barc-common.md)
    "arc_sandbox.scoring.tasks": ("Pair", "Task"),
    "arc_sandbox.scoring.loading": ("load_tasks", "open_text"),
    "arc_sandbox.scoring.compare": ("Comparison", "compare", "similarity_pairs"),
    "arc_sandbox.scoring.metrics": ("MetricsTable", "PartitionScore", "TaskScore", "aggregate", "distinct_grids",
                                    "fingerprint", "partition_score", "pass_at_k", "score_many", "score_outputs",
                                    "score_tasks"),
    "arc_sandbox.scoring.augment": ("Augmentation", "random_augmentation"),
    "arc_sandbox.scoring.submission": ("build_submission", "score_submission", "validate_submission",
                                       "write_submission"),
    "arc_sandbox.diagnostics.memory": ("MemoryReport", "trace_allocations"),
    "arc_sandbox.distributed.ray_sandbox": ("RaySandbox", "RaySandboxStats"),
})
