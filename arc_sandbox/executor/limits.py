"""Resource limits applied to every program the sandbox runs."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """Per-program limits.

    ``timeout_s`` covers one program's run on *all* its inputs (wall clock, enforced from
    outside the worker; sub-second values work). ``memory_mb`` is what the program may use on
    top of the worker's own baseline (numpy, ``common`` and the interpreter), so a limit of
    64 MB really means 64 MB for the program.

    Inputs and outputs have separate size bounds: ARC outputs never exceed 30x30, but synthetic
    data does have larger inputs (BARC's has 32x32 and 44x44), and such a job should run.
    """

    timeout_s: float = 1.0
    memory_mb: float = 512
    seed: int | None = 0            # random / numpy.random seeded before each input grid; None: not seeded
    max_grid_side: int = 30         # outputs with a side above this are INVALID_OUTPUT
    max_input_side: int = 100       # inputs with a side above this make the job INVALID_JOB (BARC has 44x44)
    max_input_cells: int = 250_000  # ... and so do inputs of more cells than this, all grids together
    max_stdout_bytes: int = 4096    # captured print() output kept per program
    max_error_chars: int = 2000     # traceback tail kept per program
    measure_memory: bool = True     # per-program peak RSS (two small /proc operations per program)
    kill_grace_s: float = 0.25      # hard kill this long after the soft (in-worker) deadline
    max_programs_per_worker: int = 5000   # recycle workers now and then, whatever they look like

    def __post_init__(self) -> None:
        for name in ("timeout_s", "memory_mb", "kill_grace_s"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
                raise ValueError(f"Limits.{name} must be a positive number, got {value!r}")
        for name in ("max_grid_side", "max_input_side", "max_input_cells", "max_stdout_bytes", "max_error_chars",
                     "max_programs_per_worker"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"Limits.{name} must be a positive integer, got {value!r}")
        if self.seed is not None and (not isinstance(self.seed, int) or self.seed < 0):
            raise ValueError(f"Limits.seed must be a non-negative integer or None, got {self.seed!r}")
