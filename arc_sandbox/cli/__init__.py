"""The command line: ``arc-sandbox`` run, metrics, submit, bench, doctor, diagnose.

Every argparse, printing and exit-code path of arc_sandbox lives in this layer, one module per command; each
registers its subcommand through ``add_cli(subparsers)``. May import every other layer; nothing imports it
(``python -m arc_sandbox`` and the ``arc-sandbox`` script call :func:`main`).
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

_DESCRIPTION = "run, score, submit, benchmark, diagnose, check the host."
# One module per subcommand, imported when the parser is built.
_COMMAND_MODULES = (
    "arc_sandbox.cli.run",
    "arc_sandbox.cli.metrics",
    "arc_sandbox.cli.submit",
    "arc_sandbox.cli.bench",
    "arc_sandbox.cli.doctor",
    "arc_sandbox.cli.diagnose",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="arc-sandbox", description=_DESCRIPTION)
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
