"""``arc-rl`` options: help, YAML + flags, and one-line errors before any model is loaded."""
from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arc_rl.cli import build_parser, main
from arc_rl.config import (ConfigError, InferConfig, TrainConfig, flag, from_namespace, load_yaml,
                           to_yaml)

REPO = Path(__file__).resolve().parents[1]


def help_text(command: str) -> str:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    return " ".join(sub.format_help().split())


@pytest.mark.parametrize("command, cls", [("train", TrainConfig), ("infer", InferConfig)])
def test_help_lists_every_option_with_its_default(command, cls):
    text = help_text(command)
    for f in dataclasses.fields(cls):
        assert flag(f.name) in text, f.name
        shown = "none" if f.default is None else str(f.default)
        assert f"(default: {shown})" in text, f.name
    assert "--config FILE" in text


def test_issue_spellings_and_aliases_parse():
    ns = build_parser().parse_args(["train", "--lora_r", "1", "--gpu_memory_utilization", "0.5",
                                    "--no-load-in-4bit", "--mask-truncated-completions", "--epsilon-high", "none"])
    assert (ns.lora_r, ns.gpu_memory_utilization, ns.load_in_4bit, ns.mask_truncated_completions,
            ns.epsilon_high) == (1, 0.5, False, True, None)
    ns = build_parser().parse_args(["infer", "--model-path", "m", "--no-evaluate"])
    assert (ns.base_model_path, ns.evaluate) == ("m", False)


