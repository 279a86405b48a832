"""Executor throughput and overhead against a minimal unsafe baseline (see docs/sandbox.md).

Same as ``arc-sandbox bench``:
    python benchmarks/executor.py [--programs 2000] [--trivial 4000] [--parent-memory 50000]
"""
import sys

from arc_sandbox.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
