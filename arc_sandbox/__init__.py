"""arc_sandbox: run LLM-written ARC programs safely and fast, and score what they produce."""
from .extract import extract_code
from .grids import GridError, as_grid, is_grid
from .limits import Limits
from .results import Job, ProgramResult, Status
from .sandbox import Sandbox, SandboxError, SandboxStats, run_program
from .tasks import Pair, Task

__all__ = [
    "GridError", "Job", "Limits", "Pair", "ProgramResult", "Sandbox", "SandboxError", "SandboxStats", "Status",
    "Task", "as_grid", "extract_code", "is_grid", "run_program",
]
__version__ = "0.1.0"
