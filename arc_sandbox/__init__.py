"""arc_sandbox: run LLM-written ARC programs safely and fast, and score what they produce."""
from .augment import Augmentation, random_augmentation
from .compare import Comparison, compare
from .extract import extract_code
from .grids import GridError, as_grid, is_grid
from .hardening import Isolation, IsolationError, Layer, LayerStatus
from .limits import Limits
from .loading import load_tasks
from .metrics import (MetricsTable, PartitionScore, TaskScore, aggregate, distinct_grids, fingerprint, pass_at_k,
                      score_outputs)
from .results import AllocSite, Job, ProgramResult, Status
from .sandbox import Sandbox, SandboxError, SandboxStats, run_program
from .diagnose import MemoryReport, trace_allocations
from .submission import build_submission, score_submission, validate_submission, write_submission
from .tasks import Pair, Task

__all__ = [
    "GridError", "Isolation", "IsolationError", "Job", "Layer", "LayerStatus", "Limits", "Pair", "ProgramResult", "Sandbox", "SandboxError", "SandboxStats", "Status",
    "Task", "as_grid", "extract_code", "is_grid", "run_program",
    "Augmentation", "Comparison", "MetricsTable", "PartitionScore", "TaskScore", "aggregate", "build_submission",
    "compare", "distinct_grids", "fingerprint", "load_tasks", "pass_at_k", "random_augmentation", "score_outputs",
    "score_submission", "validate_submission", "write_submission",
    "AllocSite", "MemoryReport", "trace_allocations",
    "RaySandbox", "RaySandboxStats",
]
_DISTRIBUTED = ("RaySandbox", "RaySandboxStats")


def __getattr__(name: str):
    """``RaySandbox`` is loaded on first use, so that importing arc_sandbox never imports its layer (or Ray)."""
    if name in _DISTRIBUTED:
        from . import distributed
        return getattr(distributed, name)
    raise AttributeError(f"module 'arc_sandbox' has no attribute {name!r}")


__version__ = "0.1.0"
