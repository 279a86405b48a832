"""``arc-rl infer`` with the transformers back-end on CPU: sampling, sandbox evaluation, reverting, submission."""
from __future__ import annotations

import gzip
import json
import os

import numpy as np
import pytest

pytest.importorskip("peft")
os.environ.setdefault("OMP_NUM_THREADS", "1")
for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.setdefault(var, "1")

import torch  # noqa: E402

from arc_rl.cli import main  # noqa: E402
from arc_rl.config import InferConfig  # noqa: E402
from arc_rl.data import load_tasks  # noqa: E402
from arc_rl.infer import infer  # noqa: E402
from arc_sandbox import Limits, Status, run_program  # noqa: E402
from arc_sandbox.scoring.augment import Augmentation  # noqa: E402
from arc_sandbox.scoring.submission import validate_submission  # noqa: E402
from tiny_llm import PROGRAMS, save_tiny_model, write_tasks  # noqa: E402


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("infer")
    torch.set_num_threads(1)
    return save_tiny_model(root / "model"), write_tasks(root / "tasks.json", n=3)


def test_infer_evaluates_reverts_and_writes_results_and_submission(setup, tmp_path, capsys):
    model, tasks_path = setup
    out = tmp_path / "out"
    assert main(["infer", "--model-path", str(model), "--dataset-path", str(tasks_path), "--output-folder", str(out),
                 "--n-predictions", "8", "--batch-size", "4", "--use-data-augmentation", "--max-output-tokens", "12",
                 "--max-model-len", "512", "--n-jobs", "2", "--backend", "transformers"]) == 0
    tasks = load_tasks(tasks_path)

    [path] = out.glob("*_predictions.json.gz")
    with gzip.open(path, "rt") as f:
        predictions = json.load(f)
    assert set(predictions) == set(tasks) and all(len(p) == 8 for p in predictions.values())

    ran_ok = 0
    for task_id, preds in predictions.items():
        task = tasks[task_id]
        assert len({json.dumps(p["augmentation"]) for p in preds}) == 2       # one augmentation per round
        for p in preds:
            assert {"text", "code", "status", "outputs", "augmentation", "fingerprint", "train", "test"} <= p.keys()
            if p["status"] != Status.OK.value:
                assert p["fingerprint"] is None
                continue
            ran_ok += 1
            # the program ran on the augmented task and its outputs were mapped back to the original one
            augmentation = Augmentation.from_json(p["augmentation"])
            again = run_program(p["code"], augmentation.apply_task(task).inputs, limits=Limits(timeout_s=5))
            outputs = augmentation.revert_outputs(again.outputs)
            assert [g.tolist() for g in outputs] == p["outputs"]
            if p["code"].strip() == PROGRAMS["identity"]:   # commutes with every augmentation
                assert p["outputs"] == [g.tolist() for g in task.inputs]
            solved_train = all(np.array_equal(g, pair.output) for g, pair in zip(outputs, task.train))
            assert p["train"]["all_correct"] == solved_train
    assert ran_ok > 0, "the tiny model should emit some runnable program tokens"

    [submission] = out.glob("*_submission.json")
    assert validate_submission(submission, tasks) == []
    [metrics] = out.glob("*_metrics.txt")
    assert "MEAN" in metrics.read_text() and "MEAN" in capsys.readouterr().out


