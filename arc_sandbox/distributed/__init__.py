"""Scale-out: the Sandbox across the nodes of a Ray cluster (``RaySandbox``).

This layer owns everything about Ray: connecting, one actor per node (``node.py``), moving jobs and results,
surviving node and actor loss (``ray_sandbox.py``).

May import: the standard library, tqdm, Ray (only once a ``RaySandbox`` is made: Ray is the optional extra
``pip install 'arc-sandbox[ray]'``), and the executor's public surface (``arc_sandbox.executor``: ``Sandbox``,
``Job``, ``ProgramResult``, ``Status``, ``Limits``...). ``scoring/`` and above may import it.
"""
from arc_sandbox._lazy import lazy_exports

__all__ = ["NodeInfo", "RAY_MISSING", "RaySandbox", "RaySandboxStats"]

__getattr__, __dir__ = lazy_exports(globals(), {
    "arc_sandbox.distributed.node": ("NodeInfo",),
    "arc_sandbox.distributed.ray_sandbox": ("RAY_MISSING", "RaySandbox", "RaySandboxStats"),
})
