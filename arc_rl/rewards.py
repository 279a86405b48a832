"""ARC rewards, and the reward callable TRL's ``GRPOTrainer`` calls every step.

A reward function maps a program's :class:`~arc_sandbox.ProgramResult` and its task to a float; it may
take the precomputed ``score`` (a :class:`~arc_sandbox.TaskScore` of ``result.outputs``), which
:class:`SandboxReward` computes for a whole step at once. Both built-in rewards give 0 unless the program
returned a valid grid for *every* input (like the reference project, where one exception failed the whole run),
and average over train and test grids weighted by their count; test grids without a known output are not scored.

Augmented tasks: the task column holds the task as the prompt showed it, so programs run on the augmented
inputs and are scored against the augmented outputs. Geometric and colour augmentations are bijections that
preserve exact matches and pixel similarity, so this gives the same reward as reverting the outputs and scoring
in the original space (a property test checks it), without a revert step that could fail on odd outputs.
"""
from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import enum
import inspect
import logging
import math
import os
import threading
import time
from collections import Counter
from typing import Any, Callable, Sequence

import numpy as np

from arc_sandbox import (Job, Limits, ProgramResult, Status, Task, TaskScore, extract_code, has_fence, score_outputs,
                         score_tasks)
from arc_sandbox import score_many  # noqa: F401  (arc_rl.score_many, as before scoring moved to arc_sandbox)

from .data import cached_task_from_json, task_from_json
from .stats import NGRAM_SIZES, RepetitionTable, measure_repetition, pack_tokens, tokens_of

log = logging.getLogger(__name__)

RewardFn = Callable[..., float]
REWARDS: dict[str, RewardFn] = {}
MAX_REWARD = 10.0            # both built-in rewards: every grid right


