"""arc_sandbox: run LLM-written ARC programs safely and fast, and score what they produce."""
from .scoring.augment import Augmentation, random_augmentation
from .scoring.compare import Comparison, compare
from .executor.extract import extract_code
from .executor.grids import GridError, as_grid, is_grid
from .executor.hardening import Isolation, IsolationError, Layer, LayerStatus
from .executor.limits import Limits
from .scoring.loading import load_tasks
from .scoring.metrics import (MetricsTable, PartitionScore, TaskScore, aggregate, distinct_grids, fingerprint, pass_at_k,
                      score_outputs)
from .executor.results import AllocSite, Job, ProgramResult, Status
from .executor.pool import Sandbox, SandboxError, SandboxStats, run_program
from .diagnostics.memory import MemoryReport, trace_allocations
from .scoring.submission import build_submission, score_submission, validate_submission, write_submission
from .scoring.tasks import Pair, Task

__all__ = [
    "GridError", "Isolation", "IsolationError", "Job", "Layer", "LayerStatus", "Limits", "Pair", "ProgramResult", "Sandbox", "SandboxError", "SandboxStats", "Status",
    "Task", "as_grid", "extract_code", "is_grid", "run_program",
    "Augmentation", "Comparison", "MetricsTable", "PartitionScore", "TaskScore", "aggregate", "build_submission",
    "compare", "distinct_grids", "fingerprint", "load_tasks", "pass_at_k", "random_augmentation", "score_outputs",
    "score_submission", "validate_submission", "write_submission",
    "AllocSite", "MemoryReport", "trace_allocations",
]
__version__ = "0.1.0"
