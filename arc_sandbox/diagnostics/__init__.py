"""Diagnostics: the memory report (peaks, host health, allocation sites, a limit to use).

May import: ``arc_sandbox.scoring``, ``arc_sandbox.executor`` and ``arc_sandbox.dsl``; never the CLI.
"""
