"""ARC rewards, and the reward callable TRL's ``GRPOTrainer`` calls every step.

A reward function maps a program's :class:`~arc_sandbox.results.ProgramResult` and its task to a float; it may
take the precomputed ``score`` (a :class:`~arc_sandbox.metrics.TaskScore` of ``result.outputs``), which
:class:`SandboxReward` computes for a whole step at once. Both built-in rewards give 0 unless the program
returned a valid grid for *every* input (like the reference project, where one exception failed the whole run),
and average over train and test grids weighted by their count; test grids without a known output are not scored.

Augmented tasks: the task column holds the task as the prompt showed it, so programs run on the augmented
inputs and are scored against the augmented outputs. Geometric and colour augmentations are bijections that
preserve exact matches and pixel similarity, so this gives the same reward as reverting the outputs and scoring
in the original space (a property test checks it), without a revert step that could fail on odd outputs.
"""
from __future__ import annotations

import atexit
import concurrent.futures
import enum
import inspect
import logging
import re
import time
from collections import Counter
from typing import Any, Callable, Sequence

import numpy as np

from arc_sandbox.compare import Comparison, similarity_pairs
from arc_sandbox.extract import extract_code
from arc_sandbox.limits import Limits
from arc_sandbox.metrics import TaskScore, distinct_grids, partition_score, score_outputs
from arc_sandbox.results import Job, ProgramResult, Status
from arc_sandbox.tasks import Task

from .data import cached_task_from_json, task_from_json
from .stats import NGRAM_SIZES, RepetitionTable, measure_repetition, pack_tokens, tokens_of

log = logging.getLogger(__name__)

RewardFn = Callable[..., float]
REWARDS: dict[str, RewardFn] = {}
MAX_REWARD = 10.0            # both built-in rewards: every grid right
_FENCE_OPENED = re.compile(r"```[ \t]*(python|py|python3)?[ \t]*\n", re.IGNORECASE)


def register_reward(name: str) -> Callable[[RewardFn], RewardFn]:
    """Decorator adding ``fn(result, task, score=None) -> float`` to :data:`REWARDS` under ``name``.

    :class:`SandboxReward` passes ``score`` (the result's :class:`~arc_sandbox.metrics.TaskScore`) for programs
    with a valid grid for every input and None otherwise. A function without a ``score`` parameter is called
    as ``fn(result, task)``.
    """
    def add(fn: RewardFn) -> RewardFn:
        if name in REWARDS:
            raise ValueError(f"reward {name!r} is already registered")
        REWARDS[name] = fn
        return fn
    return add


def correct_and_pixel(score: TaskScore) -> tuple[float, float]:
    """Correct-grid fraction and pixel score over train and test grids, weighted by their count."""
    n = score.train.n + score.test.n
    if n == 0:
        return 0.0, 0.0
    parts = (score.train, score.test)
    return (sum(p.correct_grids * p.n for p in parts) / n, sum(p.pixel_score * p.n for p in parts) / n)


@register_reward("arc-v1")
def arc_v1(result: ProgramResult, task: Task, score: TaskScore | None = None) -> float:
    """0 without a valid grid for every input, else ``1 + 8 x correct-grid fraction + pixel score``: 1..10."""
    if not result.ok:
        return 0.0
    correct, pixel = correct_and_pixel(score if score is not None else score_outputs(result.outputs, task))
    return 1.0 + 8.0 * correct + pixel


@register_reward("arc-v2-no-pixel-score")
def arc_v2_no_pixel_score(result: ProgramResult, task: Task, score: TaskScore | None = None) -> float:
    """0 without a valid grid for every input, else ``1 + 9 x correct-grid fraction``: 1..10."""
    if not result.ok:
        return 0.0
    correct, _ = correct_and_pixel(score if score is not None else score_outputs(result.outputs, task))
    return 1.0 + 9.0 * correct


def score_many(outputs: Sequence[Sequence[Any]], task: Task) -> list[TaskScore]:
    """:func:`~arc_sandbox.metrics.score_outputs` for many programs of one task (see :func:`score_tasks`)."""
    return score_tasks([(outputs, task)])[0]