def register_reward(name: str) -> Callable[[RewardFn], RewardFn]:
    """Decorator adding ``fn(result, task, score=None) -> float`` to :data:`REWARDS` under ``name``.

    :class:`SandboxReward` passes ``score`` (the result's :class:`~arc_sandbox.TaskScore`) for programs
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
    0 and is counted in the step's metrics. A failure of the infrastructure (the sandbox raised, or the call ran
    past its hard deadline) returns ``None`` for every sample of the call, so TRL leaves them out instead of
    learning from a 0, and the sandbox is restarted on the next call.

    ``sandbox``: None (a :class:`~arc_sandbox.Sandbox` of ``workers`` processes is started on first use), an
    object with ``run(jobs) -> results`` (used as given, never closed here; e.g. a shared or remote executor), or a
    zero-argument factory returning one (called on first use, in whichever process scores, and closed with
    this reward). ``deadline_s``: the hard limit on one call's run and scoring (default: 30 s plus three times
    the worst case of the call's programs); starting a pool is bounded by the sandbox's own start timeout. ``workers`` None: this process's cores divided by the training processes on the node.

    Thread-safe (calls are serialised) and picklable: the pool and threads are not pickled, a copy starts its
    own on first use. ``last_metrics`` holds the metrics of the last call (also sent to ``log_metric``).
    """

    def __init__(self, reward_name: str = "arc-v1", workers: int | None = None, limits: Limits = Limits(),
                 max_completion_length: int | None = None, *, sandbox: Any = None, deadline_s: float | None = None,
                 **sandbox_kwargs: Any):
        if reward_name not in REWARDS:
            raise ValueError(f"unknown reward {reward_name!r}; choose one of {', '.join(sorted(REWARDS))}")
        if deadline_s is not None and not deadline_s > 0:
            raise ValueError(f"deadline_s must be positive, got {deadline_s}")
        self.reward_name = reward_name
        self.__name__ = reward_name   # TRL names reward functions (and their metrics) after __name__
        self.reward_fn = REWARDS[reward_name]
        self._takes_score = "score" in inspect.signature(self.reward_fn).parameters
        self.workers, self.limits, self.sandbox_kwargs = workers, limits, sandbox_kwargs
        self.sandbox_source = sandbox
        self.deadline_s = deadline_s
        self.max_completion_length = max_completion_length
        self.last_metrics: dict[str, float] = {}
        self._start_runtime()

    def _start_runtime(self) -> None:
        """What lives only in the process that scores: the sandbox, the lock, the statistics thread."""
        self._sandbox = None
        self._lock = threading.Lock()
        # Repetition statistics need only the completions: this thread does their numpy part while the programs
        # run and the scoring thread mostly waits on the workers (about 2 ms less per step even with 2 workers on
        # 2 cores, benchmarks/reward_step.py). Only work that lets go of the GIL goes there, so that the sandbox's
        # dispatch loop, which needs the GIL for every result, is not kept waiting.
        self._stats_thread: concurrent.futures.ThreadPoolExecutor | None = None
        self._exit_hook = False

    def __getstate__(self) -> dict[str, Any]:
        state = {k: v for k, v in self.__dict__.items()
                 if k not in ("_sandbox", "_lock", "_stats_thread", "_exit_hook")}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._start_runtime()

    # -- lifecycle
    @property
    def sandbox(self):
        if self._sandbox is None:
            source = self.sandbox_source
            if source is not None and hasattr(source, "run"):
                self._sandbox = source
            elif source is not None:
                self._sandbox = source()
            else:
                from arc_sandbox import Sandbox
                from .environment import workers_per_rank
                workers = self.workers if self.workers is not None else workers_per_rank()
                self._sandbox = Sandbox(workers=workers, limits=self.limits, **self.sandbox_kwargs)
            if not self._exit_hook:
                atexit.register(self.close)
                self._exit_hook = True
        return self._sandbox

    def close(self) -> None:
        if self._sandbox is not None:
            self._discard(self._sandbox)
        if self._stats_thread is not None:
            self._stats_thread.shutdown(wait=False)
            self._stats_thread = None

    def _discard(self, sandbox: Any) -> None:
        """Stop using ``sandbox`` (closing it unless it was given to us). Only this one: a call abandoned at its
        deadline may get here late, after a newer call started a fresh sandbox."""
        if self._sandbox is sandbox:
            self._sandbox = None
        if sandbox is not self.sandbox_source:
            try:
                sandbox.close()
            except Exception:  # a broken sandbox must not stop the trainer from shutting down
                log.exception("closing the sandbox failed")

    def __enter__(self) -> "SandboxReward":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- one call
    def __call__(self, completions: Sequence[Any], completion_ids: Sequence[Sequence[int]] | None = None,
                 task: Sequence[Any] | None = None, log_metric: Callable[[str, float], None] | None = None,
                 **kwargs: Any) -> list[float | None]:
        return self.score(completions, completion_ids, task, log_metric)

    def score(self, completions: Sequence[Any], completion_ids: Sequence[Sequence[int]] | None = None,
              task: Sequence[Any] | None = None,
              log_metric: Callable[[str, float], None] | None = None) -> list[float | None]:
        """One reward per completion, within the deadline; the body of both the sync and the async call."""
        n = len(completions)
        with self._lock:
            try:
                # Started here, outside the deadline (the sandbox bounds its own start), so that a call abandoned
                # at its deadline never races a later call over which sandbox is current.
                sandbox = self.sandbox
            except Exception:
                log.exception("the sandbox could not start; this call's rewards are None")
                rewards, metrics = [None] * n, {"sandbox/failures": 1.0}
            else:
                rewards, metrics = self._bounded_step(sandbox, completions, completion_ids, task)
            self.last_metrics = metrics
        _send(metrics, log_metric)
        return rewards

    def _bounded_step(self, sandbox, completions, completion_ids, task) -> tuple[list[float | None], dict]:
        n = len(completions)
        deadline = self.deadline_for(n)
        try:
            return _run_with_deadline(lambda: self._step(sandbox, completions, completion_ids, task), deadline)
        except concurrent.futures.TimeoutError:
            log.error("the reward ran past its %.0f s deadline; this call's %d rewards are None and the "
                      "sandbox will be restarted", deadline, n)
            self._discard(sandbox)   # kills the workers, which lets the abandoned call end
            return [None] * n, {"sandbox/failures": 1.0, "sandbox/deadline_exceeded": 1.0}

    def deadline_for(self, n: int) -> float:
        if self.deadline_s is not None:
            return self.deadline_s
        workers = getattr(self._sandbox, "workers", None) or self.workers or os.cpu_count() or 1
        return 30.0 + 3.0 * math.ceil(n / workers) * self.limits.timeout_s

    def _step(self, sandbox, completions, completion_ids, task) -> tuple[list[float | None], dict[str, float]]:
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
        if self._stats_thread is None:
            self._stats_thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="arc-rl-stats")
        repetition = self._stats_thread.submit(measure_repetition, tokens)
        try:
            run_started = time.perf_counter()
            for result in sandbox.run(jobs) if jobs else []:
                results[result.key] = result
            run_s = time.perf_counter() - run_started
        except Exception:
            log.exception("the sandbox failed; this step's rewards are None and it will be restarted")
            self._discard(sandbox)
            return [None] * n, {"sandbox/failures": 1.0}
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
        # A job the infrastructure lost (RaySandbox's INFRA_ERROR) says nothing about its program: None, so TRL
        # leaves that sample out instead of teaching the policy that it failed.
        rewards: list[float | None] = [None if r is not None and r.status is Status.INFRA_ERROR else reward
                                       for r, reward in zip(results, outcome.rewards)]
        return rewards, metrics

    def _truncated(self, texts: list[str], codes: list[str | None],
                   completion_ids: Sequence[Sequence[int]] | None) -> list[bool]:
        """Cut off by the length limit: it used every token, or opened a code fence it never closed."""
        cut = [code is None and has_fence(text) for text, code in zip(texts, codes)]
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



class AsyncSandboxReward(SandboxReward):
    """:class:`SandboxReward` as an ``async def`` reward: TRL awaits it on its event loop (concurrently with the
    other async reward functions; ``AsyncGRPOTrainer`` in its rollout process while generation goes on). The
    work runs in a thread, so the event loop stays free while the programs run."""

    async def __call__(self, completions: Sequence[Any], completion_ids: Sequence[Sequence[int]] | None = None,
                       task: Sequence[Any] | None = None, log_metric: Callable[[str, float], None] | None = None,
                       **kwargs: Any) -> list[float | None]:
        return await asyncio.to_thread(self.score, completions, completion_ids, task, log_metric)


def _run_with_deadline(fn: Callable[[], Any], timeout_s: float) -> Any:
    """``fn()`` in a daemon thread; ``concurrent.futures.TimeoutError`` after ``timeout_s``. A daemon thread,
    not a pool's, so that a call abandoned at its deadline can never hold up the interpreter's exit."""
    future: concurrent.futures.Future = concurrent.futures.Future()

    def target() -> None:
        future.set_running_or_notify_cancel()
        try:
            future.set_result(fn())
        except BaseException as exc:  # handed to the caller as is
            future.set_exception(exc)

    threading.Thread(target=target, name="arc-rl-reward", daemon=True).start()
    return future.result(timeout=timeout_s)


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
