"""A/B the per-program overhead between two checkouts: trivial programs, interleaved runs.

    git archive main | tar -x -C /tmp/before
    python benchmarks/ab_trivial.py --before /tmp/before --after . --workers 2 16 --rounds 5

Each round times ``--programs`` trivial programs (after a warm-up) through a Sandbox from each
checkout, in a fresh interpreter, A B A B...; it prints milliseconds of a core per program
(wall time x workers / programs) and the CPU the parent and the workers spent per program.
Needs no task data, so it runs on any machine with numpy, scipy, psutil, multiprocess and tqdm.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

CHILD = r"""
import json, sys, time
import numpy as np, psutil
from arc_sandbox import Limits, Sandbox
workers, n = int(sys.argv[1]), int(sys.argv[2])
jobs = [("def transform(g):\n    return g", [np.ones((3, 3), dtype=int)])] * n
with Sandbox(workers=workers, limits=Limits(timeout_s=1.0), dedupe=False) as sb:
    sb.run(jobs[: max(200, 20 * workers)])
    procs = [psutil.Process(p) for p in sb.worker_pids()]
    w0, p0, t0 = sum(sum(p.cpu_times()[:2]) for p in procs), time.process_time(), time.perf_counter()
    sb.run(jobs)
    wall, parent = time.perf_counter() - t0, time.process_time() - p0
    workers_cpu = sum(sum(p.cpu_times()[:2]) for p in procs) - w0
print(json.dumps({"ms_per_program_per_core": wall * workers / n * 1e3, "parent_cpu_us": parent / n * 1e6,
                  "workers_cpu_us": workers_cpu / n * 1e6}))
"""


def one(root: str, workers: int, n: int) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [os.path.abspath(root),
                                                                      os.environ.get("PYTHONPATH")]))}
    out = subprocess.run([sys.executable, "-c", CHILD, str(workers), str(n)], cwd=root, env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True)
    parser.add_argument("--after", default=".")
    parser.add_argument("--workers", type=int, nargs="+", default=[2])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--programs", type=int, default=4000)
    args = parser.parse_args()
    report = {"cpu_count": os.cpu_count(), "load_before": os.getloadavg(), "results": {}}
    for workers in args.workers:
        runs = {"before": [], "after": []}
        for i in range(args.rounds):
            for name in ("before", "after") if i % 2 == 0 else ("after", "before"):
                runs[name].append(one(getattr(args, name), workers, args.programs * max(1, workers // 2)))
        med = {n: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for n, rs in runs.items()}
        report["results"][workers] = {"runs": runs, "medians": med}
        b, a = med["before"], med["after"]
        print(f"{workers} workers: ms of a core per trivial program: before {b['ms_per_program_per_core']:.3f}, "
              f"after {a['ms_per_program_per_core']:.3f} (x{a['ms_per_program_per_core'] / b['ms_per_program_per_core']:.2f}); "
              f"parent CPU {b['parent_cpu_us']:.0f} -> {a['parent_cpu_us']:.0f} us, workers CPU "
              f"{b['workers_cpu_us']:.0f} -> {a['workers_cpu_us']:.0f} us per program", flush=True)
    report["load_after"] = os.getloadavg()
    print(json.dumps(report))


if __name__ == "__main__":
    main()
