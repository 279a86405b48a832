"""A short GRPO run through ``arc_rl.train`` on one GPU: speed, the reward's share of the step, GPU memory.

A random-initialised Llama (about 0.3 B parameters, bf16, LoRA) with the offline word-level tokenizer of
``tests/tiny_llm.py``, whose vocabulary holds a few whole-program tokens, so even an untrained model writes
runnable programs and the real sandbox reward executes most completions. Tasks are synthetic ARC tasks with
grids of 5 to 15 cells a side (prompts of about 1,000 tokens). Every step: 8 tasks x 8 generations.

The reward's time per step is what the reward itself logs (``sandbox/run_s`` + ``sandbox/overhead_s``: running
every completion's program in the sandbox, scoring, metrics); the step time is TRL's ``step_time``. The first
step (sandbox start, CUDA warm-up) is reported but left out of the averages.

    python3 benchmarks/grpo_gpu.py --out results/            # GPU
    python3 benchmarks/grpo_gpu.py --smoke --out /tmp/smoke  # CPU check of the script, tiny model
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import numpy as np  # noqa: E402

from tiny_llm import save_tiny_model  # noqa: E402

REWARD_KEYS = ("sandbox/failures", "sandbox/reward_mean", "sandbox/reward_max", "sandbox/solved_ratio", "sandbox/valid_output_ratio",
               "sandbox/status/ok", "sandbox/status/runtime_error", "sandbox/status/syntax_error",
               "sandbox/status/timeout", "sandbox/status/memory_limit", "sandbox/status/no_code",
               "truncation/ratio", "repetition/unique_token_ratio", "sandbox/run_s", "sandbox/overhead_s")
TRL_KEYS = ("reward", "reward_std", "frac_reward_zero_std", "entropy", "grad_norm", "completions/mean_length",
            "completions/clipped_ratio", "num_tokens", "step_time")


def synthetic_tasks(path: Path, n: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    tasks = {}
    for t in range(n):
        pairs = []
        for _ in range(4):
            h, w = (int(x) for x in rng.integers(5, 16, size=2))
            grid = rng.integers(0, 10, size=(h, w))
            pairs.append({"input": grid.tolist(), "output": np.fliplr(grid).tolist()})
        tasks[f"{t:08x}"] = {"train": pairs[:3], "test": pairs[3:]}
    path.write_text(json.dumps(tasks))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.environ.get("OUT", "benchmark-out"))
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--tasks-per-step", type=int, default=8)
    parser.add_argument("--generations", type=int, default=8)
    parser.add_argument("--max-completion-length", type=int, default=256)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--attn", default=None, help="attention kernel (sdpa, eager, ...)")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--smoke", action="store_true", help="tiny model, 2 steps: checks the script on CPU")
    args = parser.parse_args()
    if args.smoke:
        args.steps, args.tasks_per_step, args.generations, args.max_completion_length = 3, 2, 4, 16
        size = dict(hidden_size=64, layers=2, heads=4, kv_heads=2)
    else:
        size = dict(hidden_size=1024, layers=24, heads=16, kv_heads=8, intermediate_size=4096)

    import torch

    from arc_rl.config import TrainConfig
    from arc_rl.train import train

    out = Path(args.out)
    work = out / "work" if args.smoke else Path("/tmp/grpo_gpu")
    work.mkdir(parents=True, exist_ok=True)
    model_dir = save_tiny_model(work / "model", **size)
    n_params = sum(p.numel() for p in
                   __import__("transformers").AutoModelForCausalLM.from_pretrained(model_dir).parameters())
    tasks = synthetic_tasks(work / "tasks.json", n=args.steps * args.tasks_per_step)
    completions = args.tasks_per_step * args.generations
    config = TrainConfig(
        model_path=str(model_dir), dataset_path=str(tasks), output_dir=str(work / "run"),
        max_steps=args.steps, num_generations=args.generations, per_device_train_batch_size=completions,
        gradient_accumulation_steps=1, max_completion_length=args.max_completion_length, max_seq_length=4096,
        lora_r=16, learning_rate=1e-5, warmup_ratio=0.0, logging_steps=1, save_steps=10_000,
        n_jobs=args.workers, code_execution_timeout=1.0, code_execution_memory_limit_mb=512,
        resume_from_checkpoint="none", attn_implementation=args.attn, dtype=args.dtype)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    result = train(config)
    wall = time.perf_counter() - start

    steps = [row for row in result.log_history if "step_time" in row]
    rows = [{"step": i + 1, **{k: row.get(k) for k in REWARD_KEYS + TRL_KEYS}} for i, row in enumerate(steps)]
    for row in rows:
        # a step where the sandbox failed logs no timings; it then counts as zero reward time (and shows in
        # sandbox/failures below)
        row["reward_s"] = (row["sandbox/run_s"] or 0.0) + (row["sandbox/overhead_s"] or 0.0)
        row["reward_share"] = row["reward_s"] / row["step_time"]
    timed = rows[1:] or rows
    summary = {
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "attn_implementation": args.attn, "dtype": args.dtype, "cpu_cores": os.cpu_count(), "sandbox_workers": args.workers, "parameters": n_params,
        "steps": len(rows), "tasks_per_step": args.tasks_per_step, "generations": args.generations,
        "completions_per_step": completions, "max_completion_length": args.max_completion_length,
        "steps_per_s": len(timed) / sum(r["step_time"] for r in timed),
        "step_time_s_median": statistics.median(r["step_time"] for r in timed),
        "reward_s_median": statistics.median(r["reward_s"] for r in timed),
        "reward_share_mean": sum(r["reward_s"] for r in timed) / sum(r["step_time"] for r in timed),
        "reward_share_max": max(r["reward_share"] for r in timed),
        "first_step": {"step_time": rows[0]["step_time"], "reward_s": rows[0]["reward_s"]},
        "wall_s_including_load": wall,
        "reward_metrics_mean": {k: statistics.mean(r[k] for r in timed if r.get(k) is not None)
                                for k in REWARD_KEYS + TRL_KEYS if any(r.get(k) is not None for r in timed)},
    }
    if torch.cuda.is_available():
        summary["gpu_max_allocated_gib"] = torch.cuda.max_memory_allocated() / 2**30
        summary["gpu_max_reserved_gib"] = torch.cuda.max_memory_reserved() / 2**30
    out.mkdir(parents=True, exist_ok=True)
    (out / "grpo_gpu.json").write_text(json.dumps({"summary": summary, "steps": rows}, indent=2))
    lines = [f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}" for k, v in summary.items()
             if k != "reward_metrics_mean"]
    lines += [f"  {k}: {v:.4g}" for k, v in summary["reward_metrics_mean"].items()]
    lines += ["step  step_time  reward_s  share  reward_mean  ok  mean_len"]
    lines += [f"{r['step']:4d}  {r['step_time']:9.3f}  {r['reward_s']:8.3f}  {r['reward_share']:5.1%}  "
              f"{r['sandbox/reward_mean'] or 0:11.3f}  {r['sandbox/status/ok'] or 0:.2f}  {r['completions/mean_length']:.0f}"
              for r in rows]
    (out / "summary.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
