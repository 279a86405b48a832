"""The executor: runs programs in isolated, limited, persistent worker processes; one typed result per job.

Owns the pool (``pool.Sandbox``), the template process that forks workers (``template``), the worker loop
(``worker``), the parent-worker protocol (``wire``), the pristine guard (``pristine``), the isolation layers
(``hardening``, ``seccomp``), limits (``limits``), jobs and results (``results``), grid validation
(``grids``), code extraction from LLM text (``extract``) and in-worker allocation tracing (``alloc_trace``).

May import: the standard library, numpy, multiprocess, psutil and tqdm (pool side only), and
``arc_sandbox.dsl``. Never scoring, diagnostics, testing or the CLI. The worker side (template, worker and what
they import) must stay lean: no pool, psutil or tqdm there.
"""
