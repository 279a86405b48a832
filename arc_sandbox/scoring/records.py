"""Result files: one JSON object per program run, one per line (what ``arc-sandbox run`` writes).

Keys: ``task_id``, ``sample`` (int), ``status`` (a :class:`Status` value), ``code``, ``outputs``
(grids as nested lists, or null, aligned with the inputs the program was run on),
``grid_statuses``, ``error_type``, ``error_message``, ``wall_s``, ``cpu_s``, ``peak_memory_mb``,
``augmentation`` (null or :meth:`Augmentation.to_json`).

``outputs`` are stored as the program returned them, i.e. in the augmented space when
``augmentation`` is set; :func:`record_to_result` reverts them by default, so results read back
line up with the original task.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Iterable, Iterator

from arc_sandbox.executor.grids import GridError, as_grid
from arc_sandbox.executor.results import ProgramResult, Status

from .augment import Augmentation
from .loading import json_lines, open_text


@dataclass
class ResultRecord:
    task_id: str
    sample: int
    result: ProgramResult
    augmentation: Augmentation | None = None


@dataclass
class ResultFile:
    """Records grouped by task id, in file order, and one message per line that could not be read."""

    by_task: dict[str, list[ResultRecord]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def results(self) -> dict[str, list[ProgramResult]]:
        """``{task_id: [ProgramResult, ...]}``, the shape :func:`aggregate` and :func:`build_submission` take."""
        return {tid: [r.result for r in recs] for tid, recs in self.by_task.items()}


def result_to_record(result: ProgramResult, task_id: str, sample: int,
                     augmentation: Augmentation | None = None) -> dict[str, Any]:
    """The JSON-ready dict for one line of a results file (outputs as the program returned them)."""
    return {
        "task_id": task_id,
        "sample": int(sample),
        "status": Status(result.status).value,
        "code": result.code,
        "outputs": [None if g is None else g.tolist() for g in result.outputs],
        "grid_statuses": [Status(s).value for s in result.grid_statuses],
        "error_type": result.error_type,
        "error_message": result.error_message,
        "wall_s": result.wall_s,
        "cpu_s": result.cpu_s,
        "peak_memory_mb": result.peak_memory_mb,
        "augmentation": None if augmentation is None else augmentation.to_json(),
    }


def record_to_result(record: dict[str, Any], revert: bool = True) -> ResultRecord:
    """Parse one results-file object; ``revert`` maps outputs back through its augmentation.

    Raises ``ValueError`` naming the field (and task id when known) if the record is malformed.
    """
    if not isinstance(record, dict):
        raise ValueError(f"record must be a JSON object, got {type(record).__name__}")
    task_id = record.get("task_id")
    where = f"task {task_id}" if isinstance(task_id, str) else "record"
    try:
        if not isinstance(task_id, str):
            raise ValueError("task_id: missing or not a string")
        sample = record.get("sample")
        if not isinstance(sample, int) or isinstance(sample, bool):
            raise ValueError(f"sample: must be an int, got {sample!r}")
        status = _status(record.get("status"), "status")
        raw_outputs = record.get("outputs") or []
        if not isinstance(raw_outputs, list):
            raise ValueError("outputs: must be a list or null")
        outputs = [None if g is None else _grid(g, f"outputs[{i}]") for i, g in enumerate(raw_outputs)]
        raw_statuses = record.get("grid_statuses") or []
        grid_statuses = [_status(s, f"grid_statuses[{i}]") for i, s in enumerate(raw_statuses)]
        augmentation = None
        if record.get("augmentation") is not None:
            augmentation = Augmentation.from_json(record["augmentation"])
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    if augmentation is not None and revert:
        outputs = augmentation.revert_outputs(outputs)
    result = ProgramResult(
        status=status, outputs=outputs, grid_statuses=grid_statuses,
        error_type=record.get("error_type"), error_message=record.get("error_message"),
        wall_s=float(record.get("wall_s") or 0.0), cpu_s=float(record.get("cpu_s") or 0.0),
        peak_memory_mb=float(record.get("peak_memory_mb") or 0.0), code=record.get("code") or "",
        index=sample, key=task_id)
    return ResultRecord(task_id=task_id, sample=sample, result=result, augmentation=augmentation)


def _status(value: Any, name: str) -> Status:
    try:
        return Status(value)
    except ValueError:
        raise ValueError(f"{name}: unknown status {value!r}") from None


def _grid(obj: Any, name: str):
    try:
        return as_grid(obj)
    except GridError as exc:
        raise ValueError(f"{name}: {exc}") from None


def write_records(records: Iterable[dict[str, Any]], stream: IO[str]) -> int:
    """Write records (from :func:`result_to_record`) as JSON lines; returns how many."""
    count = 0
    for record in records:
        stream.write(json.dumps(record, separators=(",", ":")) + "\n")
        count += 1
    return count


def iter_records(path: str | Path) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    """``(line number, record or None, error or None)`` per non-blank line of a (.gz) JSONL file."""
    with open_text(path) as f:
        yield from json_lines(f)


def read_results(path: str | Path, revert: bool = True) -> ResultFile:
    """Read a results file; bad lines are reported in ``.errors`` (and warned about), not fatal."""
    out = ResultFile()
    for number, record, error in iter_records(path):
        if record is not None:
            try:
                rec = record_to_result(record, revert=revert)
                out.by_task.setdefault(rec.task_id, []).append(rec)
                continue
            except ValueError as exc:
                error = f"line {number}: {exc}"
        out.errors.append(error)
    if out.errors:
        warnings.warn(f"{path}: {len(out.errors)} unreadable line(s), first: {out.errors[0]}", stacklevel=2)
    return out
