"""``arc-rl infer``: sample programs for every task, run them in the sandbox, score, vote, submit.

``n_predictions / batch_size`` rounds; in each round every task gets one prompt (freshly augmented when
``--use-data-augmentation``) sampled ``batch_size`` times. With ``--evaluate`` every completion runs in the
sandbox on the task *as shown in its prompt*; its outputs are reverted to the original task before scoring,
so metrics, fingerprints and the submission are all in the original task's space.

Output (in ``--output-folder``, file names stamped ``{n}preds_{time}_``):

- ``predictions.json.gz``: ``{task_id: [prediction, ...]}``, one prediction per completion (see
  :class:`Prediction`);
- with ``--evaluate``: ``metrics.txt`` / ``metrics.json`` (the table printed at the end) and
  ``submission.json`` (ARC Prize layout, two attempts per test input).
"""
from __future__ import annotations

import dataclasses
import gzip
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np

from arc_sandbox.extract import extract_code
from arc_sandbox.limits import Limits
from arc_sandbox.results import Job, ProgramResult, Status
from arc_sandbox.tasks import Task

from .config import InferConfig, load_tasks_or_fail, to_yaml

log = logging.getLogger(__name__)


@dataclass
class Prompt:
    task: Task                 # the original task
    shown: Task                # the task as rendered in the prompt (augmented or not)
    augmentation: Any          # arc_sandbox.augment.Augmentation or None
    text: str


@dataclass
class Prediction:
    """One completion, as written to ``predictions.json.gz``. Grids are nested lists in the original task's space."""

    text: str
    code: str | None
    augmentation: dict | None
    status: str | None = None                      # arc_sandbox Status; None without --evaluate
    error_type: str | None = None
    error_message: str | None = None
    outputs: list[list[list[int]] | None] | None = None   # one per task input (train, then test)
    fingerprint: str | None = None
    train: dict[str, Any] | None = None            # pixel_score, correct_grids, all_correct, n
    test: dict[str, Any] | None = None


@dataclass
class InferResult:
    predictions_path: Path
    predictions: dict[str, list[Prediction]]
    metrics_path: Path | None = None
    submission_path: Path | None = None
    table: Any = None                               # arc_sandbox.metrics.MetricsTable with --evaluate
    skipped_prompts: int = 0
    timings: dict[str, float] = field(default_factory=dict)


class Generator(Protocol):
    def generate(self, prompts: Sequence[str], n: int) -> list[list[str]]:
        """``n`` completions per prompt, without the prompt."""