def test_flags_override_yaml_which_overrides_defaults(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model-path: m\ndataset_path: d\nlora_r: 1\nbeta: 0.01\nlearning_rate: 4.0e-6\n")
    ns = build_parser().parse_args(["train", "--config", str(path), "--lora-r", "8"])
    config = from_namespace(TrainConfig, ns)
    assert (config.model_path, config.lora_r, config.beta, config.learning_rate) == ("m", 8, 0.01, 4e-6)
    assert config.num_generations == TrainConfig.num_generations   # untouched default


@settings(max_examples=40, deadline=None)
@given(lora_r=st.integers(1, 512), beta=st.floats(0, 1), lr=st.floats(1e-9, 1e-2),
       alpha=st.none() | st.floats(0.5, 256), report=st.sampled_from(["none", "wandb", "tensorboard,wandb"]),
       aug=st.booleans(), loss=st.sampled_from(["dapo", "grpo", "dr_grpo"]))
def test_yaml_round_trip(tmp_path_factory, lora_r, beta, lr, alpha, report, aug, loss):
    config = TrainConfig(model_path="m", dataset_path="d.json", lora_r=lora_r, beta=beta, learning_rate=lr,
                         lora_alpha=alpha, report_to=report, use_data_augmentation=aug, loss_type=loss)
    path = tmp_path_factory.mktemp("y") / "c.yaml"
    path.write_text(to_yaml(config))
    assert TrainConfig(**load_yaml(TrainConfig, path)) == config


@pytest.mark.parametrize("yaml_text, option", [
    ("lora_rank: 4\n", "lora_rank"),
    ("lora_r: four\n", "--lora-r"),
    ("lora_r: 2.5\n", "--lora-r"),
    ("use_vllm: maybe\n", "--use-vllm"),
    ("- a list\n", "mapping"),
    ("key: [unclosed\n", "not valid YAML"),
])
def test_bad_yaml_names_the_option(tmp_path, yaml_text, option):
    path = tmp_path / "c.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError, match=option):
        load_yaml(TrainConfig, path)


@pytest.mark.parametrize("changes, option", [
    ({"num_generations": 3}, "--num-generations"),
    ({"num_generations": 1, "per_device_train_batch_size": 1}, "--num-generations"),
    ({"max_completion_length": 9000, "max_seq_length": 8192}, "--max-completion-length"),
    ({"loss_type": "luspo", "importance_sampling_level": "token"}, "--importance-sampling-level sequence"),
    ({"loss_type": "vespo", "importance_sampling_level": "sequence"}, "--importance-sampling-level token"),
    ({"loss_type": "vespo", "use_vllm": True, "vllm_importance_sampling_mode": "sequence_mask"},
     "--vllm-importance-sampling-mode"),
    ({"importance_sampling_level": "tokens"}, "--importance-sampling-level"),
    ({"vllm_server_port": 70000}, "--vllm-server-port"),
    ({"reward_deadline": 0.0}, "--reward-deadline"),
    ({"top_p": 1.5}, "--top-p"),
    ({"beta": -0.1}, "--beta"),
    ({"epsilon_high": 0.1}, "--epsilon-high"),
    ({"learning_rate": 0.0}, "--learning-rate"),
    ({"loss_type": "ppo"}, "--loss-type"),
    ({"reward_name": "nope"}, "--reward-name"),
    ({"report_to": "tensorbored"}, "--report-to"),
    ({"n_jobs": 0}, "--n-jobs"),
    ({"model_path": ""}, "--model-path"),
])
def test_bad_values_name_the_option(changes, option):
    config = dataclasses.replace(TrainConfig(model_path="m", dataset_path="d.json"), **changes)
    with pytest.raises(ConfigError, match=option):
        config.validate()


@pytest.fixture
def model_dir(tmp_path):
    """Looks like a model directory; holds no weights, so any attempt to load it would fail loudly."""
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text(json.dumps({"model_type": "llama"}))
    return tmp_path / "model"


def run_cli(args: list[str]) -> subprocess.CompletedProcess:
    """Runs the command in a fresh interpreter and reports whether torch got imported (i.e. heavy work began)."""
    code = ("import sys; from arc_rl.cli import main; rc = main(sys.argv[1:]); "
            "print('torch-imported' if 'torch' in sys.modules else 'no-torch'); sys.exit(rc)")
    return subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("case, option", [
    ("missing_model", "--model-path: no such model directory"),
    ("missing_dataset", "--dataset-path: no such file"),
    ("garbage_dataset", "--dataset-path: cannot load"),
    ("bad_batch", "--num-generations (16) must divide"),
    ("vllm", "--use-vllm: vLLM is not installed"),
])
def test_bad_input_is_one_line_before_any_model_load(tmp_path, model_dir, case, option):
    pytest.importorskip("trl")
    if case == "vllm" and __import__("importlib").util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed here")
    tasks = tmp_path / "tasks.json"
    tasks.write_text("{not json" if case == "garbage_dataset" else "{}")
    args = {"model": str(model_dir), "dataset": str(tasks), "extra": []}
    if case == "missing_model":
        args["model"] = str(tmp_path / "nowhere")
    if case == "missing_dataset":
        args["dataset"] = str(tmp_path / "nothing.json")
    if case == "bad_batch":
        args["extra"] = ["--num-generations", "16", "--per-device-train-batch-size", "8",
                         "--gradient-accumulation-steps", "1"]
    if case == "vllm":
        args["extra"] = ["--use-vllm"]
    proc = run_cli(["train", "--model-path", args["model"], "--dataset-path", args["dataset"],
                    "--output-dir", str(tmp_path / "out"), *args["extra"]])
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("arc-rl train: error: ") and option in errors[0], proc.stderr
    assert proc.stdout.strip() == "no-torch"


def test_infer_bad_input_is_one_line(tmp_path, model_dir, capsys):
    assert main(["infer", "--model-path", str(model_dir), "--dataset-path", str(tmp_path / "none.json")]) == 2
    assert capsys.readouterr().err.strip() == f"arc-rl infer: error: --dataset-path: no such file: {tmp_path}/none.json"
    assert main(["infer", "--model-path", str(model_dir), "--dataset-path", "x.json", "--n-predictions", "6",
                 "--batch-size", "4"]) == 2
    assert "--batch-size (4) must divide --n-predictions (6)" in capsys.readouterr().err


def test_the_barc_example_config_is_valid():
    config = TrainConfig(**load_yaml(TrainConfig, REPO / "examples" / "barc_grpo.yaml"))
    config.validate()
    assert (config.num_generations, config.lora_r, config.beta, config.repetition_penalty, config.scale_rewards,
            config.mask_truncated_completions) == (16, 1, 0.01, 1.02, "batch", True)
