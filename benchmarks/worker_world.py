"""The worker's world: start-up time, idle memory and what a program finds in ``sys.modules``.

A/B against a baseline source tree (e.g. ``git archive main | tar -x -C /tmp/base``), interleaved, each
measurement in a fresh interpreter whose ``PYTHONPATH`` starts with the tree:

- ``import``: wall and CPU time of importing what the template preloads (numpy, scipy.ndimage, its module,
  the worker, the DSL) in a fresh interpreter: the template's start-up cost before it can fork the first
  worker (CPU time is the steadier figure on a busy host);
- ``first``: ``Sandbox(workers=1)`` until the first result of a trivial program (template start, one fork,
  one round trip), the start-up a user waits for;
- ``rss``/``uss``: the template's and the idle worker's resident and unique memory after that program;
- ``modules``: what the program saw in ``sys.modules`` (all, and ``arc_sandbox.*``), and whether the pool,
  tqdm or psutil were among them.

    python benchmarks/worker_world.py --baseline /tmp/base [--rounds 7]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# The template preloads these (besides numpy, scipy.ndimage and a few stdlib modules, the same in both trees).
_PRELOAD = {
    "flat": "import arc_sandbox.template, arc_sandbox.worker, arc_sandbox.common",
    "layered": "import arc_sandbox.executor.template, arc_sandbox.executor.worker, arc_sandbox.dsl.common",
}
_IMPORT = """
import time; t, c = time.perf_counter(), time.process_time()
import numpy, scipy.ndimage
{preload}
print(time.perf_counter() - t, time.process_time() - c)
"""
_PROGRAM = '''
import sys
def transform(grid):
    names = sorted(sys.modules)
    print(len(names), " ".join(n for n in names if n.startswith("arc_sandbox") or n in ("tqdm", "psutil")))
    return grid
'''
_FIRST = """
import json, time, psutil
from arc_sandbox import Sandbox
program = {program!r}
t = time.perf_counter()
with Sandbox(workers=1, progress=False, dedupe=False) as sb:
    result = sb.run([(program, [[[1]]])])[0]
    first = time.perf_counter() - t
    template = [p for p in psutil.Process().children() if "template" in " ".join(p.cmdline())][0]
    worker = template.children()[0]
    mem = {{name: (p.memory_full_info().rss, p.memory_full_info().uss) for name, p in
            (("template", template), ("worker", worker))}}
count, _, names = result.stdout.strip().partition(" ")
print(json.dumps({{"first": first, "mem": mem, "modules": int(count), "seen": names.split()}}))
"""


def _python(tree: Path, code: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=tree, capture_output=True, text=True,
                          check=True).stdout.strip()


def _layout(tree: Path) -> str:
    return "layered" if (tree / "arc_sandbox" / "executor").is_dir() else "flat"


def measure(tree: Path) -> dict:
    wall, cpu = map(float, _python(tree, _IMPORT.format(preload=_PRELOAD[_layout(tree)])).split()[-2:])
    run = json.loads(_python(tree, _FIRST.format(program=_PROGRAM)).splitlines()[-1])
    return {"import": wall, "import_cpu": cpu, **run}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True, help="source tree to compare against")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out", type=Path, default=None, help="write raw rounds as JSON here")
    args = parser.parse_args()
    trees = {"baseline": args.baseline.resolve(), "this tree": REPO}
    rounds: dict[str, list[dict]] = {name: [] for name in trees}
    for _ in range(args.rounds):
        for name, tree in trees.items():   # interleaved: load changes hit both alike
            rounds[name].append(measure(tree))
    med = {name: _medians(rs) for name, rs in rounds.items()}
    print(f"medians of {args.rounds} interleaved rounds (load: {os.getloadavg()[0]:.1f})")
    print(f"{'':28s} {'baseline':>10s} {'this tree':>10s} {'ratio':>7s}")
    for key, unit in (("import", "ms"), ("import_cpu", "ms"), ("first", "ms"), ("template_rss", "MB"), ("template_uss", "MB"),
                      ("worker_rss", "MB"), ("worker_uss", "MB"), ("modules", "")):
        a, b = med["baseline"][key], med["this tree"][key]
        scale = 1e3 if unit == "ms" else 1 / 2**20 if unit == "MB" else 1
        print(f"{key + (' (' + unit + ')' if unit else ''):28s} {a * scale:10.1f} {b * scale:10.1f} {b / a:7.2f}")
    for name, rs in rounds.items():
        print(f"{name}: arc_sandbox modules / tqdm / psutil a program sees: {' '.join(rs[-1]['seen'])}")
    if args.out:
        args.out.write_text(json.dumps(rounds, indent=1))


def _medians(rounds: list[dict]) -> dict:
    flat = [{"import": r["import"], "import_cpu": r["import_cpu"], "first": r["first"], "modules": r["modules"],
             **{f"{who}_{kind}": r["mem"][who][i] for who in ("template", "worker")
                for i, kind in enumerate(("rss", "uss"))}} for r in rounds]
    return {key: statistics.median(f[key] for f in flat) for key in flat[0]}


if __name__ == "__main__":
    main()
