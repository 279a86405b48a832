"""Scores for one program on one task, and tables over many programs and tasks.

Per program and partition (train, test): ``pixel_score`` (mean similarity, see
:mod:`arc_sandbox.scoring.compare`), ``correct_grids`` (fraction of grids exactly right) and
``all_correct``. Test pairs whose expected output is unknown are not scored.

Per task, over its programs (:func:`aggregate`): see :class:`TaskMetrics`. A program *passes*
a task when every scored grid, train and test, is exactly right; ``pass@k`` is the unbiased
estimator over those passes. ``solved_train`` / ``solved_test`` are oracle (best-of-n) flags:
some program got every train (test) grid right.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from fractions import Fraction
import warnings
from collections import Counter
from dataclasses import dataclass, field, fields
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .compare import NO_GRID, Comparison, grid_or_none, similarity_pairs
from arc_sandbox.executor.grids import MAX_SIDE
from arc_sandbox.executor.results import ProgramResult, Status
from .tasks import Task

DEFAULT_KS = (1, 2, 8, 32)
# Statuses that mean the text held a runnable program (extracted, compiled, entry point found).
_INT64 = np.dtype(np.int64)
_NO_VALID_CODE = frozenset({Status.NO_CODE, Status.SYNTAX_ERROR, Status.MISSING_ENTRY, Status.INVALID_JOB})


@dataclass(frozen=True)
class PartitionScore:
    pixel_score: float     # mean similarity over the partition's grids (0 for none)
    correct_grids: float   # fraction of grids exactly right (0 for none)
    all_correct: bool      # every grid exactly right (False when n == 0)
    n: int                 # grids scored


@dataclass(frozen=True)
class TaskScore:
    train: PartitionScore
    test: PartitionScore
    comparisons: tuple[Comparison | None, ...]  # aligned with task.inputs; None where no expected output

    @property
    def all_correct(self) -> bool:
        """Every scored grid, train and test, exactly right."""
        return self.train.all_correct and (self.test.n == 0 or self.test.all_correct)


def score_outputs(outputs: Sequence[Any], task: Task) -> TaskScore:
    """Score one program's outputs, aligned with ``task.inputs`` (train inputs, then test inputs)."""
    if len(outputs) != len(task.expected):
        raise ValueError(f"task {task.id}: outputs: expected {len(task.expected)} grids "
                         f"(train + test inputs), got {len(outputs)}")
    return score_tasks([([outputs], task)])[0][0]


def score_many(outputs: Sequence[Sequence[Any]], task: Task) -> list[TaskScore]:
    """:func:`score_outputs` for many programs of one task (see :func:`score_tasks`)."""
    return score_tasks([(outputs, task)])[0]


def score_tasks(batches: Sequence[tuple[Sequence[Sequence[Any]], Task]]) -> list[list[TaskScore]]:
    """:func:`score_outputs` for many programs of several tasks: ``batches`` holds ``(outputs of each program,
    task)`` pairs, and the result one list of scores per pair.

    The one scoring path (:func:`_compare_batches`): :func:`score_outputs`, :func:`aggregate` and arc_rl's rewards
    all come here. A GRPO step's samples repeat each other a lot and its cost is mostly per numpy call, so the
    whole step is scored together: each distinct grid is validated once, each distinct (grid, expected grid) pair
    compared once, all in a few batched calls, and each distinct combination of a task's outputs is scored once
    (programs with the same outputs share one :class:`TaskScore` object).
    """
    compared = _compare_batches(batches, every_input=False)
    comparisons = [Comparison(exact=same and s == 1.0, same_shape=same, similarity=s)
                   for same, s in zip(compared.same_shape, compared.similarity.tolist())]
    return [_task_scores(task, table, cols, {j: {g: comparisons[p] for g, p in ids.items()}
                                             for j, ids in pairs.items()})
            for (_, task), table, cols, pairs in zip(batches, compared.tables, compared.columns, compared.pairs)]