def score_tasks(batches: Sequence[tuple[Sequence[Sequence[Any]], Task]]) -> list[list[TaskScore]]:
    """:func:`~arc_sandbox.metrics.score_outputs` for many programs of several tasks: ``batches`` holds
    ``(outputs of each program, task)`` pairs, and the result one list of scores per pair.

    A GRPO step's samples repeat each other a lot and its cost is mostly per numpy call, so the whole step is
    scored together: each distinct grid is validated once, each distinct (grid, expected grid) pair compared
    once, all in a few batched calls, and each distinct combination of a task's outputs is scored once
    (programs with the same outputs share one :class:`TaskScore` object).
    """
    flat: list[Any] = []     # the grids of every scored input of every task, input by input
    for outputs, task in batches:
        n_inputs = len(task.train) + len(task.test)
        for k, outs in enumerate(outputs):
            if len(outs) != n_inputs:
                raise ValueError(f"task {task.id}: program {k}: expected {n_inputs} outputs, got {len(outs)}")
        for j in _scored_inputs(task):
            flat.extend(outs[j] for outs in outputs)
    flat_ids, grids = distinct_grids(flat)
    tables, pair_index, predicted, wanted = [], [], [], []
    start = 0
    for outputs, task in batches:
        expected, scored = task.expected, _scored_inputs(task)
        table = flat_ids[start:start + len(outputs) * len(scored)].reshape(len(scored), len(outputs)).T
        start += len(outputs) * len(scored)
        index: dict[int, dict[int, int]] = {}    # input -> its distinct grid ids -> pair
        for c, j in enumerate(scored):
            index[j] = {}
            for g in dict.fromkeys(table[:, c].tolist()):
                if g >= 0:
                    index[j][g] = len(predicted)
                    predicted.append(grids[g])
                    wanted.append(expected[j])
        tables.append(table)
        pair_index.append(index)
    comparisons = [Comparison(exact=p.shape == w.shape and s == 1.0, same_shape=p.shape == w.shape, similarity=s)
                   for p, w, s in zip(predicted, wanted, similarity_pairs(predicted, wanted).tolist())]
    return [_task_scores(task, table, {j: {g: comparisons[p] for g, p in ids.items()} for j, ids in index.items()})
            for (_, task), table, index in zip(batches, tables, pair_index)]


def _scored_inputs(task: Task) -> list[int]:
    """Positions in ``task.inputs`` with a known expected output (test outputs may be unknown)."""
    return [j for j, want in enumerate(task.expected) if want is not None]


def _task_scores(task: Task, table: np.ndarray, found: dict[int, dict[int, Comparison]]) -> list[TaskScore]:
    """One score per row of ``table`` (a program: the id of its grid for each scored input, -1 for none), each
    distinct row scored once; ``found[input][grid id]`` is that grid's comparison."""
    n_train, n_inputs = len(task.train), len(task.train) + len(task.test)
    by_row: dict[tuple[int, ...], TaskScore] = {}
    out = []
    for row in map(tuple, table.tolist()):
        score = by_row.get(row)
        if score is None:
            grid_of = dict(zip(found, row))
            comparisons = tuple(found[j].get(grid_of[j], _MISSING) if j in found else None for j in range(n_inputs))
            score = by_row[row] = TaskScore(train=partition_score(comparisons[:n_train]),
                                            test=partition_score(comparisons[n_train:]), comparisons=comparisons)
        out.append(score)
    return out


_MISSING = Comparison(exact=False, same_shape=False, similarity=0.0)


# --------------------------------------------------------------------------- the TRL reward callable

class BadSample(str, enum.Enum):
    """Why a sample was scored 0 without running (or scoring) its program."""

    BAD_TASK = "bad_task"          # the task column is missing, not JSON, or not a valid task
    REWARD_ERROR = "reward_error"  # the reward function raised on this sample

    def __str__(self) -> str:
        return self.value


