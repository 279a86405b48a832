"""GRPO fine-tuning of ARC induction models on TRL + PEFT, with arc_sandbox as the reward backend."""
from .prompts import build_messages, grid_to_text, render_prompt, text_to_grid
from .data import build_dataset, cached_task_from_json, iter_barc_jsonl, load_tasks, task_from_json, task_to_json
from .rewards import REWARDS, AsyncSandboxReward, SandboxReward, register_reward, score_many, score_tasks
from .stats import RepetitionTable, TokenPack, measure_repetition, pack_tokens, repetition_stats, repetition_table
from .config import ConfigError, InferConfig, TrainConfig   # run them: arc_rl.train.train / arc_rl.infer.infer

__all__ = [
    "AsyncSandboxReward", "ConfigError", "InferConfig", "REWARDS", "RepetitionTable", "SandboxReward", "TokenPack", "TrainConfig",
    "build_dataset", "build_messages", "cached_task_from_json", "grid_to_text", "iter_barc_jsonl", "load_tasks",
    "measure_repetition", "pack_tokens", "register_reward", "render_prompt", "repetition_stats", "repetition_table",
    "score_many", "score_tasks", "task_from_json", "task_to_json", "text_to_grid",
]
