"""ARC tasks: the one type every loader produces."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from arc_sandbox.executor.grids import GridError, as_grid


@dataclass(frozen=True)
class Pair:
    input: np.ndarray
    output: np.ndarray | None = None   # None for test inputs whose solution is unknown


@dataclass(frozen=True)
class Task:
    """One ARC task. Programs run on ``inputs``: train inputs first, then test inputs."""

    id: str
    train: tuple[Pair, ...]
    test: tuple[Pair, ...]
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_dict(cls, d: dict, id: str = "task") -> "Task":
        """Build a task from the ARC layout ``{"train": [{"input", "output"}], "test": [...]}``.

        Errors name the task id and the field, e.g. ``task 007bbfb7: test[0].input: ...``.
        """
        if not isinstance(d, dict):
            raise GridError(f"task {id}: expected an object with 'train' and 'test', got {type(d).__name__}")
        parts = {}
        for part in ("train", "test"):
            items = d.get(part)
            if not isinstance(items, list):
                raise GridError(f"task {id}: '{part}' must be a list")
            pairs = []
            for i, item in enumerate(items):
                if not isinstance(item, dict) or "input" not in item:
                    raise GridError(f"task {id}: {part}[{i}] must be an object with an 'input' grid")
                pairs.append(Pair(_grid(item["input"], id, f"{part}[{i}].input"),
                                  None if item.get("output") is None
                                  else _grid(item["output"], id, f"{part}[{i}].output")))
            parts[part] = tuple(pairs)
        if not parts["train"]:
            raise GridError(f"task {id}: 'train' is empty")
        if any(p.output is None for p in parts["train"]):
            raise GridError(f"task {id}: every train pair needs an 'output'")
        return cls(id=id, train=parts["train"], test=parts["test"])

    def to_dict(self) -> dict:
        def pair(p: Pair) -> dict:
            d = {"input": p.input.tolist()}
            if p.output is not None:
                d["output"] = p.output.tolist()
            return d
        return {"train": [pair(p) for p in self.train], "test": [pair(p) for p in self.test]}

    @property
    def inputs(self) -> list[np.ndarray]:
        return [p.input for p in self.train] + [p.input for p in self.test]

    @property
    def expected(self) -> list[np.ndarray | None]:
        return [p.output for p in self.train] + [p.output for p in self.test]

    @property
    def has_test_outputs(self) -> bool:
        return all(p.output is not None for p in self.test)


def _grid(obj: Any, task_id: str, where: str) -> np.ndarray:
    try:
        return as_grid(obj)
    except GridError as exc:
        raise GridError(f"task {task_id}: {where}: {exc}") from None