@dataclass
class _Compared:
    """What :func:`_compare_batches` found: per task, the distinct-grid id of each program's output for each
    input in ``columns`` (``tables``, programs x columns; -1 for a missing or invalid grid) and, per scored input,
    the pair of each of its distinct grids (``pairs[task][input][grid id]``); per pair, whether the shapes agree
    and the similarity. ``n_grids`` distinct grids in all."""

    tables: list[np.ndarray]
    columns: list[list[int]]
    pairs: list[dict[int, dict[int, int]]]
    same_shape: list[bool]
    similarity: np.ndarray
    n_grids: int


def _compare_batches(batches: Sequence[tuple[Sequence[Sequence[Any]], Task]], every_input: bool) -> _Compared:
    """Every distinct output grid of every scored input compared once with its expected grid, in one batch.
    The tables cover the scored inputs, or every input with ``every_input`` (:func:`aggregate` counts distinct
    outputs on inputs whose expected output is unknown too)."""
    flat: list[Any] = []     # the grids of every tabled input of every task, input by input
    columns = []
    for outputs, task in batches:
        n_inputs = len(task.expected)
        for k, outs in enumerate(outputs):
            if len(outs) != n_inputs:
                raise ValueError(f"task {task.id}: program {k}: expected {n_inputs} outputs, got {len(outs)}")
        columns.append(list(range(n_inputs)) if every_input else _scored_inputs(task))
        for j in columns[-1]:
            flat.extend(outs[j] for outs in outputs)
    flat_ids, grids = distinct_grids(flat)
    tables, pairs, predicted, wanted = [], [], [], []
    start = 0
    for (outputs, task), cols in zip(batches, columns):
        expected = task.expected
        table = flat_ids[start:start + len(outputs) * len(cols)].reshape(len(cols), len(outputs)).T
        start += len(outputs) * len(cols)
        index: dict[int, dict[int, int]] = {}    # scored input -> its distinct grid ids -> pair
        for c, j in enumerate(cols):
            if expected[j] is None:
                continue
            index[j] = {}
            for g in dict.fromkeys(table[:, c].tolist()):
                if g >= 0:
                    index[j][g] = len(predicted)
                    predicted.append(grids[g])
                    wanted.append(expected[j])
        tables.append(table)
        pairs.append(index)
    return _Compared(tables=tables, columns=columns, pairs=pairs,
                     same_shape=[p.shape == w.shape for p, w in zip(predicted, wanted)],
                     similarity=similarity_pairs(predicted, wanted), n_grids=len(grids))


def _scored_inputs(task: Task) -> list[int]:
    """Positions in ``task.inputs`` with a known expected output (test outputs may be unknown)."""
    return [j for j, want in enumerate(task.expected) if want is not None]


def _task_scores(task: Task, table: np.ndarray, cols: list[int],
                 found: dict[int, dict[int, Comparison]]) -> list[TaskScore]:
    """One score per row of ``table`` (a program: the id of its grid for each input in ``cols``, -1 for none),
    each distinct row scored once; ``found[input][grid id]`` is that grid's comparison."""
    n_train, n_inputs = len(task.train), len(task.expected)
    by_row: dict[tuple[int, ...], TaskScore] = {}
    out = []
    for row in map(tuple, table.tolist()):
        score = by_row.get(row)
        if score is None:
            grid_of = dict(zip(cols, row))
            comparisons = tuple(found[j].get(grid_of[j], NO_GRID) if j in found else None for j in range(n_inputs))
            score = by_row[row] = TaskScore(train=partition_score(comparisons[:n_train]),
                                            test=partition_score(comparisons[n_train:]), comparisons=comparisons)
        out.append(score)
    return out


def partition_score(comparisons: Iterable[Comparison | None]) -> PartitionScore:
    """Pixel score, correct-grid fraction and all-correct flag over the grids that have an expected output."""
    scored = [c for c in comparisons if c is not None]
    if not scored:
        return PartitionScore(0.0, 0.0, False, 0)
    exact = sum(c.exact for c in scored)
    return PartitionScore(pixel_score=sum(c.similarity for c in scored) / len(scored),
                          correct_grids=exact / len(scored), all_correct=exact == len(scored), n=len(scored))


