"""Options checked against the model, the machine and other processes before any model loads
(``arc_rl.environment``): context length, vLLM LoRA ranks, CUDA, a vLLM server, cores per rank, rank 0."""
from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from arc_rl.config import ConfigError, InferConfig, TrainConfig
from arc_rl.environment import (VLLM_LORA_RANKS, model_context_length, resolve_max_length, vllm_lora_rank,
                                wait_for_vllm_server, workers_per_rank)

REPO = Path(__file__).resolve().parents[1]


def model_dir(tmp_path: Path, config: dict, tokenizer: dict | None = None) -> Path:
    path = tmp_path / "model"
    path.mkdir(exist_ok=True)
    (path / "config.json").write_text(json.dumps({"model_type": "llama", **config}))
    if tokenizer is not None:
        (path / "tokenizer_config.json").write_text(json.dumps(tokenizer))
    return path


@pytest.mark.parametrize("config, tokenizer, expected", [
    ({"max_position_embeddings": 4096}, None, 4096),
    ({"max_position_embeddings": 131072, "rope_scaling": {"rope_type": "llama3", "factor": 8.0}}, None, 131072),
    ({"max_position_embeddings": 4096, "rope_scaling": {"rope_type": "linear", "factor": 2.0}}, None, 8192),
    ({"max_position_embeddings": 32768,
      "rope_scaling": {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 4096}}, None, 16384),
    ({"max_position_embeddings": 4096}, {"model_max_length": 2048}, 2048),
    ({"max_position_embeddings": 4096}, {"model_max_length": 1e30}, 4096),     # "no limit" in tokenizers
    ({"n_positions": 1024, "max_position_embeddings": 2048}, None, 1024),
    ({"text_config": {"max_position_embeddings": 3000}}, None, 3000),
    ({"hidden_size": 64}, None, None),
])
def test_context_length_is_read_as_vllm_reads_it(tmp_path, config, tokenizer, expected):
    assert model_context_length(str(model_dir(tmp_path, config, tokenizer))) == expected


def test_context_length_of_a_hub_id_or_broken_config_is_unknown(tmp_path):
    assert model_context_length("meta-llama/Llama-3.1-8B") is None
    (tmp_path / "config.json").write_text("{not json")
    assert model_context_length(str(tmp_path)) is None


def test_max_length_defaults_to_the_context_and_refuses_more(tmp_path):
    small = str(model_dir(tmp_path, {"max_position_embeddings": 4096}))
    assert resolve_max_length(None, small, "--max-seq-length") == 4096
    assert resolve_max_length(4096, small, "--max-seq-length") == 4096
    with pytest.raises(ConfigError, match=r"--max-model-len \(8192\) is longer than the model's context \(4096"):
        resolve_max_length(8192, small, "--max-model-len")
    big = str(model_dir(tmp_path, {"max_position_embeddings": 131072}))
    assert resolve_max_length(None, big, "--max-seq-length") == 8192     # capped: KV cache for one 128k sequence
    assert resolve_max_length(9700, big, "--max-seq-length") == 9700
    assert resolve_max_length(None, "org/model", "--max-seq-length") == 8192


@given(st.integers(1, 512))
def test_lora_rank_is_rounded_up_to_the_smallest_rank_vllm_accepts(rank):
    served = vllm_lora_rank(rank)
    assert served in VLLM_LORA_RANKS and served >= rank
    assert all(r < rank for r in VLLM_LORA_RANKS if r < served)


@given(st.integers(513, 10_000))
def test_lora_ranks_vllm_cannot_serve_are_refused_naming_the_option(rank):
    with pytest.raises(ConfigError, match=f"--lora-path: LoRA rank {rank} is above 512"):
        vllm_lora_rank(rank)


@given(cores=st.integers(1, 256), ranks=st.integers(1, 16))
def test_ranks_on_a_node_share_its_cores(cores, ranks):
    workers = workers_per_rank(cores, ranks)
    assert workers >= 1
    assert workers * ranks <= cores or workers == 1      # never oversubscribed, unless below one core per rank
    assert (workers + 1) * ranks > cores                  # and no core left idle that a rank could have


