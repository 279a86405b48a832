"""A GRPO run on 2 GPUs of one node (issue 14): ``accelerate launch --num_processes 2 arc-rl train``, vLLM
colocated on each rank, a random ~0.4 B Llama, LoRA, 16 generations per task; a few steps.

Reports: step time split per rank (generation / reward / rest, as ``grpo_gpu.py`` measures it), peak GPU memory per
GPU (``nvidia-smi``, sampled every second), sandbox workers per rank and in total against the node's cores, which
files each rank wrote (only rank 0 should write the run's log, config, metrics and alerts), and whether the rewards
are right: every logged completion (TRL's ``completions/*.parquet``) is scored again here, in one process, and
must get the same reward.

NVLink multicast stays off: the launch keeps the machine's NCCL_NVLS_ENABLE=0, TORCH_SYMM_MEM_DISABLE_MULTICAST=1
and NVSHMEM_DISABLE_NVLS=1 (set here too if missing; never switched on).

    python3 benchmarks/grpo_multi_gpu.py --out $OUT                      # 2 GPUs, accelerate, vLLM colocated
    python3 benchmarks/grpo_multi_gpu.py --out $OUT --no-vllm            # 2 GPUs, transformers generate
    python3 benchmarks/grpo_multi_gpu.py --smoke --launcher torchrun     # CPU check of the script (no vLLM)

``--no-vllm`` is the reduced run for a machine without vLLM staged: each rank generates with transformers
``generate`` (bf16 weights, eager attention as in ``grpo_gpu.py``'s clean run, 128-token completions by default).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]

NO_MULTICAST = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}


def rank_entry(train_args: list[str], timings_dir: Path) -> int:
    """Runs inside each rank: times TRL's generation and reward calls, then ``arc-rl train``."""
    from grpo_gpu import Clock

    from arc_rl.cli import main as cli_main
    clock = Clock()
    clock.install()
    code = cli_main(["train", *train_args])
    rank = int(os.environ.get("RANK", "0"))
    (timings_dir / f"rank{rank}.json").write_text(json.dumps({"rank": rank, "times": clock.times,
                                                              "workers_env": os.environ.get("LOCAL_WORLD_SIZE")}))
    return code


def watch_gpus(peaks: dict[int, float], stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=index,memory.used", "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True, timeout=10).stdout
            for line in out.strip().splitlines():
                index, used = (int(float(x)) for x in line.split(","))
                peaks[index] = max(peaks.get(index, 0), used)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            return
        stop.wait(1.0)


