"""The executor: runs programs in isolated, limited, persistent worker processes; one typed result per job.

Owns the pool (``pool.Sandbox``), the parent's end of each worker (``courier``), the template process that forks
workers (``template``), the worker loop (``worker``), the parent-worker protocol (``wire``), the pristine guard (``pristine``), the isolation layers
(``hardening``, ``seccomp``), limits (``limits``), jobs and results (``results``), grid validation
(``grids``), code extraction from LLM text (``extract``) and in-worker allocation tracing (``alloc_trace``).

May import: the standard library, numpy, multiprocess, psutil and tqdm (pool side only), and
``arc_sandbox.dsl``. Never scoring, diagnostics, testing or the CLI. The worker side (template, worker and what
they import) must stay lean: no pool, psutil or tqdm there.
"""
from arc_sandbox._lazy import lazy_exports

__all__ = [
    "AllocSite", "GridError", "Isolation", "IsolationError", "Job", "Layer", "LayerStatus", "Limits", "MAX_SIDE",
    "ProgramResult", "Sandbox", "SandboxError", "SandboxStats", "Status", "as_grid", "extract_code", "has_fence",
    "is_grid", "run_program",
]

__getattr__, __dir__ = lazy_exports(globals(), {
    "arc_sandbox.executor.pool": ("Sandbox", "SandboxError", "SandboxStats", "run_program"),
    "arc_sandbox.executor.results": ("AllocSite", "Job", "ProgramResult", "Status"),
    "arc_sandbox.executor.limits": ("Limits",),
    "arc_sandbox.executor.hardening": ("Isolation", "IsolationError", "Layer", "LayerStatus"),
    "arc_sandbox.executor.extract": ("extract_code", "has_fence"),
    "arc_sandbox.executor.grids": ("GridError", "MAX_SIDE", "as_grid", "is_grid"),
})
