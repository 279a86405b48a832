"""Voting over many programs' results, and ARC Prize submission files (build, validate, score).

A submission maps every task id to one entry per test input, ``{"attempt_1": G, "attempt_2": G}``;
``[[0]]`` fills attempts nobody produced. A test input is solved if either attempt equals the
solution; a task scores the fraction of its test inputs solved; the submission the mean over tasks.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .compare import grid_or_none
from arc_sandbox.executor.grids import MAX_SIDE
from .loading import TaskLoadError, load_tasks, read_json
from arc_sandbox.executor.results import ProgramResult
from .tasks import Task

FILLER = [[0]]
ATTEMPT_KEYS = ("attempt_1", "attempt_2")


def select_attempts(results: Sequence[ProgramResult], task: Task, n_attempts: int = 2) -> list[list[np.ndarray]]:
    """Up to ``n_attempts`` distinct grids per test input of ``task``, best first.

    For each test input, programs that produced the same grid form one candidate. Candidates
    rank by the best train correctness among their programs (fraction of train grids exactly
    right), then by votes (how many programs produced that grid), then by shorter mean code.
    """
    n_train = len(task.train)
    train_correct = [_train_correct(r.outputs, task) for r in results]
    attempts = []
    for i in range(len(task.test)):
        groups: dict[tuple, list[int]] = {}
        grids: dict[tuple, np.ndarray] = {}
        for r_index, result in enumerate(results):
            grid = _output(result, n_train + i)
            if grid is not None:
                key = (grid.shape, grid.tobytes())
                groups.setdefault(key, []).append(r_index)
                grids.setdefault(key, grid)

        def rank(key: tuple) -> tuple:
            members = groups[key]
            return (-max(train_correct[m] for m in members), -len(members),
                    float(np.mean([len(results[m].code) for m in members])))
        attempts.append([grids[key] for key in sorted(groups, key=rank)[:n_attempts]])
    return attempts


def _output(result: ProgramResult, index: int) -> np.ndarray | None:
    return grid_or_none(result.outputs[index]) if index < len(result.outputs) else None


def _train_correct(outputs: Sequence[Any], task: Task) -> float:
    if len(outputs) < len(task.train):
        return 0.0
    hits = sum(got is not None and np.array_equal(got, pair.output) for got, pair in zip(outputs, task.train))
    return hits / len(task.train)


def build_submission(results: Mapping[str, Sequence[ProgramResult]], tasks: Mapping[str, Task],
                     n_attempts: int = 2) -> dict[str, list[dict[str, list]]]:
    """A JSON-ready submission for every task in ``tasks`` (outputs aligned with ``task.inputs``).

    Tasks without results, and attempts nobody produced, get ``[[0]]``; results for task ids
    not in ``tasks`` are ignored with a warning.
    """
    unknown = sorted(results.keys() - tasks.keys())
    if unknown:
        warnings.warn(f"build_submission: ignoring results for {len(unknown)} unknown task(s), "
                      f"e.g. {unknown[0]}", stacklevel=2)
    keys = [f"attempt_{k + 1}" for k in range(n_attempts)]
    submission = {}
    for task_id, task in tasks.items():
        chosen = select_attempts(results.get(task_id, ()), task, n_attempts)
        submission[task_id] = [{key: (grids[k].tolist() if k < len(grids) else FILLER) for k, key in enumerate(keys)}
                               for grids in chosen]
    return submission


def write_submission(submission: Mapping[str, Any], path: str | Path) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(submission, f)


def validate_submission(path_or_obj: str | Path | Mapping[str, Any],
                        tasks_or_challenges: str | Path | Mapping[str, Any]) -> list[str]:
    """Every problem found, each naming the task id and the field; an empty list means valid.

    ``tasks_or_challenges`` is a ``{task_id: Task}`` mapping, a challenges mapping (task id ->
    ARC task dict) or a path that :func:`load_tasks` reads. Checks: the task sets match, one
    entry per test input, exactly ``attempt_1`` and ``attempt_2``, each a grid (a non-empty
    rectangular list of lists of ints 0..9, sides up to 30).
    """
    try:
        submission = read_json(path_or_obj) if isinstance(path_or_obj, (str, Path)) else path_or_obj
    except TaskLoadError as exc:
        return [str(exc)]
    if not isinstance(submission, Mapping):
        return [f"submission must be an object mapping task ids to lists, got {type(submission).__name__}"]
    counts = _test_counts(tasks_or_challenges)
    errors = [f"task {tid}: missing from the submission" for tid in counts if tid not in submission]
    errors += [f"task {tid}: not in the challenges" for tid in submission if tid not in counts]
    for task_id, n_tests in counts.items():
        if task_id in submission:
            errors += _entry_errors(task_id, submission[task_id], n_tests)
    return errors


def _entry_errors(task_id: str, entries: Any, n_tests: int) -> list[str]:
    if not isinstance(entries, list):
        return [f"task {task_id}: must be a list (one entry per test input), got {type(entries).__name__}"]
    errors = []
    if len(entries) != n_tests:
        errors.append(f"task {task_id}: {len(entries)} entries for {n_tests} test input(s)")
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or set(entry) != set(ATTEMPT_KEYS):
            keys = sorted(entry) if isinstance(entry, dict) else type(entry).__name__
            errors.append(f"task {task_id}: [{i}]: needs exactly attempt_1 and attempt_2, got {keys}")
            continue
        for key in ATTEMPT_KEYS:
            problem = _grid_problem(entry[key])
            if problem:
                errors.append(f"task {task_id}: [{i}].{key}: {problem}")
    return errors


def _grid_problem(grid: Any) -> str | None:
    if not isinstance(grid, list) or not grid or not all(isinstance(row, list) for row in grid):
        return "must be a non-empty list of lists"
    width = len(grid[0])
    if not 1 <= width <= MAX_SIDE or len(grid) > MAX_SIDE:
        return f"sides must be within 1..{MAX_SIDE}, got {len(grid)}x{width}"
    if any(len(row) != width for row in grid):
        return "ragged rows"
    if not all(type(v) is int and 0 <= v <= 9 for row in grid for v in row):
        return "values must be ints 0..9"
    return None


def _test_counts(tasks_or_challenges: str | Path | Mapping[str, Any]) -> dict[str, int]:
    source = tasks_or_challenges
    if isinstance(source, (str, Path)):
        source = load_tasks(source)
    counts = {}
    for task_id, task in source.items():
        if isinstance(task, Task):
            counts[task_id] = len(task.test)
        elif isinstance(task, Mapping) and isinstance(task.get("test"), list):
            counts[task_id] = len(task["test"])
        else:
            raise ValueError(f"task {task_id}: challenges entry needs a 'test' list")
    return counts


@dataclass
class SubmissionScore:
    score: float                                          # mean task score over the solutions' tasks
    per_task: dict[str, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)       # entries that could not be scored (count as wrong)


def score_submission(submission: str | Path | Mapping[str, Any],
                     solutions: str | Path | Mapping[str, Any]) -> SubmissionScore:
    """Score against ``solutions``: ``{task_id: Task}`` with test outputs, a solutions mapping
    (task id -> list of grids) or a path :func:`load_tasks` reads. Malformed or missing
    entries count as wrong and are listed in ``errors``."""
    sub = read_json(submission) if isinstance(submission, (str, Path)) else submission
    if not isinstance(sub, Mapping):
        raise ValueError(f"submission must be an object mapping task ids to lists, got {type(sub).__name__}")
    expected = _solutions(solutions)
    result = SubmissionScore(score=0.0)
    for task_id, outputs in expected.items():
        entries = sub.get(task_id)
        if not isinstance(entries, list):
            result.errors.append(f"task {task_id}: missing from the submission")
            result.per_task[task_id] = 0.0
            continue
        solved = 0
        for i, want in enumerate(outputs):
            entry = entries[i] if i < len(entries) else None
            if not isinstance(entry, dict):
                result.errors.append(f"task {task_id}: [{i}]: missing or not an object")
                continue
            solved += any(_equal(entry.get(key), want) for key in ATTEMPT_KEYS)
        result.per_task[task_id] = solved / len(outputs) if outputs else 0.0
    result.errors += [f"task {tid}: not in the solutions (ignored)" for tid in sub if tid not in expected]
    result.score = float(np.mean(list(result.per_task.values()))) if result.per_task else 0.0
    return result


def _equal(attempt: Any, want: np.ndarray) -> bool:
    if _grid_problem(attempt) is not None:
        return False
    return np.array_equal(np.asarray(attempt), want)


def _solutions(solutions: str | Path | Mapping[str, Any]) -> dict[str, list[np.ndarray]]:
    if isinstance(solutions, (str, Path)):
        solutions = load_tasks(solutions)
    out = {}
    for task_id, value in solutions.items():
        if isinstance(value, Task):
            if not value.has_test_outputs:
                raise ValueError(f"task {task_id}: test outputs unknown, cannot score")
            out[task_id] = [p.output for p in value.test]
        else:
            out[task_id] = [np.asarray(g) for g in value]
    return out
