"""``arc-rl infer``: sample programs for every task, run them in the sandbox, score, vote, submit.

``n_predictions / batch_size`` rounds; in each round every task gets one prompt (freshly augmented when
``--use-data-augmentation``) sampled ``batch_size`` times. With ``--evaluate`` every completion runs in the
sandbox on the task *as shown in its prompt*; its outputs are reverted to the original task before scoring,
so metrics, fingerprints and the submission are all in the original task's space.

Generations go to ``generations.jsonl`` in ``--output-folder`` as they are produced (one line per prompt), and
evaluation reads them back from there: a crash while sampling or evaluating loses at most one chunk of prompts;
the same command resumes, and ``--evaluate-only FILE`` evaluates a file without loading a model.

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
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np

from arc_sandbox import Job, Limits, ProgramResult, Status, Task, extract_code

from .config import ConfigError, InferConfig, flag, load_tasks_or_fail, to_yaml
from .data import SkipReason

log = logging.getLogger(__name__)


@dataclass
class Prompt:
    task: Task                 # the original task
    shown: Task                # the task as rendered in the prompt (augmented or not)
    augmentation: Any          # arc_sandbox.Augmentation or None
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
    table: Any = None                               # arc_sandbox.MetricsTable with --evaluate
    skipped_prompts: int = 0
    skipped_tasks: dict[str, int] = field(default_factory=dict)   # SkipReason value -> tasks never prompted
    timings: dict[str, float] = field(default_factory=dict)
    generations_path: Path | None = None


class Generator(Protocol):
    def generate(self, prompts: Sequence[str], n: int) -> list[list[str]]:
        """``n`` completions per prompt, without the prompt."""


def infer(config: InferConfig) -> InferResult:
    config.validate()
    config.check_environment()
    tasks = load_tasks_or_fail(config.dataset_path, config.max_tasks)
    folder = Path(config.output_folder)
    folder.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    skipped_tasks = _unpromptable(tasks)
    if config.evaluate_only is not None:
        path = Path(config.evaluate_only)
    else:
        path = folder / GENERATIONS_FILE
        generate_all(config, tasks, path, timings)
    rounds = None if config.evaluate_only is not None else config.n_predictions // config.batch_size
    prompts, completions, skipped = read_generations(path, tasks, rounds)
    if skipped:
        log.warning("%d prompts longer than --max-model-len minus --max-output-tokens were skipped", skipped)

    start = time.perf_counter()
    predictions = (evaluate(prompts, completions, config) if config.evaluate
                   else _unevaluated(prompts, completions))
    timings["evaluate_s"] = time.perf_counter() - start
    result = _write(config, tasks, predictions, skipped, timings)
    result.generations_path = path
    result.skipped_tasks = {str(reason): n for reason, n in skipped_tasks.items()}
    return result


def _unpromptable(tasks: dict[str, Task]) -> Counter:
    """SkipReason -> how many tasks cannot be prompted (an empty ``test`` list); generate_all leaves them out."""
    empty = [task_id for task_id, task in tasks.items() if not task.test]
    if empty:
        log.warning("%d task(s) without a test input are not prompted (%s): %s", len(empty),
                    SkipReason.NO_TEST_INPUT, ", ".join(empty[:5]) + (" ..." if len(empty) > 5 else ""))
    return Counter({SkipReason.NO_TEST_INPUT: len(empty)} if empty else {})


# ---- generation, written as it is produced -----------------------------------------------------

GENERATIONS_FILE = "generations.jsonl"
# Options that change what a (round, task) generation is; a resumed run must agree on all of them.
_RUN_IDENTITY = ("base_model_path", "lora_path", "dataset_path", "prompt_version", "batch_size",
                 "use_data_augmentation", "temperature", "top_p", "max_output_tokens", "seed")
# Prompts per generate call: at most this many prompts' completions are lost if the process dies.
PROMPTS_PER_CHUNK = 32


def generate_all(config: InferConfig, tasks: dict[str, Task], path: Path, timings: dict[str, float]) -> None:
    """Generates every (round, task) not yet in ``path`` and appends it there, chunk by chunk.

    The file is the run's memory: its first line names the options that shape a generation, each later line
    is one prompt's completions (or a skipped prompt). Running the same command again generates only what is
    missing; raising ``--n-predictions`` adds rounds. A process killed mid-chunk loses that chunk alone.
    """
    done = _check_header(path, config)
    rounds = config.n_predictions // config.batch_size
    # A task without a test input keeps its index k (so the others' augmentations stay put) but is never prompted.
    todo = [(r, k, task_id) for r in range(rounds) for k, task_id in enumerate(tasks)
            if (r, task_id) not in done and tasks[task_id].test]
    log.info("%d tasks, %d rounds of %d samples, back-end %s; %d of %d prompts already generated in %s",
             len(tasks), rounds, config.batch_size, config.resolved_backend, rounds * len(tasks) - len(todo),
             rounds * len(tasks), path)
    if not todo:
        return
    start = time.perf_counter()
    generator, tokenizer = make_generator(config)
    timings["load_s"] = time.perf_counter() - start
    start = time.perf_counter()
    with path.open("a", encoding="utf-8") as out:
        if path.stat().st_size == 0:
            _append(out, {"header": _identity(config)})
        for first in range(0, len(todo), PROMPTS_PER_CHUNK):
            chunk = todo[first:first + PROMPTS_PER_CHUNK]
            prompts = [_prompt(tasks[task_id], tokenizer, config, _rng(config.seed, r, k)) for r, k, task_id in chunk]
            fits = [_fits(p.text, tokenizer, config) for p in prompts]
            texts = iter(generator.generate([p.text for p, ok in zip(prompts, fits) if ok], config.batch_size))
            for (r, _, task_id), prompt, ok in zip(chunk, prompts, fits):
                line = {"round": r, "task_id": task_id, "augmentation": _augmentation_json(prompt)}
                _append(out, {**line, "texts": next(texts)} if ok else {**line, "skipped": True})
    timings["generate_s"] = time.perf_counter() - start


def read_generations(path: Path, tasks: dict[str, Task], rounds: int | None = None
                     ) -> tuple[list[Prompt], list[list[str]], int]:
    """The prompts (original and shown task) and completions stored in ``path``, plus the count of skipped
    prompts; rounds from ``rounds`` on are left out. A line cut short by a crash is ignored."""
    from arc_sandbox import Augmentation

    prompts, completions, skipped = [], [], 0
    for line in _lines(path):
        if "header" in line or (rounds is not None and line.get("round", 0) >= rounds):
            continue
        task = tasks.get(line.get("task_id"))
        if task is None:
            raise ConfigError(f"{path}: task {line.get('task_id')!r} is not in --dataset-path")
        if line.get("skipped"):
            skipped += 1
            continue
        augmentation = Augmentation.from_json(line["augmentation"]) if line.get("augmentation") else None
        shown = augmentation.apply_task(task) if augmentation is not None else task
        prompts.append(Prompt(task=task, shown=shown, augmentation=augmentation, text=""))
        completions.append(list(line["texts"]))
    return prompts, completions, skipped


def _check_header(path: Path, config: InferConfig) -> set[tuple[int, str]]:
    """The (round, task) pairs already in ``path``; ConfigError if they came from other options."""
    lines = list(_lines(path)) if path.is_file() else []
    if not lines:
        return set()
    before = lines[0].get("header", {})
    changed = [k for k, v in _identity(config).items() if before.get(k) != v]
    if changed:
        raise ConfigError(f"--output-folder: {path} holds generations made with other options "
                          f"({', '.join(flag(k) for k in changed)}); use another --output-folder")
    return {(line["round"], line["task_id"]) for line in lines[1:]}


def _identity(config: InferConfig) -> dict[str, Any]:
    return {k: getattr(config, k) for k in _RUN_IDENTITY}


def _lines(path: Path):
    with path.open(encoding="utf-8") as f:
        for text in f:
            try:
                line = json.loads(text)
            except ValueError:
                continue   # the last line of a run killed while writing
            if isinstance(line, dict):
                yield line


def _append(out, line: dict) -> None:
    out.write(json.dumps(line) + "\n")
    out.flush()
    os.fsync(out.fileno())


def _rng(seed: int, round_: int, task_index: int) -> np.random.Generator:
    """The same augmentation for a (round, task) whether or not earlier prompts are generated in this run."""
    return np.random.default_rng([seed, round_, task_index])


def _prompt(task: Task, tokenizer, config: InferConfig, rng: np.random.Generator) -> Prompt:
    from .prompts import render_prompt
    augmentation = None
    shown = task
    if config.use_data_augmentation:
        from arc_sandbox import random_augmentation
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
    from arc_sandbox import fingerprint, score_outputs

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

    from arc_sandbox import aggregate, build_submission, write_submission

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
            from .environment import vllm_lora_rank
            lora_kwargs = {"enable_lora": True, "max_lora_rank": vllm_lora_rank(config.lora_rank())}
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
