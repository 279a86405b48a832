"""``arc-rl train``: GRPO fine-tuning of an induction model with a LoRA adapter, rewarded by the sandbox.

Thin on purpose: TRL's ``GRPOTrainer`` does the RL, PEFT the adapter, :class:`arc_rl.rewards.SandboxReward` the
reward. This module turns a :class:`TrainConfig` into those objects, in an order that fails fast: options, then
paths and optional packages, then the tasks (parsed before the model is touched), then the model.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

import yaml

from arc_sandbox import Limits, Task

from .config import ConfigError, TrainConfig, load_tasks_or_fail, to_yaml
from .environment import is_main_rank, local_world_size

if TYPE_CHECKING:
    from .monitor import Alert

log = logging.getLogger(__name__)

CONFIG_FILE = "arc_rl_config.yaml"
METRICS_FILE = "metrics.jsonl"
FINAL_DIR = "final"


@dataclass
class TrainResult:
    output_dir: Path
    final_dir: Path
    global_step: int
    log_history: list[dict[str, Any]]
    alerts: list[Alert] = field(default_factory=list)


@dataclass
class TaskSource:
    """Where the training tasks come from and how many there are (``None``: unknown, a streamed file)."""

    tasks: Callable[[], Iterable[Task]]
    count: int | None
    description: str


def train(config: TrainConfig) -> TrainResult:
    config.validate()
    config.check_environment()
    source = load_task_source(config)
    max_steps = resolve_max_steps(config, source.count)
    if not is_main_rank():   # the other ranks train alike; one writes the run's files
        return _train(config, source, max_steps)
    handler = _start_file_log(Path(config.output_dir))
    try:
        return _train(config, source, max_steps)
    finally:
        logging.getLogger("arc_rl").removeHandler(handler)
        handler.close()


def _train(config: TrainConfig, source: TaskSource, max_steps: int) -> TrainResult:
    log.info("%s; %d tasks per optimizer step (%d completions of %d generations); %d steps",
             source.description, config.tasks_per_step, config.tasks_per_step * config.num_generations,
             config.num_generations, max_steps)

    import torch
    from transformers import AutoTokenizer
    from trl import GRPOTrainer

    from .monitor import CollapseMonitor, LoraDropoutOnly, MetricsFile
    from .rewards import AsyncSandboxReward

    cuda = torch.cuda.is_available()
    if cuda:
        configure_attention(config)
    tokenizer = AutoTokenizer.from_pretrained(config.model_path)
    tokenizer.padding_side = "left"
    dataset = _dataset(config, source, tokenizer, max_steps)
    resume = resolve_resume(config)
    main = is_main_rank()
    if main:
        _save_config(config, resume)
    workers = config.workers
    log.info("sandbox: %d workers on this rank (%d training processes on this node)", workers, local_world_size())
    reward = AsyncSandboxReward(reward_name=config.reward_name, workers=workers,
                                limits=Limits(timeout_s=config.code_execution_timeout,
                                              memory_mb=config.code_execution_memory_limit_mb, seed=config.seed),
                                max_completion_length=config.max_completion_length,
                                deadline_s=config.reward_deadline)
    output_dir = Path(config.output_dir)
    monitor = CollapseMonitor(max_completion_length=config.max_completion_length,
                              path=output_dir / "collapse_alerts.jsonl" if main else None)
    try:
        trainer = GRPOTrainer(model=config.model_path, reward_funcs=reward, train_dataset=dataset,
                              args=grpo_config(config, max_steps, cuda), processing_class=tokenizer,
                              peft_config=lora_config(config), quantization_config=_quantization(config),
                              callbacks=[MetricsFile(output_dir / METRICS_FILE), monitor, LoraDropoutOnly()])
        trainer.train(resume_from_checkpoint=resume)
        final_dir = output_dir / FINAL_DIR
        trainer.save_model(str(final_dir))
    finally:
        reward.close()
    if monitor.alerts and main:
        log.warning("%d collapse warnings during training, see %s", len(monitor.alerts), monitor.path)
    return TrainResult(output_dir=output_dir, final_dir=final_dir, global_step=trainer.state.global_step,
                       log_history=list(trainer.state.log_history), alerts=list(monitor.alerts))


# ---- tasks and dataset ------------------------------------------------------------------------

def load_task_source(config: TrainConfig) -> TaskSource:
    """Reads (or, for a BARC ``.jsonl``, peeks into) the dataset now, so a bad file fails before the model loads."""
    from .data import iter_barc_jsonl

    path = config.dataset_path
    if path.endswith((".jsonl", ".jsonl.gz")):
        def stream() -> Iterable[Task]:
            return iter_barc_jsonl(path, seed=config.seed, limit=config.max_tasks)
        try:
            next(iter(iter_barc_jsonl(path, seed=config.seed, limit=1)))
        except StopIteration:
            raise ConfigError(f"--dataset-path: no usable BARC row in {path}") from None
        except (OSError, UnicodeDecodeError, EOFError) as exc:
            raise ConfigError(f"--dataset-path: cannot read {path}: {exc}") from None
        return TaskSource(stream, config.max_tasks, f"BARC rows streamed from {path}")
    chosen = list(load_tasks_or_fail(path, config.max_tasks).values())
    return TaskSource(lambda: chosen, len(chosen), f"{len(chosen)} tasks from {path}")


def resolve_max_steps(config: TrainConfig, task_count: int | None) -> int:
    if config.max_steps > 0:
        return config.max_steps
    if task_count is None:
        raise ConfigError("--max-steps: required with a streamed .jsonl dataset unless --max-tasks is given")
    return max(1, math.floor(config.epochs * task_count / config.tasks_per_step))


def _dataset(config: TrainConfig, source: TaskSource, tokenizer, max_steps: int):
    """A streamed dataset: prompts are rendered as training reaches them, with fresh augmentation per pass.

    Prompts that leave no room for a full completion within ``--max-seq-length`` are skipped.
    """
    from .data import build_dataset

    passes = max(1, math.ceil(config.epochs)) if config.max_steps <= 0 else _passes_for(config, source, max_steps)
    dataset = build_dataset(source.tasks, tokenizer, prompt_version=config.prompt_version,
                            augment=config.use_data_augmentation, seed=config.seed, streaming=True, epochs=passes)
    budget = config.max_seq_length - config.max_completion_length
    return dataset.filter(lambda row: len(tokenizer(row["prompt"], add_special_tokens=False)["input_ids"]) <= budget)


def _passes_for(config: TrainConfig, source: TaskSource, max_steps: int) -> int:
    if source.count is None:
        return 1  # a streamed file: TRL starts it again if max_steps needs more
    return max(1, math.ceil(max_steps * config.tasks_per_step / source.count))


# ---- model, adapter, trainer arguments --------------------------------------------------------

def weights_dtype(config: TrainConfig, cuda: bool) -> str:
    if config.dtype != "auto":
        return config.dtype
    if not cuda:
        return "float32"
    # vLLM gets the adapter merged into the base in the base's dtype at every sync: fp32 keeps that lossless
    return "float32" if config.use_vllm else "bfloat16"


def lora_config(config: TrainConfig):
    from peft import LoraConfig

    targets = config.lora_target_modules
    return LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha or config.lora_r,
                      lora_dropout=config.lora_dropout, use_rslora=config.use_rslora, task_type="CAUSAL_LM",
                      target_modules=targets if targets == "all-linear" else [t.strip() for t in targets.split(",")])


def _quantization(config: TrainConfig):
    if not config.load_in_4bit:
        return None
    import torch
    from transformers import BitsAndBytesConfig
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=torch.bfloat16)


def grpo_config(config: TrainConfig, max_steps: int, cuda: bool):
    import dataclasses

    from trl import GRPOConfig

    # transformers 5.24 renamed gradient_checkpointing (still accepted, with a warning); 5.17 knows the old name only
    fields = {f.name for f in dataclasses.fields(GRPOConfig)}
    checkpointing = "activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing"

    dtype = weights_dtype(config, cuda)
    return GRPOConfig(
        output_dir=config.output_dir, run_name=Path(config.output_dir).name, seed=config.seed,
        max_steps=max_steps, learning_rate=config.learning_rate, lr_scheduler_type=config.lr_scheduler_type,
        warmup_steps=config.warmup_ratio,  # transformers 5: a float below 1 is a ratio
        per_device_train_batch_size=config.per_device_train_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps, num_generations=config.num_generations,
        max_completion_length=config.max_completion_length, beta=config.beta, max_grad_norm=config.max_grad_norm,
        scale_rewards=config.scale_rewards, mask_truncated_completions=config.mask_truncated_completions,
        loss_type=config.loss_type, epsilon=config.epsilon, epsilon_high=config.epsilon_high,
        temperature=config.temperature, top_p=config.top_p, repetition_penalty=config.repetition_penalty,
        importance_sampling_level=config.resolved_importance_sampling_level,
        use_vllm=config.use_vllm, vllm_mode=config.vllm_mode,
        vllm_gpu_memory_utilization=config.gpu_memory_utilization, vllm_max_model_length=config.max_seq_length,
        vllm_importance_sampling_mode=config.vllm_importance_sampling_mode,
        vllm_server_host=config.vllm_server_host, vllm_server_port=config.vllm_server_port,
        vllm_server_timeout=config.vllm_server_timeout,
        save_steps=config.save_steps, save_total_limit=config.save_total_limit,
        logging_steps=config.logging_steps, log_completions=config.log_completions,
        report_to=config.trackers() or "none",
        model_init_kwargs={"dtype": dtype, **({"attn_implementation": config.attn_implementation}
                                              if config.attn_implementation else {})},
        disable_dropout=False,   # LoraDropoutOnly switches off every dropout but the adapter's
        dataloader_num_workers=0,
        use_cpu=not cuda, bf16=cuda and dtype != "float16", fp16=cuda and dtype == "float16",
        **{checkpointing: cuda},  # memory matters on GPU; on CPU (tests) it only costs time
    )


def configure_attention(config: TrainConfig) -> None:
    """Keeps PyTorch's ``sdpa`` attention off its cuDNN backend (``--cudnn-attention`` to keep it): a known
    source of NaN gradients in bfloat16 with padded batches; without it PyTorch uses its memory-efficient
    kernel, which was faster on the H200 for GRPO's ever-changing shapes (docs/arc-rl-train.md, "bf16 NaN")."""
    import torch
    if not config.cudnn_attention and config.attn_implementation in (None, "sdpa"):
        torch.backends.cuda.enable_cudnn_sdp(False)


# ---- checkpoints and the resolved config ------------------------------------------------------

def resolve_resume(config: TrainConfig) -> str | None:
    if config.resume_from_checkpoint == "none":
        return None
    if config.resume_from_checkpoint != "auto":
        return config.resume_from_checkpoint
    from transformers.trainer_utils import get_last_checkpoint
    last = get_last_checkpoint(config.output_dir) if Path(config.output_dir).is_dir() else None
    if last:
        log.info("resuming from %s", last)
    return last


def _save_config(config: TrainConfig, resume: str | None) -> None:
    path = Path(config.output_dir) / CONFIG_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    if resume and path.is_file():
        before = yaml.safe_load(path.read_text()) or {}
        now = yaml.safe_load(to_yaml(config))
        changed = sorted(k for k in now if k != "resume_from_checkpoint" and before.get(k) != now[k])
        if changed:
            log.warning("resuming with changed options: %s", ", ".join(changed))
    path.write_text(to_yaml(config))


def _start_file_log(output_dir: Path) -> logging.Handler:
    output_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(output_dir / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("arc_rl")
    logger.addHandler(handler)
    logger.setLevel(min(logger.getEffectiveLevel(), logging.INFO))
    return handler
