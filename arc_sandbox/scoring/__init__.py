"""Scoring: tasks, task loading, grid comparison, metrics, augmentation, submissions/voting, result records.

Also the batch runner (``runner``: responses -> jobs -> results -> records), which drives the executor.
May import: ``arc_sandbox.executor`` and ``arc_sandbox.dsl``; never diagnostics, testing or the CLI.
"""
from arc_sandbox._lazy import lazy_exports

__all__ = [
    "Augmentation", "Comparison", "MetricsTable", "Pair", "PartitionScore", "Task", "TaskLoadError", "TaskScore",
    "aggregate", "build_submission", "distinct_grids", "fingerprint", "load_tasks", "open_text", "partition_score",
    "pass_at_k", "random_augmentation", "read_results", "score_many", "score_outputs", "score_submission",
    "score_tasks", "similarity_pairs", "validate_submission", "write_records", "write_submission",
]

__getattr__, __dir__ = lazy_exports(globals(), {
    "arc_sandbox.scoring.tasks": ("Pair", "Task"),
    "arc_sandbox.scoring.loading": ("TaskLoadError", "load_tasks", "open_text"),
    "arc_sandbox.scoring.compare": ("Comparison", "similarity_pairs"),
    "arc_sandbox.scoring.metrics": ("MetricsTable", "PartitionScore", "TaskScore", "aggregate", "distinct_grids",
                                    "fingerprint", "partition_score", "pass_at_k", "score_many", "score_outputs",
                                    "score_tasks"),
    "arc_sandbox.scoring.augment": ("Augmentation", "random_augmentation"),
    "arc_sandbox.scoring.submission": ("build_submission", "score_submission", "validate_submission",
                                       "write_submission"),
    "arc_sandbox.scoring.records": ("read_results", "write_records"),
})
