"""GRPO fine-tuning of ARC induction models on TRL + PEFT, with arc_sandbox as the reward backend."""
from .prompts import build_messages, grid_to_text, render_prompt, text_to_grid
from .data import build_dataset, iter_barc_jsonl, load_tasks, task_from_json, task_to_json
from .rewards import REWARDS, SandboxReward, register_reward
from .stats import repetition_stats
from .config import ConfigError, InferConfig, TrainConfig   # run them: arc_rl.train.train / arc_rl.infer.infer