def fingerprint(outputs: Sequence[Any]) -> str | None:
    """SHA-256 (hex) over the shapes and values of ``outputs``; None if any output is None.

    Values are hashed as little-endian int64, so the dtype a program returned does not matter.
    """
    digest = hashlib.sha256()
    for grid in outputs:
        if grid is None:
            return None
        arr = np.ascontiguousarray(grid, dtype="<i8")
        digest.update(np.asarray(arr.shape, dtype="<i8").tobytes())
        digest.update(arr.tobytes())
    return digest.hexdigest()


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k: the chance that k of n samples, c of them correct, include a correct one.

    ``1 - C(n - c, k) / C(n, k)``, in exact integer arithmetic (rounded once, at the end).
    """
    if not (0 <= c <= n) or not (1 <= k <= n):
        raise ValueError(f"pass_at_k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    return float(1 - Fraction(math.comb(n - c, k), math.comb(n, k)))


@dataclass(frozen=True)
class TaskMetrics:
    """One table row: a task, or the MEAN over tasks (then every field is a mean over tasks)."""

    task_id: str
    n: float                     # programs
    valid_code: float            # fraction with a runnable program (not no_code/syntax/missing entry)
    valid_outputs: float         # fraction with status ok (a valid grid for every input)
    unique_outputs: float        # distinct output sets among valid-output programs (by fingerprint)
    train_pixel: float           # mean pixel score on train over programs (failed programs count 0)
    train_correct: float         # mean fraction of train grids exactly right
    test_pixel: float | None     # same on test; None when the task has no test outputs
    test_correct: float | None
    pass_rate: float             # fraction of programs exactly right on every scored grid
    pass_at: dict[int, float | None]   # k -> pass@k; None where k > n
    solved_train: float          # 1.0 if some program got all train grids right
    solved_test: float | None    # 1.0 if some program got all test grids right; None without test outputs
    statuses: dict[str, float] = field(default_factory=dict)   # Status value -> count of programs

    def as_dict(self, ks: Sequence[int] = (), statuses: Sequence[str] = ()) -> dict[str, Any]:
        """Flat columns: ``pass@k`` per k and ``status:<value>`` per status."""
        row = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("pass_at", "statuses")}
        row.update({f"pass@{k}": self.pass_at.get(k) for k in ks})
        row.update({f"status:{s}": self.statuses.get(s, 0) for s in statuses})
        return row


@dataclass
class MetricsTable:
    rows: list[TaskMetrics]
    mean: TaskMetrics
    ks: tuple[int, ...]
    problems: list[str] = field(default_factory=list)   # results that could not be scored, and why

    @property
    def status_columns(self) -> list[str]:
        seen = {s for row in self.rows for s in row.statuses}
        return [s.value for s in Status if s.value in seen]

    def as_dicts(self) -> list[dict[str, Any]]:
        """Per-task rows then the MEAN row, as flat dicts."""
        cols = self.status_columns
        return [r.as_dict(self.ks, cols) for r in [*self.rows, self.mean]]

    def to_json(self) -> str:
        return json.dumps({"rows": self.as_dicts()[:-1], "mean": self.as_dicts()[-1],
                           "problems": self.problems}, indent=1)

    def to_csv(self) -> str:
        rows = self.as_dicts()
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)
        return buf.getvalue()

    def to_text(self, max_rows: int | None = 50) -> str:
        """Aligned plain-text table; with more than ``max_rows`` tasks only the MEAN row and a note."""
        rows = self.as_dicts()
        shown = rows if max_rows is None or len(rows) - 1 <= max_rows else rows[-1:]
        headers = [_short(h) for h in rows[0]]
        cells = [[_cell(v) for v in row.values()] for row in shown]
        widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
        lines = ["  ".join(h.rjust(w) for h, w in zip(headers, widths))]
        lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells]
        if len(shown) < len(rows):
            lines.append(f"({len(rows) - 1} task rows omitted; see to_csv() / to_json())")
        return "\n".join(lines)

    def summary(self) -> str:
        """A few short lines for a terminal: tasks, programs, tasks solved, pass@k, status shares."""
        programs = int(sum(r.n for r in self.rows))
        lines = [f"{len(self.rows)} tasks, {programs} programs"]
        with_test = [r for r in self.rows if r.solved_test is not None]
        solved = f"solved: train {int(sum(r.solved_train for r in self.rows))}/{len(self.rows)}"
        if with_test:
            solved += f", test {int(sum(r.solved_test for r in with_test))}/{len(with_test)}"
        lines.append(solved + " tasks (some program right on every grid)")
        lines.append("mean over tasks: " + "  ".join(f"pass@{k} {_cell(self.mean.pass_at.get(k))}" for k in self.ks))
        counts = Counter()
        for row in self.rows:
            counts.update(row.statuses)
        shares = [f"{s} {100 * n / programs:.1f}%" for s, n in counts.most_common()] if programs else []
        lines += _wrap("statuses: ", shares)
        return "\n".join(lines)


def _wrap(head: str, items: list[str], width: int = 88) -> list[str]:
    lines, line = [], head
    for item in items:
        if len(line) + len(item) > width and line.strip():
            lines.append(line.rstrip(", "))
            line = " " * len(head)
        line += item + ", "
    if items:
        lines.append(line.rstrip(", "))
    return lines


def _short(header: str) -> str:
    return header.removeprefix("status:")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if not value.is_integer() else f"{value:.0f}"
    return str(value)


def aggregate(results: Mapping[str, Sequence[ProgramResult]], tasks: Mapping[str, Task],
              ks: Sequence[int] = DEFAULT_KS) -> MetricsTable:
    """One row per task in ``tasks`` (tasks without results count as unsolved) plus a MEAN row.

    ``results[task_id]`` holds ProgramResults whose outputs are aligned with ``task.inputs``.
    Results for unknown tasks, or with the wrong number of outputs, are listed in
    ``table.problems`` (and warned about) instead of failing the whole table.
    """
    problems = [f"task {tid}: results given but the task is unknown" for tid in results if tid not in tasks]
    ks = tuple(sorted(set(ks)))
    rows = [_task_metrics(task, results.get(tid, ()), ks, problems) for tid, task in tasks.items()]
    if problems:
        warnings.warn(f"aggregate: {len(problems)} problem(s), first: {problems[0]}", stacklevel=2)
    return MetricsTable(rows=rows, mean=_mean_row(rows, ks), ks=ks, problems=problems)


def _task_metrics(task: Task, results: Sequence[ProgramResult], ks: tuple[int, ...],
                  problems: list[str]) -> TaskMetrics:
    n = len(results)
    expected = task.expected
    n_inputs, n_train = len(expected), len(task.train)
    outputs = []
    for i, r in enumerate(results):
        if len(r.outputs) != n_inputs:
            problems.append(f"task {task.id}: result {i}: {len(r.outputs)} outputs for {n_inputs} inputs")
            outputs.append([None] * n_inputs)
        else:
            outputs.append(r.outputs)
    compared = _compare_batches([(outputs, task)], every_input=True)
    ids, sim = compared.tables[0], np.zeros((n, n_inputs))
    for j, pair_of in compared.pairs[0].items():   # scored inputs; the others stay 0 and are not counted
        lookup = np.zeros(compared.n_grids + 1)     # by grid id; the last slot is id -1 (no grid): 0
        lookup[list(pair_of)] = compared.similarity[list(pair_of.values())]
        sim[:, j] = lookup[ids[:, j]]
    exact = sim == 1.0    # similarity is 1.0 exactly for equal grids and below 1 otherwise
    train_cols = list(range(n_train))
    test_cols = [j for j in range(n_train, n_inputs) if expected[j] is not None]

    statuses = Counter(r.status for r in results)
    ok = np.array([r.status is Status.OK for r in results], dtype=bool)
    train_all = exact[:, train_cols].all(axis=1)
    test_all = exact[:, test_cols].all(axis=1) if test_cols else np.ones(n, dtype=bool)
    passes = int(np.count_nonzero(train_all & test_all))
    return TaskMetrics(
        task_id=task.id,
        n=n,
        valid_code=_mean(n - sum(statuses[s] for s in _NO_VALID_CODE), n),
        valid_outputs=_mean(int(ok.sum()), n),
        unique_outputs=len({tuple(row) for row in ids[ok].tolist()}),
        train_pixel=float(sim[:, train_cols].mean()) if n else 0.0,
        train_correct=float(exact[:, train_cols].mean()) if n else 0.0,
        test_pixel=(float(sim[:, test_cols].mean()) if n else 0.0) if test_cols else None,
        test_correct=(float(exact[:, test_cols].mean()) if n else 0.0) if test_cols else None,
        pass_rate=_mean(passes, n),
        pass_at={k: pass_at_k(n, passes, k) if k <= n else None for k in ks},
        solved_train=float(train_all.any()),
        solved_test=float(test_all.any()) if test_cols else None,
        statuses={s.value: c for s, c in statuses.items()},
    )


def distinct_grids(grids: Sequence[Any]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Ids of distinct valid grids (-1 for missing or invalid ones) and the distinct grids, as int64.

    Ids number the distinct grids in the order they first appear. For scoring many programs'
    outputs for one input: compare each distinct grid once. Grids are validated once per distinct
    value, and hashed once per distinct object, not once per program: that is most of the cost.
    """
    grids = list(grids)    # holds every object while its id() stands for it
    # Samples often share output objects (a repeated or cached result): look at each object once.
    object_ids = np.fromiter(map(id, grids), dtype=np.uint64, count=len(grids))
    _, first, which_object = np.unique(object_ids, return_index=True, return_inverse=True)
    by_position = np.argsort(first)     # objects in order of first appearance
    first, which_object = first[by_position], np.argsort(by_position)[which_object.ravel()]
    arrays = [_as_int64_grid(grids[i]) for i in first.tolist()]
    index: dict[tuple, int] = {}
    value_of = np.array([-1 if a is None else index.setdefault((a.shape, a.tobytes()), len(index))
                         for a in arrays] + [-1], dtype=np.int64)    # the last slot maps -1 to -1
    _, rep = np.unique(value_of[:-1], return_index=True)
    rep = rep[value_of[rep] >= 0]       # one object per distinct value, in order of first appearance
    valid = np.flatnonzero(_valid_grids([arrays[i] for i in rep.tolist()]))
    renumber = np.full(len(rep) + 1, -1, dtype=np.int64)
    renumber[valid] = np.arange(len(valid))
    return renumber[value_of[which_object]], [arrays[i] for i in rep[valid].tolist()]


