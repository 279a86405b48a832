"""Jobs in, typed results out."""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np


class Status(str, enum.Enum):
    """What happened to a program (or to one of its grids).

    The string values are stable: they are written to result files.
    """

    OK = "ok"                          # every input produced a valid grid
    NO_CODE = "no_code"                # no program in the text (or a truncated ```python fence)
    SYNTAX_ERROR = "syntax_error"
    MISSING_ENTRY = "missing_entry"    # no transform / main / named entry function
    RUNTIME_ERROR = "runtime_error"    # the program raised; see error_type
    TIMEOUT = "timeout"
    MEMORY_LIMIT = "memory_limit"      # the program hit its memory limit (or the host memory guard)
    INVALID_OUTPUT = "invalid_output"  # returned something that is not a valid grid
    CRASHED = "crashed"                # the worker process died (signal, os._exit, closed pipes...)
    INVALID_JOB = "invalid_job"        # the job itself was malformed (not a string, inputs not grids)
    # The infrastructure failed, not the program: the machine (a RaySandbox node or its actor) running the job
    # was lost on every attempt, or no machine was left to run it. Says nothing about the program.
    INFRA_ERROR = "infra_error"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Job:
    """One program to run on some input grids.

    ``text`` is code or a whole LLM response (the first ```python block is used).
    ``entry`` names the function to call when it is neither ``transform`` nor ``main``.
    ``key`` is carried through to the result untouched (a task id, a sample index...).
    """

    text: str
    inputs: Sequence[Any]
    entry: str | None = None
    key: Any = None
    trace_memory: bool = False   # run under tracemalloc and report alloc_sites (slower: for diagnosis)


def as_job(item: Any) -> Job:
    """``item`` itself if it is a Job, else a Job from a ``(text, inputs[, entry])`` tuple."""
    if isinstance(item, Job):
        return item
    if isinstance(item, tuple) and len(item) in (2, 3):
        return Job(*item)
    raise TypeError(f"expected a Job or a (text, inputs) pair, got {type(item).__name__}")


@dataclass(frozen=True)
class AllocSite:
    """A line of the program and the memory its allocations held at the traced peak."""

    line: int
    size_mb: float
    text: str
    # The MemoryError left the program on this line. numpy counts a failed array at the size it
    # asked for, so then size_mb may include memory never obtained.
    failed: bool = False


@dataclass
class ProgramResult:
    """Everything known about one program's run. One per job, always."""

    status: Status
    outputs: list[np.ndarray | None]          # one per input; None where that grid failed
    grid_statuses: list[Status]               # one per input
    error_type: str | None = None             # e.g. "ZeroDivisionError", "SIGSEGV"
    error_message: str | None = None          # bounded traceback tail / reason
    stdout: str = ""                          # bounded captured print() output
    wall_s: float = 0.0
    cpu_s: float = 0.0
    peak_memory_mb: float = 0.0               # this program's own peak RSS above the worker baseline
    code: str = ""                            # the code that was run (after extraction)
    index: int = -1                           # position of the job in its batch
    key: Any = None                           # Job.key
    worker_replaced: bool = False             # the worker was replaced after this program (and why below)
    notes: list[str] = field(default_factory=list)
    alloc_sites: list[AllocSite] = field(default_factory=list)   # largest first; only for Job.trace_memory

    @property
    def ok(self) -> bool:
        return self.status is Status.OK