def test_train_workers_follow_the_ranks_of_the_launcher(monkeypatch):
    cores = len(os.sched_getaffinity(0))
    config = TrainConfig(model_path="m", dataset_path="d")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    assert config.workers == cores
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(cores * 2))
    assert config.workers == 1
    assert TrainConfig(model_path="m", dataset_path="d", n_jobs=3).workers == 3


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_a_vllm_server_that_answers_is_found_at_once():
    server = http.server.HTTPServer(("127.0.0.1", 0), _Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        start = time.monotonic()
        wait_for_vllm_server("127.0.0.1", server.server_address[1], timeout_s=5, interval_s=0.1)
        assert time.monotonic() - start < 2
    finally:
        server.shutdown()


def test_no_vllm_server_is_one_line_after_the_timeout():
    with __import__("socket").socket() as s:   # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    with pytest.raises(ConfigError) as error:
        wait_for_vllm_server("127.0.0.1", port, timeout_s=1.0, interval_s=0.2)
    assert 0.5 < time.monotonic() - start < 5
    message = str(error.value)
    assert "\n" not in message and f"http://127.0.0.1:{port}/health" in message and "trl vllm-serve" in message


def run_cli(args: list[str], env_extra: dict[str, str]) -> subprocess.CompletedProcess:
    code = "import sys; from arc_rl.cli import main; sys.exit(main(sys.argv[1:]))"
    env = {**os.environ, **env_extra}
    return subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env=env)


def test_use_vllm_without_cuda_is_one_line(tmp_path):
    """vLLM is not installable here, so a stand-in package named vllm makes the check reach the CUDA test."""
    pytest.importorskip("torch")
    fake = tmp_path / "site"
    (fake / "vllm").mkdir(parents=True)
    (fake / "vllm" / "__init__.py").write_text("raise ImportError('stand-in: must never be imported')\n")
    model = model_dir(tmp_path, {"max_position_embeddings": 4096})
    tasks = tmp_path / "tasks.json"
    tasks.write_text("{}")
    env = {"PYTHONPATH": f"{fake}{os.pathsep}{REPO}", "CUDA_VISIBLE_DEVICES": ""}
    for args, option in ((["train", "--model-path", str(model), "--dataset-path", str(tasks), "--use-vllm",
                           "--output-dir", str(tmp_path / "out")], "--use-vllm"),
                         (["infer", "--model-path", str(model), "--dataset-path", str(tasks), "--backend", "vllm",
                           "--output-folder", str(tmp_path / "out")], "--backend vllm")):
        proc = run_cli(args, env)
        errors = [line for line in proc.stderr.splitlines() if line.strip()]
        assert proc.returncode == 2 and len(errors) == 1, proc.stderr
        assert errors[0].endswith(f"error: {option}: no CUDA GPU is visible (vLLM generates on GPUs only)")


@pytest.mark.parametrize("command, flag", [("train", "--max-seq-length"), ("infer", "--max-model-len")])
def test_a_length_above_the_models_context_is_one_line_before_loading(tmp_path, command, flag):
    model = model_dir(tmp_path, {"max_position_embeddings": 4096})
    tasks = tmp_path / "tasks.json"
    tasks.write_text("{}")
    out = "--output-dir" if command == "train" else "--output-folder"
    proc = run_cli([command, "--model-path", str(model), "--dataset-path", str(tasks), flag, "8192",
                    out, str(tmp_path / "out")], {})
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"arc-rl {command}: error: {flag} (8192) is longer than the model's context "
                                   f"(4096 tokens, from {model}/config.json)")


def test_context_default_is_resolved_before_the_length_check(tmp_path):
    model = model_dir(tmp_path, {"max_position_embeddings": 1024})
    tasks = tmp_path / "tasks.json"
    tasks.write_text("{}")
    config = TrainConfig(model_path=str(model), dataset_path=str(tasks), max_completion_length=1024)
    config.validate()   # the length is not known yet
    with pytest.raises(ConfigError, match=r"--max-completion-length \(1024\) must be smaller than --max-seq-length "
                                          r"\(1024\)"):
        config.check_environment()
    infer = InferConfig(base_model_path=str(model), dataset_path=str(tasks), max_output_tokens=256, backend="transformers")
    infer.check_environment()
    assert infer.max_model_len == 1024
