"""Diagnostics: the memory report (peaks, host health, allocation sites, a limit to use).

May import: ``arc_sandbox.scoring``, ``arc_sandbox.executor`` and ``arc_sandbox.dsl``; never the CLI.
"""
from arc_sandbox._lazy import lazy_exports

__all__ = [
    "MemoryReport", "diagnose", "trace_allocations",
]

__getattr__, __dir__ = lazy_exports(globals(), {
    "arc_sandbox.diagnostics.memory": ("MemoryReport", "diagnose", "trace_allocations"),
})
