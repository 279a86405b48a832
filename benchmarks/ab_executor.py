"""A/B the executor benchmark between two checkouts, interleaved, on the same machine.

    git archive main | tar -x -C /tmp/before
    python benchmarks/ab_executor.py --before /tmp/before --after . --rounds 3 --programs 1000 --trivial 2000

Each round runs ``arc-sandbox bench`` once from each checkout (A B A B ..., so drift in the
machine's load hits both alike) and the medians are printed: the realistic-mix throughput ratio
(sandbox / unsafe baseline, measured within one run) and the trivial-program cost in ms of a
core per program, with after/before ratios.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile


def run_bench(root: str, programs: int, trivial: int) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        out = fh.name
    env = {**os.environ, "PYTHONPATH": os.path.abspath(root)}
    cli = "arc_sandbox" if os.path.exists(os.path.join(root, "arc_sandbox", "__main__.py")) else "arc_sandbox.cli"
    subprocess.run([sys.executable, "-m", cli, "bench", "--programs", str(programs),
                    "--trivial", str(trivial), "--out", out], cwd=root, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(out) as fh:
        report = json.load(fh)
    os.unlink(out)
    return report


FIGURES = {
    "mix sandbox programs/s": lambda r: r["mix"]["sandbox_per_s"],
    "mix ratio (sandbox/baseline)": lambda r: r["mix"]["throughput_ratio"],
    "mix without timeouts/hogs sandbox programs/s": lambda r: r["mix_running_only"]["sandbox_per_s"],
    "mix without timeouts/hogs ratio": lambda r: r["mix_running_only"]["throughput_ratio"],
    "trivial ms per program per core": lambda r: r["trivial"]["sandbox_ms_per_program_per_core"],
    "trivial baseline ms per program per core": lambda r: r["trivial"]["baseline_ms_per_program_per_core"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True)
    parser.add_argument("--after", default=".")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--programs", type=int, default=1000)
    parser.add_argument("--trivial", type=int, default=2000)
    parser.add_argument("--out", default=None, help="write every run's report and the medians as JSON")
    args = parser.parse_args()
    runs: dict[str, list[dict]] = {"before": [], "after": []}
    for i in range(args.rounds):
        for name in ("before", "after") if i % 2 == 0 else ("after", "before"):
            runs[name].append(run_bench(getattr(args, name), args.programs, args.trivial))
            print(f"round {i + 1} {name}: " + ", ".join(f"{k} {f(runs[name][-1])}" for k, f in FIGURES.items()),
                  flush=True)
    load = os.getloadavg()
    medians = {k: {n: statistics.median(f(r) for r in runs[n]) for n in runs} for k, f in FIGURES.items()}
    print(f"\nmedians over {args.rounds} rounds (load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, "
          f"{os.cpu_count()} cores):")
    for k, m in medians.items():
        print(f"  {k}: before {m['before']:.3f}, after {m['after']:.3f}, after/before {m['after'] / m['before']:.3f}")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump({"args": vars(args), "load_average": load, "medians": medians, "runs": runs}, fh, indent=1)


if __name__ == "__main__":
    main()