def infer(config: InferConfig) -> InferResult:
    config.validate()
    config.check_environment()
    tasks = load_tasks_or_fail(config.dataset_path, config.max_tasks)
    log.info("%d tasks, %d rounds of %d samples, back-end %s", len(tasks),
             config.n_predictions // config.batch_size, config.batch_size, config.resolved_backend)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    generator, tokenizer = make_generator(config)
    timings["load_s"] = time.perf_counter() - start

    start = time.perf_counter()
    rng = np.random.default_rng(config.seed)
    prompts, completions, skipped = [], [], 0
    for _ in range(config.n_predictions // config.batch_size):
        round_prompts = [_prompt(task, tokenizer, config, rng) for task in tasks.values()]
        kept = [p for p in round_prompts if _fits(p.text, tokenizer, config)]
        skipped += len(round_prompts) - len(kept)
        prompts += kept
        completions += generator.generate([p.text for p in kept], config.batch_size)
    timings["generate_s"] = time.perf_counter() - start
    if skipped:
        log.warning("%d prompts longer than --max-model-len minus --max-output-tokens were skipped", skipped)

    start = time.perf_counter()
    predictions = (evaluate(prompts, completions, config) if config.evaluate
                   else _unevaluated(prompts, completions))
    timings["evaluate_s"] = time.perf_counter() - start
    return _write(config, tasks, predictions, skipped, timings)


def _prompt(task: Task, tokenizer, config: InferConfig, rng: np.random.Generator) -> Prompt:
    from .prompts import render_prompt
    augmentation = None
    shown = task
    if config.use_data_augmentation:
        from arc_sandbox.augment import random_augmentation
        augmentation = random_augmentation(rng)
        shown = augmentation.apply_task(task)
    return Prompt(task=task, shown=shown, augmentation=augmentation,
                  text=render_prompt(shown, tokenizer, config.prompt_version))


def _fits(text: str, tokenizer, config: InferConfig) -> bool:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"]) <= config.max_model_len - config.max_output_tokens


# ---- evaluation ---------------------------------------------------------------------------------

def evaluate(prompts: list[Prompt], completions: list[list[str]], config: InferConfig) -> dict[str, list[Prediction]]:
    """Run every completion on its shown task; revert outputs; score against the original task."""
    from arc_sandbox import RaySandbox, Sandbox

    jobs = [Job(text=text, inputs=prompt.shown.inputs) for prompt, texts in zip(prompts, completions)
            for text in texts]
    limits = Limits(timeout_s=config.code_execution_timeout, memory_mb=config.code_execution_memory_limit_mb,
                    seed=config.seed)
    if config.ray is None:
        sandbox = Sandbox(workers=config.workers, limits=limits)
    else:   # every node of the cluster; --n-jobs then counts per node
        sandbox = RaySandbox(config.ray, workers_per_node=None if config.n_jobs == -1 else config.n_jobs, limits=limits)
    with sandbox:
        results = sandbox.run(jobs)
    predictions: dict[str, list[Prediction]] = {}
    flat = iter(results)
    for prompt, texts in zip(prompts, completions):
        for text in texts:
            result = reverted(next(flat), prompt)
            predictions.setdefault(prompt.task.id, []).append(_scored(text, result, prompt))
    return predictions


def reverted(result: ProgramResult, prompt: Prompt) -> ProgramResult:
    """The result with its outputs mapped back from the shown (augmented) task to the original one."""
    if prompt.augmentation is None:
        return result
    try:
        outputs = prompt.augmentation.revert_outputs(result.outputs)
    except (ValueError, IndexError) as exc:   # an odd grid from a failed run must not sink the batch
        return dataclasses.replace(result, outputs=[None] * len(result.outputs),
                                   notes=[*result.notes, f"outputs could not be reverted: {exc}"])
    return dataclasses.replace(result, outputs=outputs)


def _scored(text: str, result: ProgramResult, prompt: Prompt) -> Prediction:
    from arc_sandbox.metrics import fingerprint, score_outputs

    prediction = Prediction(text=text, code=result.code or None, augmentation=_augmentation_json(prompt),
                            status=result.status.value, error_type=result.error_type,
                            error_message=result.error_message,
                            outputs=[None if g is None else np.asarray(g).tolist() for g in result.outputs])
    if result.status is Status.OK:
        score = score_outputs(result.outputs, prompt.task)
        prediction.fingerprint = fingerprint(result.outputs)
        prediction.train = dataclasses.asdict(score.train)
        prediction.test = dataclasses.asdict(score.test)
    return prediction


def _unevaluated(prompts: list[Prompt], completions: list[list[str]]) -> dict[str, list[Prediction]]:
    predictions: dict[str, list[Prediction]] = {}
    for prompt, texts in zip(prompts, completions):
        for text in texts:
            predictions.setdefault(prompt.task.id, []).append(
                Prediction(text=text, code=extract_code(text), augmentation=_augmentation_json(prompt)))
    return predictions


def _augmentation_json(prompt: Prompt) -> dict | None:
    return None if prompt.augmentation is None else prompt.augmentation.to_json()


def results_for_metrics(predictions: dict[str, list[Prediction]]) -> dict[str, list[ProgramResult]]:
    """ProgramResults (reverted outputs) rebuilt from predictions, for arc_sandbox's metrics and voting."""
    def result(p: Prediction) -> ProgramResult:
        outputs = [None if g is None else np.asarray(g, dtype=np.int64) for g in p.outputs or []]
        status = Status(p.status)
        return ProgramResult(status=status, outputs=outputs, grid_statuses=[status] * len(outputs),
                             error_type=p.error_type, code=p.code or "")
    return {task_id: [result(p) for p in preds] for task_id, preds in predictions.items()}


# ---- writing ------------------------------------------------------------------------------------

def _write(config: InferConfig, tasks: dict[str, Task], predictions: dict[str, list[Prediction]],
           skipped: int, timings: dict[str, float]) -> InferResult:
    folder = Path(config.output_folder)
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{config.n_predictions}preds_{time.strftime('%Y_%m_%d_%H_%M_%S')}"
    predictions_path = folder / f"{stem}_predictions.json.gz"
    with gzip.open(predictions_path, "wt", encoding="utf-8") as out:
        json.dump({tid: [dataclasses.asdict(p) for p in preds] for tid, preds in predictions.items()}, out)
    (folder / f"{stem}_config.yaml").write_text(to_yaml(config))
    result = InferResult(predictions_path=predictions_path, predictions=predictions, skipped_prompts=skipped,
                         timings=timings)
    if not config.evaluate:
        log.info("wrote %s", predictions_path)
        return result

    from arc_sandbox.metrics import aggregate
    from arc_sandbox.submission import build_submission, write_submission

    programs = results_for_metrics(predictions)
    table = aggregate(programs, tasks)
    result.table = table
    result.metrics_path = folder / f"{stem}_metrics.txt"
    result.metrics_path.write_text(table.to_text(max_rows=None))
    (folder / f"{stem}_metrics.json").write_text(table.to_json())
    result.submission_path = folder / f"{stem}_submission.json"
    write_submission(build_submission(programs, tasks), result.submission_path)
    print(table.to_text())
    log.info("wrote %s, %s and %s", predictions_path, result.metrics_path, result.submission_path)
    return result


# ---- generation back-ends -----------------------------------------------------------------------

def make_generator(config: InferConfig) -> tuple[Generator, Any]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(config.base_model_path)
    tokenizer.padding_side = "left"
    if config.resolved_backend == "vllm":
        return VLLMGenerator(config, tokenizer), tokenizer
    return TransformersGenerator(config, tokenizer), tokenizer


class TransformersGenerator:
    """``model.generate`` with a left-padded batch of prompts; slow but needs nothing beyond transformers."""

    def __init__(self, config: InferConfig, tokenizer, completions_per_batch: int = 64):
        import torch
        from transformers import AutoModelForCausalLM

        self.config, self.tokenizer = config, tokenizer
        cuda = torch.cuda.is_available()
        self.device = "cuda" if cuda else "cpu"
        model = AutoModelForCausalLM.from_pretrained(config.base_model_path,
                                                     dtype=torch.bfloat16 if cuda else torch.float32)
        if config.lora_path is not None:
            from peft import PeftModel
            model = PeftModel.from_pretrained(model, config.lora_path).merge_and_unload()
        self.model = model.to(self.device).eval()
        self.completions_per_batch = completions_per_batch
        torch.manual_seed(config.seed)

    def generate(self, prompts: Sequence[str], n: int) -> list[list[str]]:
        import torch

        per_batch = max(1, self.completions_per_batch // n)
        texts: list[list[str]] = []
        for start in range(0, len(prompts), per_batch):
            chunk = list(prompts[start:start + per_batch])
            inputs = self.tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False)
            with torch.no_grad():
                out = self.model.generate(**inputs.to(self.device), do_sample=True,
                                          temperature=self.config.temperature, top_p=self.config.top_p,
                                          max_new_tokens=self.config.max_output_tokens, num_return_sequences=n,
                                          pad_token_id=self.tokenizer.pad_token_id)
            decoded = self.tokenizer.batch_decode(out[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
            texts += [decoded[i * n:(i + 1) * n] for i in range(len(chunk))]
        return texts


class VLLMGenerator:
    """vLLM with the adapter served as a LoRA request. Prompts go in as token ids: the chat template already
    holds the BOS token, and vLLM would add a second one to a text prompt."""

    def __init__(self, config: InferConfig, tokenizer):
        from vllm import LLM

        self.config, self.tokenizer = config, tokenizer
        self.lora = None
        lora_kwargs = {}
        if config.lora_path is not None:
            from vllm.lora.request import LoRARequest
            rank = json.loads((Path(config.lora_path) / "adapter_config.json").read_text())["r"]
            lora_kwargs = {"enable_lora": True, "max_lora_rank": max(8, rank)}
            self.lora = LoRARequest("adapter", 1, config.lora_path)
        self.llm = LLM(model=config.base_model_path, max_model_len=config.max_model_len,
                       tensor_parallel_size=config.tensor_parallel_size,
                       gpu_memory_utilization=config.gpu_memory_utilization, seed=config.seed, **lora_kwargs)

    def generate(self, prompts: Sequence[str], n: int) -> list[list[str]]:
        from vllm import SamplingParams, TokensPrompt

        params = SamplingParams(n=n, temperature=self.config.temperature, top_p=self.config.top_p,
                                max_tokens=self.config.max_output_tokens)
        inputs = [TokensPrompt(prompt_token_ids=self.tokenizer(p, add_special_tokens=False)["input_ids"])
                  for p in prompts]
        outputs = self.llm.generate(inputs, params, lora_request=self.lora)
        return [[choice.text for choice in out.outputs] for out in outputs]
