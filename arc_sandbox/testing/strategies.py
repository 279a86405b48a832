"""Hypothesis strategies for ARC grids, tasks, augmentations and program results.

For property-testing code that consumes ARC data or scores programs (reward functions,
metrics, voting). This is the only module of the package that imports ``hypothesis``
(install the ``dev`` extra); nothing else imports it.

Example::

    from hypothesis import given
    from arc_sandbox import score_outputs
    from arc_sandbox.testing.strategies import tasks, task_and_result

    @given(task_and_result())
    def test_reward_in_unit_interval(pair):
        task, result = pair
        assert 0.0 <= my_reward(task, result) <= 1.0

Strategies:

- :func:`grids`: int64 arrays, sides and palette configurable, or of a fixed shape.
- :func:`tasks`: :class:`Task` objects with consistent train/test pairs.
- :func:`augmentations`: :class:`Augmentation` (any dihedral, colour permutations with or
  without a fixed background).
- :func:`program_results`: :class:`ProgramResult` for a given task, covering the outcomes a
  sandbox produces: every output right, some grids wrong or of the wrong shape, some grids
  missing, and failures (timeouts, syntax errors...) with no outputs. ``failed`` and
  ``outcomes`` narrow it down, e.g. to a program that gets every grid right::

      program_results(task, failed=False, outcomes=("right",))

- :func:`task_and_result`: a task drawn together with a result for it.

And :func:`result_with_outputs`, the result a sandbox reports for given outputs (to build a
variant of a drawn result, e.g. with one more grid right).
"""
from __future__ import annotations

import numpy as np
from typing import Sequence

from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from arc_sandbox.scoring.augment import Augmentation
from arc_sandbox.executor.results import ProgramResult, Status
from arc_sandbox.scoring.tasks import Pair, Task

_FAILURES = [s for s in Status if s not in (Status.OK, Status.INVALID_OUTPUT)]
# What each output grid of a program that ran can be (see program_results); "right" is listed twice
# so that fully right programs are common.
GRID_OUTCOMES = ("right", "right", "wrong", "reshaped", "missing")


def grids(min_side: int = 1, max_side: int = 10, colours: int = 10,
          shape: tuple[int, int] | None = None) -> st.SearchStrategy[np.ndarray]:
    """2-D int64 grids with values in ``0..colours-1``; ``shape`` fixes the shape."""
    if shape is None:
        shape = hnp.array_shapes(min_dims=2, max_dims=2, min_side=min_side, max_side=max_side)
    return hnp.arrays(np.int64, shape, elements=st.integers(0, colours - 1))


@st.composite
def tasks(draw, min_train: int = 1, max_train: int = 4, min_test: int = 1, max_test: int = 2,
          max_side: int = 8, test_outputs: bool = True) -> Task:
    """Tasks with random grids; ``test_outputs=False`` leaves test outputs unknown (None)."""
    def pair(with_output: bool) -> Pair:
        return Pair(draw(grids(max_side=max_side)), draw(grids(max_side=max_side)) if with_output else None)
    train = tuple(pair(True) for _ in range(draw(st.integers(min_train, max_train))))
    test = tuple(pair(test_outputs) for _ in range(draw(st.integers(min_test, max_test))))
    task_id = draw(st.text("0123456789abcdef", min_size=8, max_size=8))
    return Task(id=task_id, train=train, test=test)


def augmentations(keep_background: bool | None = None) -> st.SearchStrategy[Augmentation]:
    """Any dihedral transform with a colour permutation; ``keep_background=True`` keeps 0 fixed,
    ``False`` permutes all ten colours, ``None`` draws either."""
    full = st.permutations(range(10)).map(tuple)
    fixed = st.permutations(range(1, 10)).map(lambda p: (0, *p))
    colours = {True: fixed, False: full, None: st.one_of(fixed, full)}[keep_background]
    return st.builds(Augmentation, dihedral=st.integers(0, 7), colours=colours)


@st.composite
def program_results(draw, task: Task, code: st.SearchStrategy[str] | None = None, failed: bool | None = None,
                    outcomes: Sequence[str] = GRID_OUTCOMES) -> ProgramResult:
    """A plausible :class:`ProgramResult` for ``task`` (outputs aligned with ``task.inputs``).

    The whole program failed with a status other than OK and no outputs (always with
    ``failed=True``, never with ``False``, one time in five by default); or each grid is
    independently one of ``outcomes``: ``"right"`` (the expected output, or a random grid where
    the expected one is unknown), ``"wrong"`` (a random grid of the expected shape, so rarely
    right by chance), ``"reshaped"`` (a random grid of any shape) or ``"missing"`` (None, making
    the status INVALID_OUTPUT).
    """
    unknown = set(outcomes) - {"right", "wrong", "reshaped", "missing"}
    if unknown or not outcomes:
        raise ValueError(f"program_results: outcomes must be among right, wrong, reshaped, missing; got {outcomes!r}")
    code_text = draw(code if code is not None else st.text("abcdefxyz()=+ \n", max_size=40))
    n = len(task.inputs)
    if failed is None:
        failed = draw(st.integers(0, 4)) == 0
    if failed:
        status = draw(st.sampled_from(_FAILURES))
        return ProgramResult(status=status, outputs=[None] * n, grid_statuses=[status] * n,
                             error_type=status.value, code=code_text)
    outputs = []
    for expected in task.expected:
        kind = draw(st.sampled_from(list(outcomes)))
        if kind == "missing":
            outputs.append(None)
        elif kind == "reshaped" or expected is None:
            outputs.append(draw(grids()))
        elif kind == "right":
            outputs.append(expected.copy())
        else:
            outputs.append(draw(grids(shape=expected.shape)))
    return result_with_outputs(outputs, code=code_text)


def result_with_outputs(outputs: Sequence[np.ndarray | None], code: str = "") -> ProgramResult:
    """The result of a program that ran and returned ``outputs`` (None where it gave no valid grid):
    status OK when every grid is there, INVALID_OUTPUT otherwise, as the sandbox reports it."""
    grid_statuses = [Status.OK if g is not None else Status.INVALID_OUTPUT for g in outputs]
    status = Status.OK if all(s is Status.OK for s in grid_statuses) else Status.INVALID_OUTPUT
    return ProgramResult(status=status, outputs=list(outputs), grid_statuses=grid_statuses, code=code)


@st.composite
def task_and_result(draw, **task_options) -> tuple[Task, ProgramResult]:
    """A task (options as for :func:`tasks`) and one result for it."""
    task = draw(tasks(**task_options))
    return task, draw(program_results(task))