def rescore(run_dir: Path, tasks_path: Path, model_dir: Path) -> dict:
    """Scores every logged completion again in this one process; counts disagreements with the logged reward."""
    import pandas as pd
    from transformers import AutoTokenizer

    from arc_rl.data import load_tasks, task_to_json
    from arc_rl.prompts import render_prompt
    from arc_rl.rewards import SandboxReward

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    by_prompt = {render_prompt(t, tokenizer, "barc"): task_to_json(t) for t in load_tasks(tasks_path).values()}
    frames = [pd.read_parquet(p) for p in sorted((run_dir / "completions").glob("*.parquet"))]
    if not frames:
        return {"error": "no completions parquet written"}
    table = pd.concat(frames)
    column = next(c for c in table.columns if c.startswith("arc-v1") or c == "arc-v1")
    with SandboxReward("arc-v1") as reward:
        again = reward(completions=list(table["completion"]), task=[by_prompt.get(p) for p in table["prompt"]])
    logged = table[column].tolist()
    wrong = sum(abs(a - b) > 1e-4 for a, b in zip(again, logged))
    return {"completions": len(logged), "disagreements": wrong, "reward_column": column}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.environ.get("OUT", "benchmark-out"))
    parser.add_argument("--work", default="/tmp/grpo_multi_gpu")
    parser.add_argument("--gpus", type=int, default=2)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--launcher", choices=("accelerate", "torchrun"), default="accelerate")
    parser.add_argument("--smoke", action="store_true", help="tiny model on CPU, no vLLM")
    parser.add_argument("--no-vllm", action="store_true", help="GPUs, transformers generate instead of vLLM")
    parser.add_argument("--max-completion-length", type=int, default=None,
                        help="default: 16 with --smoke, 128 with --no-vllm, else 256")
    parser.add_argument("--rank-entry", action="store_true", help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    work = Path(args.work)
    if args.rank_entry:
        sys.exit(rank_entry(rest[rest.index("--") + 1:] if "--" in rest else rest, work))

    from grpo_gpu import synthetic_tasks
    from tiny_llm import save_tiny_model

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    size = (dict(hidden_size=64, layers=2, heads=4, kv_heads=2) if args.smoke else
            dict(hidden_size=1024, layers=24, heads=16, kv_heads=8, intermediate_size=4096))
    model_dir = save_tiny_model(work / "model", **size)
    tasks = synthetic_tasks(work / "tasks.json", n=args.steps * args.gpus + 4)
    run_dir = work / "run"
    vllm = not (args.smoke or args.no_vllm)
    max_len = args.max_completion_length or (16 if args.smoke else 256 if vllm else 128)
    train_args = ["--model-path", str(model_dir), "--dataset-path", str(tasks), "--output-dir", str(run_dir),
                  "--max-steps", str(args.steps), "--num-generations", "16", "--per-device-train-batch-size", "8",
                  "--gradient-accumulation-steps", "2", "--max-completion-length", str(max_len),
                  "--lora-r", "16", "--logging-steps", "1", "--save-steps", str(args.steps), "--log-completions",
                  "--resume-from-checkpoint", "none"]
    if vllm:
        train_args += ["--use-vllm", "--vllm-mode", "colocate", "--gpu-memory-utilization", "0.3"]
    elif not args.smoke:   # bf16 sdpa gave a NaN on the one-GPU run (docs/arc-rl-train.md); eager ran clean
        train_args += ["--attn-implementation", "eager"]
    entry = [str(Path(__file__).resolve()), "--rank-entry", "--work", str(work), "--"]
    if args.launcher == "accelerate":
        launch = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(args.gpus),
                  "--multi_gpu", "--mixed_precision", "no", "--dynamo_backend", "no", "--num_machines", "1"]
    else:
        launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(args.gpus), "--standalone"]
    env = {**os.environ, **{k: os.environ.get(k, v) for k, v in NO_MULTICAST.items()},
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    if args.smoke:
        env["OMP_NUM_THREADS"] = "1"
    peaks: dict[int, float] = {}
    stop = threading.Event()
    watcher = threading.Thread(target=watch_gpus, args=(peaks, stop), daemon=True)
    watcher.start()
    start = time.perf_counter()
    with (out / "multi_gpu_log.txt").open("w") as log:
        code = subprocess.run(launch + entry + train_args, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
    wall = time.perf_counter() - start
    stop.set()

    from grpo_gpu import summarise
    ranks = []
    for path in sorted(work.glob("rank*.json")):
        data = json.loads(path.read_text())
        times = data["times"]
        rows = [{"step_time": g + r, "generate_s": g, "reward_s": r}   # rest comes from metrics.jsonl (rank 0)
                for g, r in zip(times["generate"], times["reward"])]
        ranks.append({"rank": data["rank"], "calls": {k: len(v) for k, v in times.items()},
                      "generate_s": times["generate"], "reward_s": times["reward"],
                      "summary": summarise(rows) if rows else None})
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()] \
        if (run_dir / "metrics.jsonl").is_file() else []
    log_text = (run_dir / "train.log").read_text() if (run_dir / "train.log").is_file() else ""
    cores = os.cpu_count()
    report = {
        "command": " ".join(sys.argv), "launch": " ".join(launch), "exit_code": code, "wall_s": wall,
        "gpus": args.gpus, "node_cores": cores, "generation": "vllm colocate" if vllm else "transformers generate",
        "max_completion_length": max_len, "train_args": train_args,
        "sandbox_log_lines": [line for line in log_text.splitlines() if "sandbox:" in line],
        "workers_per_rank_expected": max(1, len(os.sched_getaffinity(0)) // args.gpus),
        "run_files": sorted(p.name for p in run_dir.iterdir()) if run_dir.is_dir() else [],
        "steps": [{k: row.get(k) for k in ("step", "step_time", "reward", "sandbox/run_s", "grad_norm",
                                            "completions/mean_length")} for row in metrics if "step_time" in row],
        "ranks": ranks, "peak_gpu_memory_mib": peaks, "no_multicast_env": {k: env[k] for k in NO_MULTICAST},
    }
    if code == 0:
        report["rescored"] = rescore(run_dir, tasks, model_dir)
    (out / "grpo_multi_gpu.json").write_text(json.dumps(report, indent=2, default=str))
    print(json.dumps({k: v for k, v in report.items() if k not in ("ranks",)}, indent=1, default=str))


if __name__ == "__main__":
    main()
