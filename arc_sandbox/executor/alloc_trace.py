"""Where a program's memory went: allocation sites from ``tracemalloc``, at the program's peak.

Used in the worker when a job asks for ``trace_memory`` (a diagnostic re-run: tracing makes
allocation-heavy code ~15x slower and adds its own bookkeeping to the measured peak). ``tracemalloc``
knows the traced peak but not *where* it was reached, so the tracer keeps the snapshot taken
at the highest point it saw:

- whenever a function of the program returns (its locals still alive; a ``sys.settrace`` hook
  that skips line events and other code's frames), and every few milliseconds of CPU
  (``SIGPROF``, for long loops and C calls), the traced size is checked, and a snapshot taken
  when it reached a new high (by ``_GROWTH``);
- a ``MemoryError`` escaping the program's entry function triggers a snapshot too: the failing
  frames are still alive in its traceback, so the memory held at the failure is still traced.
  The line it left from is marked ``failed`` (numpy traces a failed array at its requested size).

Each traced block is charged to the innermost line of the program (file ``<program>``) on its
stack, so an allocation inside numpy or ``common`` counts for the program line that called it.
"""
from __future__ import annotations

import functools
import signal
import sys
import time
import tracemalloc
from typing import Any, Callable

from .results import AllocSite

PROGRAM_FILE = "<program>"
_FRAMES = 16             # deep enough to reach the program's line from inside numpy/scipy/common
_PERIOD_S = 0.005        # CPU seconds between checks of the traced size
_GROWTH = 1.1            # a new snapshot only when the traced size grew by 10 % since the last one
_SPACING = 4.0           # ... and 4x its cost after it: snapshots (~1 s per 1M blocks) take < 20 % of the time
_MIN_BYTES = 256 * 1024  # smaller programs are not worth a snapshot before the end


class AllocTracer:
    """Trace one program's allocations; ``stop`` returns its top sites as wire tuples."""

    def __init__(self, code: str, top: int = 10) -> None:
        self.lines = code.splitlines()
        self.top = top
        self.best: tracemalloc.Snapshot | None = None
        self.best_size = 0
        self.next_at = 0.0   # no periodic snapshot before this (perf_counter) time
        self.failed_line: int | None = None   # where a MemoryError left the program
        self._saved_handler: Any = None
        self._busy = False

    def start(self) -> None:
        """Call before the worker's guard is armed (``sys.settrace`` is an audited event)."""
        tracemalloc.start(_FRAMES)
        self._saved_handler = signal.signal(signal.SIGPROF, self._tick)
        signal.setitimer(signal.ITIMER_PROF, _PERIOD_S, _PERIOD_S)
        sys.settrace(self._on_call)

    def wrap(self, fn: Callable) -> Callable:
        """``fn`` with a snapshot taken when a MemoryError leaves it."""
        @functools.wraps(fn)
        def traced(*args):
            try:
                return fn(*args)
            except MemoryError as exc:
                self.failed_line = _program_line_of(exc.__traceback__)
                self.capture(force=True)
                raise
        return traced

    def capture(self, force: bool = False) -> None:
        """Snapshot now if the traced size is a new high (with ``force``: at least as high)."""
        size = tracemalloc.get_traced_memory()[0]
        if force:
            if size < self.best_size:
                return
        elif (size < _MIN_BYTES or size < self.best_size * _GROWTH
              or time.perf_counter() < self.next_at):
            return
        self.best = None   # one snapshot alive at a time
        started = time.perf_counter()
        try:
            self.best, self.best_size = tracemalloc.take_snapshot(), size
        except MemoryError:   # right at the limit: the sites stay unknown
            return
        now = time.perf_counter()
        self.next_at = now + _SPACING * (now - started)

    def stop(self) -> list[tuple[int, int, str, bool]]:
        """Stop tracing (after the guard is disarmed); return up to ``top`` (line, size_kb, source
        text, failed) of the program, largest first."""
        sys.settrace(None)
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, self._saved_handler)
        if self.best is None:
            self.capture(force=True)   # a small program: its sites at the end are all there is
        tracemalloc.stop()
        sites = self._sites()
        self.best = None
        return sites

    def _on_call(self, frame, event, arg):
        if frame.f_code.co_filename != PROGRAM_FILE:
            return None
        frame.f_trace_lines = False
        return self._on_return

    def _on_return(self, frame, event, arg):
        if event == "return":
            self._tick(0, frame)
        return self._on_return

    def _tick(self, signum, frame) -> None:
        if self._busy:   # a timer or a return inside our own (slow) snapshot
            return
        self._busy = True
        try:
            self.capture()
        except MemoryError:
            pass
        finally:
            self._busy = False

    def _sites(self) -> list[tuple[int, int, str, bool]]:
        if self.best is None:
            return []
        sizes: dict[int, int] = {}
        for stat in self.best.statistics("traceback"):   # one per distinct stack: few, fast
            line = _program_line(stat.traceback)
            if line is not None:
                sizes[line] = sizes.get(line, 0) + stat.size
        ranked = sorted(sizes.items(), key=lambda item: -item[1])[:self.top]
        return [(line, size // 1024, self._text(line), line == self.failed_line)
                for line, size in ranked if size >= 1024 or line == self.failed_line]

    def _text(self, line: int) -> str:
        return self.lines[line - 1].strip()[:200] if 0 < line <= len(self.lines) else ""


def _program_line(traceback: tracemalloc.Traceback) -> int | None:
    """The innermost program line on an allocation's stack (frames run oldest to newest)."""
    for frame in reversed(traceback):
        if frame.filename == PROGRAM_FILE:
            return frame.lineno
    return None


def _program_line_of(tb) -> int | None:
    """The innermost program line of a traceback."""
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == PROGRAM_FILE:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def sites_from_wire(raw: Any) -> list[AllocSite]:
    """Parent side: check what the worker sent (the program could have forged it)."""
    if not isinstance(raw, list):
        raise ValueError("alloc_sites is not a list")
    sites = []
    for item in raw:
        if not (isinstance(item, list) and len(item) == 4 and isinstance(item[0], int)
                and isinstance(item[1], int) and isinstance(item[2], str) and isinstance(item[3], bool)):
            raise ValueError(f"bad allocation site {item!r:.80}")
        sites.append(AllocSite(line=item[0], size_mb=item[1] / 1024, text=item[2], failed=item[3]))
    return sites
