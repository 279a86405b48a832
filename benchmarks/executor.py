"""Executor throughput and overhead against a minimal unsafe baseline (see docs/sandbox.md).

    python benchmarks/executor.py [--programs 2000] [--trivial 4000] [--parent-memory 50000]
"""
import argparse

from arc_sandbox.benchmark import main

if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--programs", type=int, default=2000)
    p.add_argument("--trivial", type=int, default=4000)
    p.add_argument("--parent-memory", type=int, default=0)
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--out", default=None)
    a = p.parse_args()
    main(a.programs, a.trivial, a.workers, a.parent_memory, out=a.out)
