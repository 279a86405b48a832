"""Facts about the model, the machine and the other processes that options are checked against before any
model loads: the model's context length, the LoRA ranks vLLM accepts, CUDA, a vLLM server, and this rank's
share of the node's cores. Nothing here imports torch unless it has to (``cuda_available``).
"""
from __future__ import annotations

import json
import math
import os
import time
import urllib.error
import urllib.request
from pathlib import Path


class ConfigError(ValueError):
    """A bad option value; the message is one line and names the option."""

# vLLM's ``max_lora_rank`` is a Literal of these (vllm/config/lora.py, 0.2x); other ranks are refused at start.
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
# Keys transformers configs use for the longest position the model was trained on (vLLM reads the same ones).
_CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length", "max_sequence_length",
                 "max_seq_length", "seq_len")
# RoPE types whose factor vLLM does *not* multiply into the context (already counted, or original length kept).
_UNSCALED_ROPE = ("default", "llama3", "su", "longrope")
DEFAULT_MAX_LENGTH = 8192


def model_context_length(model_path: str) -> int | None:
    """The longest sequence the model takes, as vLLM derives it from ``config.json`` (and the tokenizer's
    ``model_max_length``); None when the config is not a local file or names no length."""
    config = _read_json(Path(model_path) / "config.json")
    if config is None:
        return None
    config = config.get("text_config", config) if isinstance(config.get("text_config"), dict) else config
    lengths = [config[k] for k in _CONTEXT_KEYS if isinstance(config.get(k), (int, float)) and config[k] > 0]
    if not lengths:
        return None
    length = float(min(lengths))
    rope = config.get("rope_scaling") or config.get("rope_parameters")
    if isinstance(rope, dict):
        kind = rope.get("rope_type", rope.get("type", "default"))
        if kind not in _UNSCALED_ROPE and isinstance(rope.get("factor"), (int, float)):
            length = (rope.get("original_max_position_embeddings", length) if kind == "yarn" else length) \
                * rope["factor"]
    tokenizer = _read_json(Path(model_path) / "tokenizer_config.json") or {}
    limit = tokenizer.get("model_max_length")
    if isinstance(limit, (int, float)) and 0 < limit < 1e9:   # tokenizers without a limit store ~1e30
        length = min(length, limit)
    return int(length)


def resolve_max_length(requested: int | None, model_path: str, option: str) -> int:
    """``requested``, checked against the model's context; or, when None, that context capped at 8192
    (a 128k-token context would make vLLM reserve KV cache for one 128k sequence and skip no prompt)."""

    context = model_context_length(model_path)
    if requested is None:
        return min(context, DEFAULT_MAX_LENGTH) if context else DEFAULT_MAX_LENGTH
    if context is not None and requested > context:
        raise ConfigError(f"{option} ({requested}) is longer than the model's context ({context} tokens, "
                          f"from {model_path}/config.json)")
    return requested


def vllm_lora_rank(rank: int, option: str = "--lora-path") -> int:
    """The smallest rank vLLM accepts (its ``max_lora_rank``) that holds an adapter of ``rank``."""
    for allowed in VLLM_LORA_RANKS:
        if rank <= allowed:
            return allowed
    raise ConfigError(f"{option}: LoRA rank {rank} is above {VLLM_LORA_RANKS[-1]}, the largest vLLM serves; "
                      f"merge the adapter into the base or use --backend transformers")


def cuda_available() -> bool:
    import torch
    return torch.cuda.is_available()


def wait_for_vllm_server(host: str, port: int, timeout_s: float, interval_s: float = 2.0) -> None:
    """Returns once ``http://host:port/health`` answers 200; ConfigError after ``timeout_s``."""

    url = f"http://{host}:{port}/health"
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=max(0.1, min(5.0, timeout_s))) as reply:
                if reply.status == 200:
                    return
        except (urllib.error.URLError, OSError, ValueError):
            pass
        if time.monotonic() + interval_s > deadline:
            raise ConfigError(f"--vllm-server-host/--vllm-server-port: no vLLM server answered at {url} within "
                              f"{timeout_s:g} s (--vllm-server-timeout); start one with "
                              f"`trl vllm-serve --model MODEL` (docs/arc-rl-train.md)")
        time.sleep(interval_s)


def local_world_size() -> int:
    """Training processes on this node (set by torchrun and accelerate launch; 1 otherwise)."""
    return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def is_main_rank() -> bool:
    """Rank 0 of the whole run: the one process that writes the run's logs, alerts and config."""
    return int(os.environ.get("RANK", "0")) == 0


def workers_per_rank(cores: int | None = None, ranks: int | None = None) -> int:
    """Sandbox workers for this rank: the cores this process may use, shared evenly by the node's ranks.

    Every rank scores its own slice of the completions at the same time (TRL calls the reward on each rank
    after generation), so N ranks each starting one worker per core would run N x cores workers.
    """
    cores = len(os.sched_getaffinity(0)) if cores is None else cores
    ranks = local_world_size() if ranks is None else ranks
    return max(1, math.floor(cores / ranks))


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