class SandboxReward:
    """Reward for TRL's ``GRPOTrainer``: runs every completion's program in one long-lived sandbox.

    Call contract (TRL): keyword arguments ``completions`` (strings or ``[{"role": "assistant", "content": …}]``),
    ``completion_ids``, ``task`` (the dataset's task column: :func:`arc_rl.data.task_to_json` strings) and
    ``log_metric``. Returns one float per completion; a sample with a bad task, no code or a failing program gets
    0 and is counted in the step's metrics. Only a failure of the sandbox itself returns ``None`` for the whole
    step (TRL gives unscorable rows zero advantage) and restarts it on the next call.

    ``last_metrics`` holds the metrics of the last step (the values also sent to ``log_metric``).
    ``sandbox_factory``: makes the executor (anything with ``run`` and ``close``), e.g.
    ``lambda: RaySandbox("auto", limits=limits)`` so that every rank on every node shares one cluster-wide pool;
    by default a local ``Sandbox(workers, limits, **sandbox_kwargs)``. It is called again after a failure.
    """

    def __init__(self, reward_name: str = "arc-v1", workers: int | None = None, limits: Limits = Limits(),
                 max_completion_length: int | None = None, sandbox_factory: Callable[[], Any] | None = None,
                 **sandbox_kwargs: Any):
        if reward_name not in REWARDS:
            raise ValueError(f"unknown reward {reward_name!r}; choose one of {', '.join(sorted(REWARDS))}")
        self.reward_name = reward_name
        self.__name__ = reward_name   # TRL names reward functions (and their metrics) after __name__
        self.reward_fn = REWARDS[reward_name]
        self._takes_score = "score" in inspect.signature(self.reward_fn).parameters
        self.workers, self.limits, self.sandbox_kwargs = workers, limits, sandbox_kwargs
        self.sandbox_factory = sandbox_factory
        self.max_completion_length = max_completion_length
        self.last_metrics: dict[str, float] = {}
        self._sandbox = None
        # Repetition statistics need only the completions: this thread does their numpy part while the programs
        # run and the calling thread mostly waits on the workers (about 2 ms less per step even with 2 workers on
        # 2 cores, benchmarks/reward_step.py). Only work that lets go of the GIL goes there, so that the sandbox's
        # dispatch loop, which needs the GIL for every result, is not kept waiting.
        self._stats_thread = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="arc-rl-stats")
        atexit.register(self.close)

    # -- lifecycle
    @property
    def sandbox(self):
        if self._sandbox is None and self.sandbox_factory is not None:
            self._sandbox = self.sandbox_factory()
        elif self._sandbox is None:
            from arc_sandbox.sandbox import Sandbox
            self._sandbox = Sandbox(workers=self.workers, limits=self.limits, **self.sandbox_kwargs)
        return self._sandbox

    def close(self) -> None:
        if self._sandbox is not None:
            sandbox, self._sandbox = self._sandbox, None
            try:
                sandbox.close()
            except Exception:  # a broken sandbox must not stop the trainer from shutting down
                log.exception("closing the sandbox failed")

    def __enter__(self) -> "SandboxReward":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- one step
    def __call__(self, completions: Sequence[Any], completion_ids: Sequence[Sequence[int]] | None = None,
                 task: Sequence[Any] | None = None, log_metric: Callable[[str, float], None] | None = None,
                 **kwargs: Any) -> list[float | None]:
        started = time.perf_counter()
        texts = [_completion_text(c) for c in completions]
        n = len(texts)
        tasks = _parse_tasks(task, n)
        codes = [extract_code(t) for t in texts]
        groups: dict[int, list[int]] = {}   # samples by task; a task's samples are scored together
        for i, t in enumerate(tasks):
            if isinstance(t, Task):
                groups.setdefault(id(t), []).append(i)
        jobs = [Job(codes[i], tasks[i].inputs, key=i) for members in groups.values() for i in members
                if codes[i] is not None]
        results: list[ProgramResult | None] = [_no_code(t) if isinstance(t, Task) and code is None else None
                                               for t, code in zip(tasks, codes)]
        tokens = pack_tokens(completion_ids if completion_ids is not None else [tokens_of(t) for t in texts])
        repetition = self._stats_thread.submit(measure_repetition, tokens)
        try:
            run_started = time.perf_counter()
            for result in self.sandbox.run(jobs) if jobs else []:
                results[result.key] = result
            run_s = time.perf_counter() - run_started
        except Exception:
            log.exception("the sandbox failed; this step's rewards are None and it will be restarted")
            self.close()
            self.last_metrics = {"sandbox/failures": 1.0}
            _send(self.last_metrics, log_metric)
            return [None] * n
        # Done during the run unless that was very short; then waiting here (without the GIL) lets it finish sooner
        # than sharing the GIL with the scoring below would.
        repetition = repetition.result()
        outcome = _Outcome(n, tasks)
        self._score_groups(list(groups.values()), tasks, results, outcome)
        truncated = self._truncated(texts, codes, completion_ids)
        lengths = [len(ids) for ids in completion_ids] if completion_ids is not None else [len(t) for t in texts]
        metrics = _step_metrics(outcome, results, truncated, repetition,
                                [length for length, s in zip(lengths, outcome.solved) if s])
        metrics["sandbox/run_s"] = run_s
        metrics["sandbox/overhead_s"] = time.perf_counter() - started - run_s
        self.last_metrics = metrics
        _send(metrics, log_metric)
        return outcome.rewards

    def _truncated(self, texts: list[str], codes: list[str | None],
                   completion_ids: Sequence[Sequence[int]] | None) -> list[bool]:
        """Cut off by the length limit: it used every token, or opened a code fence it never closed."""
        cut = [code is None and _FENCE_OPENED.search(text) is not None for text, code in zip(texts, codes)]
        if completion_ids is not None and self.max_completion_length:
            cut = [c or len(ids) >= self.max_completion_length for c, ids in zip(cut, completion_ids)]
        return cut

    def _score_groups(self, groups: list[list[int]], tasks: list[Task | str], results: list[ProgramResult | None],
                      outcome: "_Outcome") -> None:
        # Only programs with a valid grid for every input get scored here (the others can be scored by a
        # reward that wants them, from score=None); failures are common and scoring is the costly part.
        ok = [scored for members in groups if (scored := [i for i in members if results[i].ok])]
        scores = {}
        for members, group_scores in zip(ok, score_tasks([([results[i].outputs for i in members], tasks[members[0]])
                                                          for members in ok])):
            scores.update(zip(members, group_scores))
        for members in groups:
            t = tasks[members[0]]
            for i in members:
                score = scores.get(i)
                try:
                    args = {"score": score} if self._takes_score else {}
                    outcome.rewards[i] = float(self.reward_fn(results[i], t, **args))
                except Exception:
                    log.exception("reward %s failed on task %s", self.reward_name, t.id)
                    outcome.bad[i] = BadSample.REWARD_ERROR
                outcome.solved[i] = score is not None and score.all_correct


