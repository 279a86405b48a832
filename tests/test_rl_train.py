"""Real GRPO steps through ``arc-rl train`` on CPU: a tiny random Llama, LoRA, and the sandbox reward."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytest.importorskip("trl")
os.environ.setdefault("OMP_NUM_THREADS", "1")   # erratic step times with 2 torch threads on 2 cores
for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.setdefault(var, "1")

import torch  # noqa: E402
import yaml  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from arc_rl.cli import main  # noqa: E402
from arc_rl.config import TrainConfig  # noqa: E402
from arc_rl.train import train  # noqa: E402
from tiny_llm import save_tiny_model, write_tasks  # noqa: E402


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("grpo")
    torch.set_num_threads(1)
    return save_tiny_model(root / "model"), write_tasks(root / "tasks.json", n=4)


def base_args(model, tasks, out) -> list[str]:
    return ["train", "--model-path", str(model), "--dataset-path", str(tasks), "--output-dir", str(out),
            "--num-generations", "4", "--per-device-train-batch-size", "8", "--max-completion-length", "12",
            "--max-seq-length", "512", "--logging-steps", "1", "--save-steps", "2", "--n-jobs", "2",
            "--lora-r", "4", "--learning-rate", "0.01", "--warmup-ratio", "0"]


def lora_tensors(directory) -> dict[str, torch.Tensor]:
    return {k: v for k, v in load_file(str(directory / "adapter_model.safetensors")).items() if "lora_" in k}


def logged(out) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_grpo_steps_train_the_adapter_save_checkpoints_and_log_metrics(setup, tmp_path):
    model, tasks = setup
    out = tmp_path / "run"
    assert main(base_args(model, tasks, out) + ["--max-steps", "3"]) == 0

    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-3"]
    first, last = lora_tensors(out / "checkpoint-2"), lora_tensors(out / "checkpoint-3")
    assert first and first.keys() == last.keys()
    # lora_B starts at zero: nonzero means the optimizer moved it; a difference means step 3 trained too
    assert any(v.abs().max() > 0 for k, v in last.items() if "lora_B" in k)
    assert any(not torch.equal(first[k], last[k]) for k in first)
    assert lora_tensors(out / "final").keys() == last.keys()

    rows = logged(out)
    assert [r["step"] for r in rows if "loss" in r] == [1, 2, 3]
    step = rows[0]
    for name in ("sandbox/reward_mean", "sandbox/solved_ratio", "sandbox/status/ok", "sandbox/run_s",
                 "repetition/unique_token_ratio", "truncation/ratio",           # the reward backend's
                 "reward", "reward_std", "entropy", "completions/clipped_ratio", "grad_norm",
                 "clip_ratio/region_mean"):                                      # TRL's
        assert name in step, name
    assert any(r["grad_norm"] > 0 for r in rows if "grad_norm" in r)

    saved = yaml.safe_load((out / "arc_rl_config.yaml").read_text())
    assert saved["max_steps"] == 3 and saved["lora_r"] == 4 and saved["model_path"] == str(model)


def test_resume_continues_from_the_last_checkpoint(setup, tmp_path):
    model, tasks = setup
    out = tmp_path / "run"
    assert main(base_args(model, tasks, out) + ["--max-steps", "2"]) == 0
    before = lora_tensors(out / "checkpoint-2")

    assert main(base_args(model, tasks, out) + ["--max-steps", "3"]) == 0   # --resume-from-checkpoint auto

    steps = [r["step"] for r in logged(out) if "loss" in r]
    assert steps == [1, 2, 3]          # step 3 only was trained in the second run
    state = json.loads((out / "checkpoint-3" / "trainer_state.json").read_text())
    assert state["global_step"] == 3
    assert any(not torch.equal(before[k], v) for k, v in lora_tensors(out / "checkpoint-3").items())
    assert "resuming with changed options: max_steps" in (out / "train.log").read_text()


def test_yaml_config_with_augmentation_kl_and_explicit_checkpoint(setup, tmp_path):
    model, tasks = setup
    out = tmp_path / "run"
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"model-path": str(model), "dataset_path": str(tasks), "beta": 0.01,
                                     "use_data_augmentation": True, "lora_r": 2, "max_steps": 2,
                                     "scale_rewards": "batch", "mask_truncated_completions": True}))
    args = base_args(model, tasks, out)
    del args[args.index("--lora-r"):args.index("--lora-r") + 2]   # taken from the file instead
    assert main(args + ["--config", str(config)]) == 0

    saved = yaml.safe_load((out / "arc_rl_config.yaml").read_text())
    assert saved["beta"] == 0.01 and saved["use_data_augmentation"] and saved["lora_r"] == 2
    assert json.loads((out / "final" / "adapter_config.json").read_text())["r"] == 2
    assert "kl" in logged(out)[0]      # beta > 0: the KL to the adapter-free reference is logged

    # explicit checkpoint: start again from step 2 of this run, into a new directory
    result = train(TrainConfig(model_path=str(model), dataset_path=str(tasks), output_dir=str(tmp_path / "again"),
                               num_generations=4, per_device_train_batch_size=8, max_completion_length=12,
                               max_seq_length=512, logging_steps=1, save_steps=10, n_jobs=2, lora_r=2, beta=0.01,
                               max_steps=3, resume_from_checkpoint=str(out / "checkpoint-2")))
    assert result.global_step == 3
    assert [r["step"] for r in logged(tmp_path / "again") if "loss" in r] == [3]   # one step trained here


# ---- the async reward inside TRL, LoRA dropout, two ranks ----------------------------------------

def test_trl_awaits_the_async_reward_concurrently_with_other_async_rewards(setup, tmp_path):
    """Real TRL steps with two async reward functions: TRL gathers them, so their calls overlap in time."""
    import asyncio
    import time

    from transformers import AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from arc_rl.data import build_dataset, load_tasks
    from arc_rl.rewards import AsyncSandboxReward
    from arc_sandbox import Limits

    model, tasks = setup
    spans: dict[str, list[tuple[float, float]]] = {"sandbox": [], "other": []}

    class TimedReward(AsyncSandboxReward):
        async def __call__(self, **kwargs):
            start = time.perf_counter()
            try:
                return await super().__call__(**kwargs)
            finally:
                spans["sandbox"].append((start, time.perf_counter()))

    async def other(completions, **kwargs):
        start = time.perf_counter()
        await asyncio.sleep(0.5)
        spans["other"].append((start, time.perf_counter()))
        return [0.0] * len(completions)

    tokenizer = AutoTokenizer.from_pretrained(model)
    dataset = build_dataset(lambda: list(load_tasks(tasks).values()), tokenizer, prompt_version="barc")
    args = GRPOConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, per_device_train_batch_size=8,
                      num_generations=4, max_completion_length=12, max_steps=2, logging_steps=1, save_strategy="no",
                      report_to="none", seed=0, dataloader_num_workers=0)
    with TimedReward("arc-v1", workers=2, limits=Limits(timeout_s=2.0)) as reward:
        trainer = GRPOTrainer(model=str(model), reward_funcs=[reward, other], args=args, train_dataset=dataset,
                              processing_class=tokenizer)
        trainer.train()
    assert len(spans["sandbox"]) == len(spans["other"]) == 2
    for (s0, s1), (o0, o1) in zip(spans["sandbox"], spans["other"]):
        assert s0 < o1 and o0 < s1          # run side by side, not one after the other
    logs = [row for row in trainer.state.log_history if "rewards/arc-v1/mean" in row]
    assert len(logs) == 2 and all("sandbox/reward_mean" in row for row in logs)


def test_lora_dropout_survives_trl_and_the_base_dropout_is_off(setup):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from arc_rl.monitor import LoraDropoutOnly
    from arc_rl.train import grpo_config

    model, _ = setup
    base = AutoModelForCausalLM.from_pretrained(model)
    base.model.layers[0].extra_dropout = torch.nn.Dropout(0.3)   # a base dropout layer, as many models have
    peft_model = get_peft_model(base, LoraConfig(r=2, lora_dropout=0.5, target_modules=["q_proj", "v_proj"],
                                                 task_type="CAUSAL_LM"))
    LoraDropoutOnly().on_train_begin(None, None, None, model=peft_model)
    dropouts = {name: m.p for name, m in peft_model.named_modules() if isinstance(m, torch.nn.Dropout)}
    lora = {n: p for n, p in dropouts.items() if ".lora_dropout." in n}
    assert lora and set(lora.values()) == {0.5}
    assert {p for n, p in dropouts.items() if n not in lora} == {0.0}
    config = TrainConfig(model_path="m", dataset_path="d", lora_dropout=0.5, max_seq_length=512)
    assert grpo_config(config, max_steps=1, cuda=False).disable_dropout is False   # TRL would zero LoRA's too


def test_two_ranks_share_the_cores_and_only_rank_0_writes_the_run_files(setup, tmp_path):
    """Two CPU ranks through torchrun (gloo): each scores its slice; one config, log and metrics file."""
    import shutil
    import subprocess
    import sys

    if shutil.which("torchrun") is None and not (Path(sys.executable).parent / "torchrun").exists():
        pytest.skip("torchrun is not installed")
    model, tasks = setup
    out = tmp_path / "run"
    args = base_args(model, tasks, out) + ["--max-steps", "2", "--n-jobs", "-1", "--per-device-train-batch-size",
                                           "4"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           "--standalone", "-m", "arc_rl.cli", *args[:]], capture_output=True, text=True,
                          timeout=600, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    cores = len(os.sched_getaffinity(0))
    per_rank = max(1, cores // 2)
    log = (out / "train.log").read_text()
    assert f"sandbox: {per_rank} workers on this rank (2 training processes on this node)" in log
    assert log.count("sandbox: ") == 1            # rank 1 writes nothing to the run's log
    rows = logged(out)
    assert [r["step"] for r in rows if "loss" in r] == [1, 2]     # one metrics line per step, not one per rank
    assert yaml.safe_load((out / "arc_rl_config.yaml").read_text())["max_steps"] == 2
    # 2 ranks x 4 completions = 8 = 2 tasks x 4 generations per step, each rank scoring its own 4
    assert (out / "final" / "adapter_model.safetensors").is_file()


# ---- the collapse monitor, fed metrics directly -----------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from arc_rl.monitor import CollapseMonitor, Rule, Trigger  # noqa: E402


def test_monitor_warns_once_per_episode_and_writes_alerts(tmp_path, caplog):
    monitor = CollapseMonitor(max_completion_length=100, path=tmp_path / "alerts.jsonl")
    lengths = [40, 42, 95, 97, 50, 96]
    fired = [bool(monitor.check({"completions/mean_length": v}, step)) for step, v in enumerate(lengths)]
    assert fired == [False, False, True, False, False, True]   # edge-triggered: fires, clears, fires again
    assert [a.step for a in monitor.alerts] == [2, 5]
    assert "completions/mean_length = 95" in caplog.text and "length cap" in caplog.text
    assert len((tmp_path / "alerts.jsonl").read_text().splitlines()) == 2


def test_monitor_baseline_and_average_rules():
    monitor = CollapseMonitor(max_completion_length=100)
    for step, (entropy, grad) in enumerate([(1.0, 0.5), (1.02, 0.6), (0.98, 0.4), (1.0, 0.5)]):
        assert monitor.check({"entropy": entropy, "grad_norm": grad}, step) == []
    alerts = monitor.check({"entropy": 0.5, "grad_norm": 4.0}, 4)       # entropy halves, grad norm x8
    assert {a.metric for a in alerts} == {"entropy", "grad_norm"}
    alerts = monitor.check({"sampling/importance_sampling_ratio/mean": 0.5,
                            "repetition/ngram_4_most_repeated_frequency": 0.6, "entropy": 0.5}, 5)
    # entropy stays low: still the same episode, no second warning
    assert {a.metric for a in alerts} == {"sampling/importance_sampling_ratio/mean",
                                          "repetition/ngram_4_most_repeated_frequency"}


def test_monitor_flags_a_nan_gradient_norm():
    monitor = CollapseMonitor(max_completion_length=100)
    assert monitor.check({"grad_norm": 0.3, "loss": 0.1}, 1) == []
    [alert] = monitor.check({"grad_norm": float("nan"), "loss": 0.1}, 2)
    assert alert.metric == "grad_norm" and "NaN" in alert.message
    assert monitor.check({"grad_norm": 0.3}, 3) == [] and len(monitor.check({"grad_norm": float("inf")}, 4)) == 1


@settings(max_examples=50, deadline=None)
@given(value=st.floats(0.01, 100), steps=st.integers(1, 30))
def test_a_steady_metric_never_trips_relative_rules(value, steps):
    rules = [Rule("m", Trigger.ABOVE_BASELINE, 2.0, "x"), Rule("m", Trigger.AWAY_FROM_AVERAGE, 0.3, "y")]
    monitor = CollapseMonitor(max_completion_length=10, rules=rules)
    assert all(monitor.check({"m": value}, step) == [] for step in range(steps))


def test_monitor_takes_solved_groups_for_success_not_a_lost_signal():
    monitor = CollapseMonitor(max_completion_length=100)
    # every group identical because every completion solved its task: quiet
    assert monitor.check({"frac_reward_zero_std": 1.0, "sandbox/solved_ratio": 0.95}, 1) == []
    # identical because nothing is solved: that is the lost signal the rule is for
    [alert] = monitor.check({"frac_reward_zero_std": 1.0, "sandbox/solved_ratio": 0.1}, 2)
    assert alert.metric == "frac_reward_zero_std"


def test_monitor_grad_norm_baseline_ignores_steps_without_gradient():
    monitor = CollapseMonitor(max_completion_length=100)
    # zero gradients (all groups had identical rewards) between normal steps must not lower the baseline to 0
    for step, grad in enumerate([0.3, 0.0, 0.0, 0.0, 0.4, 0.0, 0.35, 0.0]):
        assert monitor.check({"grad_norm": grad}, step) == []
    assert monitor.check({"grad_norm": 0.5}, 8) == []
    assert [a.metric for a in monitor.check({"grad_norm": 3.0}, 9)] == ["grad_norm"]   # a real spike still warns
