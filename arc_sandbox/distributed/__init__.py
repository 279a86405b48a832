"""Scale-out: the Sandbox across the nodes of a Ray cluster (``RaySandbox``).

This layer owns everything about Ray: connecting, one actor per node (``node.py``), moving jobs and results,
surviving node and actor loss (``ray_sandbox.py``). It imports only the executor's public surface (the names
``arc_sandbox`` exports: ``Sandbox``, ``Job``, ``ProgramResult``, ``Status``, ``Limits``...), and never imports
Ray at import time: Ray is an optional extra (``pip install 'arc-sandbox[ray]'``), loaded when a
``RaySandbox`` is made.
"""
from .node import NodeInfo
from .ray_sandbox import RAY_MISSING, RaySandbox, RaySandboxStats

__all__ = ["NodeInfo", "RAY_MISSING", "RaySandbox", "RaySandboxStats"]