class _Outcome:
    """Per-sample rewards of one step, whether each was solved, and why a sample could not be scored."""

    def __init__(self, n: int, tasks: list[Task | str]):
        self.rewards: list[float] = [0.0] * n
        self.solved: list[bool] = [False] * n
        self.bad: list[BadSample | None] = [None if isinstance(t, Task) else BadSample.BAD_TASK for t in tasks]


def _completion_text(completion: Any) -> str:
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        return str(completion[-1].get("content") or "")   # conversational: the assistant message
    return ""


def _parse_tasks(column: Sequence[Any] | None, n: int) -> list[Task | str]:
    """One task per sample, parsed once per distinct value (and JSON strings cached across steps); a string in
    place of a task says what is wrong."""
    if column is None or len(column) != n:
        got = "no task column" if column is None else f"{len(column)} tasks for {n} completions"
        return [got] * n
    parsed: dict[Any, Task | str] = {}
    out = []
    for value in column:
        key = value if isinstance(value, str) else id(value)
        if key not in parsed:
            parsed[key] = _parse_task(value)
        out.append(parsed[key])
    return out


def _parse_task(value: Any) -> Task | str:
    try:
        if isinstance(value, dict):
            return Task.from_dict(value, id=str(value.get("id", "task")))
        if isinstance(value, (str, bytes)):
            return cached_task_from_json(value)[0]
        return task_from_json(value)[0]   # not hashable, so not cacheable: the error says what it is
    except (ValueError, TypeError) as exc:
        return str(exc)


def _no_code(task: Task) -> ProgramResult:
    n = len(task.inputs)
    return ProgramResult(status=Status.NO_CODE, outputs=[None] * n, grid_statuses=[Status.NO_CODE] * n,
                         error_message="no code block in the completion")


def _step_metrics(outcome: _Outcome, results: list[ProgramResult | None], truncated: list[bool],
                  repetition: RepetitionTable, solved_lengths: list[int]) -> dict[str, float]:
    rewards, solved, bad = outcome.rewards, outcome.solved, outcome.bad
    n = len(rewards)
    if n == 0:
        return {}
    r = np.asarray(rewards, dtype=float)
    cut = np.asarray(truncated, dtype=bool)
    statuses = Counter(res.status for res in results if res is not None)
    m = {"sandbox/reward_mean": float(r.mean()), "sandbox/reward_max": float(r.max()),
         "sandbox/reward_min": float(r.min()), "sandbox/solved_ratio": sum(solved) / n,
         "sandbox/valid_output_ratio": statuses[Status.OK] / n}
    m.update({f"sandbox/status/{s.value}": statuses[s] / n for s in Status})
    reasons = Counter(b for b in bad if b is not None)
    m.update({f"sandbox/bad_sample/{b.value}": reasons[b] / n for b in BadSample})
    m["truncation/ratio"] = float(cut.mean())
    # Group means only where the group is non-empty: TRL averages what is logged, and NaN would poison it.
    for name, mask in (("truncated", cut), ("complete", ~cut)):
        if mask.any():
            m[f"truncation/{name}_reward_mean"] = float(r[mask].mean())
            m[f"repetition/{name}_unique_token_ratio"] = float(repetition.unique_token_ratio[mask].mean())
    m["repetition/unique_token_ratio"] = float(repetition.unique_token_ratio.mean())
    for k in NGRAM_SIZES:
        m[f"repetition/ngram_{k}_most_repeated_count"] = float(repetition.most_repeated[k].mean())
        m[f"repetition/ngram_{k}_most_repeated_frequency"] = float(repetition.frequency[k].mean())
    if solved_lengths:
        m["length/solved_mean"] = float(np.mean(solved_lengths))
        m["length/solved_max"] = float(max(solved_lengths))
    return m


def _send(metrics: dict[str, float], log_metric: Callable[[str, float], None] | None) -> None:
    if log_metric is not None:
        for name, value in metrics.items():
            log_metric(name, value)
