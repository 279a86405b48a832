"""What the isolation layers cost: the same jobs on Sandboxes with layers on and off.

    python3 benchmarks/hardening.py [--jobs 1500] [--rounds 3] [--workers 2]

Two workloads from the executor benchmark's program mix (``arc_sandbox.cli.bench.make_jobs``, real
ARC-AGI-1 inputs): the full mix (with its timeouts and memory hogs, which replace workers, so
the per-worker set-up of the layers is paid again) and the programs that run normally only
(the per-program cost: the descendant check after each program). Rounds alternate on/off;
medians are printed with the on/off throughput ratio. Also the start-up of a Sandbox.
Target: layers cost under 10% of throughput.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from arc_sandbox import Isolation, Limits, Sandbox  # noqa: E402
from arc_sandbox.cli.bench import PROGRAMS, make_jobs  # noqa: E402

SLOW = (PROGRAMS["timeout"][1], PROGRAMS["memory_hog"][1])


def timed_run(isolation: Isolation, jobs, workers: int) -> tuple[float, float]:
    """(start-up seconds, run seconds) on a fresh Sandbox."""
    t0 = time.perf_counter()
    with Sandbox(workers=workers, limits=Limits(timeout_s=1.0), isolation=isolation, dedupe=False) as sb:
        t1 = time.perf_counter()
        sb.run(jobs)
        t2 = time.perf_counter()
    return t1 - t0, t2 - t1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    full = make_jobs(args.jobs, seed=1)
    steady = [job for job in make_jobs(args.jobs * 2, seed=2) if job[0] not in SLOW][:args.jobs]
    modes = {"off": Isolation.off(), "on": Isolation()}
    with Sandbox(workers=1) as sb:
        print(f"layers on this host: {', '.join(s.layer.value for s in sb.layers if s.active)}")
        print(f"missing: {', '.join(str(s) for s in sb.layers if not s.active) or 'none'}")
    for label, jobs in (("full mix", full), ("running programs only", steady)):
        runs: dict[str, list[tuple[float, float]]] = {m: [] for m in modes}
        for _ in range(args.rounds):
            for mode, isolation in modes.items():
                runs[mode].append(timed_run(isolation, jobs, args.workers))
        rate = {m: len(jobs) / statistics.median(r[1] for r in runs[m]) for m in modes}
        start = {m: statistics.median(r[0] for r in runs[m]) for m in modes}
        print(f"\n{label}: {len(jobs)} programs, {args.workers} workers, median of {args.rounds} rounds")
        for mode in modes:
            print(f"  layers {mode:3}: {rate[mode]:8.1f} programs/s   sandbox start {start[mode] * 1000:6.0f} ms")
        print(f"  throughput on/off: {rate['on'] / rate['off']:.3f}  (cost {100 * (1 - rate['on'] / rate['off']):.1f}%)")


if __name__ == "__main__":
    main()