def _as_int64_grid(grid: Any) -> np.ndarray | None:
    if type(grid) is np.ndarray and grid.dtype == _INT64 and grid.ndim == 2:
        return grid     # the common case, checked for size and colours in bulk by _valid_grids
    return grid_or_none(grid)


def _valid_grids(grids: Sequence[np.ndarray]) -> np.ndarray:
    """Which 2-D int64 arrays are valid grids (sides 1..30, colours 0..9), checked in one pass."""
    valid = np.array([1 <= g.shape[0] <= MAX_SIDE and 1 <= g.shape[1] <= MAX_SIDE for g in grids], dtype=bool)
    sized = np.flatnonzero(valid)
    if sized.size:
        flat = np.concatenate([grids[i] for i in sized], axis=None).view(np.uint64)   # negative colours wrap to huge
        starts = np.cumsum([0] + [grids[i].size for i in sized[:-1]])
        valid[sized] = ~np.logical_or.reduceat(flat > 9, starts)
    return valid


def _mean(count: int, n: int) -> float:
    return count / n if n else 0.0


def _mean_row(rows: Sequence[TaskMetrics], ks: tuple[int, ...]) -> TaskMetrics:
    def avg(values: Iterable[float | None]) -> float | None:
        present = [v for v in values if v is not None]
        return float(np.mean(present)) if present else None

    names = [f.name for f in fields(TaskMetrics) if f.name not in ("task_id", "pass_at", "statuses")]
    means = {name: avg(getattr(r, name) for r in rows) for name in names}
    all_statuses = {s for r in rows for s in r.statuses}
    return TaskMetrics(
        task_id="MEAN",
        **{k: (0.0 if v is None and k not in ("test_pixel", "test_correct", "solved_test") else v)
           for k, v in means.items()},
        pass_at={k: avg(r.pass_at.get(k) for r in rows) for k in ks},
        statuses={s: float(np.mean([r.statuses.get(s, 0) for r in rows])) for s in all_statuses},
    )
