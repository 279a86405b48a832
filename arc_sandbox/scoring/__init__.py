"""Scoring: tasks, task loading, grid comparison, metrics, augmentation, submissions/voting, result records.

Also the batch runner (``runner``: responses -> jobs -> results -> records), which drives the executor.
May import: ``arc_sandbox.executor`` and ``arc_sandbox.dsl``; never diagnostics, testing or the CLI.
"""