def test_no_evaluate_keeps_texts_and_a_lora_adapter_loads(setup, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model, tasks_path = setup
    adapter = tmp_path / "adapter"
    peft_model = get_peft_model(AutoModelForCausalLM.from_pretrained(model),
                                LoraConfig(r=2, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    peft_model.save_pretrained(adapter)

    result = infer(InferConfig(base_model_path=str(model), lora_path=str(adapter), dataset_path=str(tasks_path),
                               output_folder=str(tmp_path / "out"), n_predictions=2, batch_size=2,
                               max_output_tokens=8, max_model_len=512, evaluate=False, backend="transformers"))
    with gzip.open(result.predictions_path, "rt") as f:
        predictions = json.load(f)
    assert sum(len(p) for p in predictions.values()) == 3 * 2
    for p in (p for preds in predictions.values() for p in preds):
        assert isinstance(p["text"], str) and p["status"] is None and p["augmentation"] is None
    assert result.submission_path is None and not list((tmp_path / "out").glob("*_submission.json"))


def test_prompts_too_long_for_the_model_are_skipped_not_fatal(setup, tmp_path):
    model, tasks_path = setup
    result = infer(InferConfig(base_model_path=str(model), dataset_path=str(tasks_path),
                               output_folder=str(tmp_path / "out"), n_predictions=1, batch_size=1,
                               max_output_tokens=8, max_model_len=16, backend="transformers", n_jobs=1))
    assert result.skipped_prompts == 3 and result.predictions == {}
    assert result.table.mean.n == 0      # every task is in the table, unsolved


def test_a_task_without_test_inputs_is_skipped_and_counted(setup, tmp_path):
    model, tasks_path = setup
    tasks = json.loads(tasks_path.read_text())
    tasks["no_test"] = {"train": [{"input": [[1]], "output": [[1]]}], "test": []}
    path = tmp_path / "tasks.json"
    path.write_text(json.dumps(tasks))
    result = infer(InferConfig(base_model_path=str(model), dataset_path=str(path), output_folder=str(tmp_path / "out"),
                               n_predictions=1, batch_size=1, max_output_tokens=4, max_model_len=512,
                               backend="transformers", n_jobs=1))
    assert result.skipped_tasks == {"no_test_input": 1}
    assert set(result.predictions) == set(tasks) - {"no_test"}
    assert "no_test" in json.loads(result.submission_path.read_text())   # still listed, with no test inputs


def test_a_crash_while_sampling_loses_only_the_chunk_in_progress_and_the_run_resumes(setup, tmp_path, monkeypatch):
    import arc_rl.infer as infer_module
    from arc_rl.config import ConfigError

    model, tasks_path = setup
    out = tmp_path / "out"
    config = dict(base_model_path=str(model), dataset_path=str(tasks_path), output_folder=str(out), n_predictions=4,
                  batch_size=2, use_data_augmentation=True, max_output_tokens=8, max_model_len=512,
                  backend="transformers", n_jobs=2)
    real = infer_module.make_generator
    calls = []

    class Crashing:
        def __init__(self, inner):
            self.inner = inner

        def generate(self, prompts, n):
            calls.append(len(prompts))
            if len(calls) == 3:
                raise RuntimeError("CUDA error: an illegal memory access (simulated)")
            return self.inner.generate(prompts, n)

    def crashing_generator(cfg):
        generator, tokenizer = real(cfg)
        return Crashing(generator), tokenizer
    monkeypatch.setattr(infer_module, "PROMPTS_PER_CHUNK", 2)   # 3 tasks x 2 rounds = 6 prompts, 3 chunks
    monkeypatch.setattr(infer_module, "make_generator", crashing_generator)
    with pytest.raises(RuntimeError, match="simulated"):
        infer(InferConfig(**config))
    saved = [json.loads(line) for line in (out / "generations.jsonl").read_text().splitlines()]
    assert "header" in saved[0] and len(saved) == 1 + 4            # two chunks of two prompts were kept
    kept = {(line["round"], line["task_id"]): line for line in saved[1:]}

    calls.clear()
    monkeypatch.setattr(infer_module, "make_generator", real)
    result = infer(InferConfig(**config))                         # the same command again
    lines = [json.loads(line) for line in (out / "generations.jsonl").read_text().splitlines()][1:]
    assert len(lines) == 6 and len({(line["round"], line["task_id"]) for line in lines}) == 6
    for key, line in kept.items():                                # nothing regenerated, nothing lost
        assert next(x for x in lines if (x["round"], x["task_id"]) == key) == line
    assert sum(len(p) for p in result.predictions.values()) == 6 * 2
    for task_id, preds in result.predictions.items():
        texts = [t for line in lines if line["task_id"] == task_id for t in line["texts"]]
        assert sorted(p.text for p in preds) == sorted(texts)

    # evaluation alone, from the file, without a model
    again = infer(InferConfig(dataset_path=str(tasks_path), output_folder=str(tmp_path / "eval"), n_jobs=2,
                              evaluate_only=str(out / "generations.jsonl")))
    assert {k: [(p.text, p.status, p.outputs) for p in v] for k, v in again.predictions.items()} == \
        {k: [(p.text, p.status, p.outputs) for p in v] for k, v in result.predictions.items()}
    assert again.submission_path.is_file()

    with pytest.raises(ConfigError, match="--temperature"):
        infer(InferConfig(**{**config, "temperature": 0.5}))


def test_evaluate_only_needs_no_model_but_a_file(tmp_path, capsys):
    tasks = write_tasks(tmp_path / "tasks.json", n=1)
    assert main(["infer", "--dataset-path", str(tasks), "--evaluate-only", str(tmp_path / "none.jsonl")]) == 2
    assert capsys.readouterr().err.strip() == f"arc-rl infer: error: --evaluate-only: no such file: {tmp_path}/none.jsonl"
