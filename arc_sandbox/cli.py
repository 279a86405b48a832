"""``arc-sandbox``: run, score, submit, benchmark, diagnose, check the host."""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

# Each module registers its own subcommand through ``add_cli(subparsers)``.
_COMMAND_MODULES = (
    "arc_sandbox.runner",       # run
    "arc_sandbox.metrics",      # metrics
    "arc_sandbox.submission",   # submit
    "arc_sandbox.benchmark",    # bench
    "arc_sandbox.hardening",    # doctor
    "arc_sandbox.diagnose",     # diagnose
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="arc-sandbox", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in _COMMAND_MODULES:
        importlib.import_module(name).add_cli(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (OSError, ValueError, ImportError) as exc:   # bad paths or files, bad option values, a missing extra
        print(f"arc-sandbox {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
