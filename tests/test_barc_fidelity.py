"""Regressions against BARC's own harness: programs it accepts must run here too (issue 13).

The programs are written for these tests in the style of BARC's synthetic problems (not taken from
them): an output built in an object array, and inputs larger than 30x30.
"""
from __future__ import annotations

import textwrap

import numpy as np
import pytest

from arc_sandbox import Job, Limits, Sandbox, Status

OBJECT_CANVAS = textwrap.dedent("""
    from common import *
    import numpy as np

    def main(input_grid):
        # a canvas of Python objects, filled cell by cell with colour ints
        h, w = input_grid.shape
        output_grid = np.zeros((h, w), dtype=object)
        for x in range(h):
            for y in range(w):
                output_grid[x, y] = Color.RED if input_grid[x, y] != Color.BLACK else Color.BLACK
        return output_grid
""")

MIXED_NUMBERS = textwrap.dedent("""
    import numpy as np

    def transform(grid):
        # object array holding numpy ints, Python ints, whole floats and a bool
        out = np.empty((2, 2), dtype=object)
        out[0, 0], out[0, 1], out[1, 0], out[1, 1] = np.int64(grid[0, 0]), 7, 3.0, True
        return out
""")

CROP_LARGEST_SQUARE = textwrap.dedent("""
    from common import *
    import numpy as np

    def main(input_grid):
        # the bounding box of the non-background cells of a large input
        return crop(input_grid, background=Color.BLACK)
""")


def big_input(side: int, box: tuple[int, int, int, int], colour: int = 3) -> np.ndarray:
    grid = np.zeros((side, side), dtype=int)
    r, c, h, w = box
    grid[r:r + h, c:c + w] = colour
    return grid


@pytest.fixture(scope="module")
def sb():
    with Sandbox(workers=1, limits=Limits(timeout_s=5.0, memory_mb=256)) as sandbox:
        yield sandbox


def test_object_dtype_outputs_are_valid_grids(sb):
    grid = np.array([[0, 1, 0], [4, 0, 0]])
    r = sb.run([Job(OBJECT_CANVAS, [grid, grid.T])])[0]
    assert r.status is Status.OK, r.error_message
    assert r.outputs[0].dtype == np.int64 and r.outputs[0].tolist() == [[0, 2, 0], [2, 0, 0]]
    assert r.outputs[1].tolist() == [[0, 2], [2, 0], [0, 0]]
    r = sb.run([Job(MIXED_NUMBERS, [[[5]]])])[0]
    assert r.status is Status.OK and r.outputs[0].tolist() == [[5, 7], [3, 1]]


@pytest.mark.parametrize("bad, reason", [("None", "None (NoneType) is not a number"),
                                         ("'red'", "'red' (str) is not a number"),
                                         ("float('nan')", "nan is NaN or infinity"),
                                         ("2.5", "2.5 is not an integer"),
                                         ("12", "12 is not a colour 0..9")])
def test_object_outputs_with_a_bad_value_are_invalid_with_the_reason(sb, bad, reason):
    program = f"import numpy as np\ndef transform(g):\n    out = np.zeros((2, 3), dtype=object)\n" \
              f"    out[1, 2] = {bad}\n    return out\n"
    r = sb.run([Job(program, [[[1]]])])[0]
    assert r.status is Status.INVALID_OUTPUT
    assert "row 1, column 2" in r.error_message and reason in r.error_message


def test_ragged_output_is_invalid_and_says_ragged(sb):
    r = sb.run([Job("def transform(g):\n    return [[1, 2], [3]]\n", [[[1]]])])[0]
    assert r.status is Status.INVALID_OUTPUT and "ragged" in r.error_message


def test_inputs_above_30_run_and_outputs_are_still_judged_by_max_grid_side(sb):
    inputs = [big_input(32, (3, 4, 5, 2)), big_input(44, (40, 1, 4, 4)), big_input(46, (0, 0, 1, 3))]
    r = sb.run([Job(CROP_LARGEST_SQUARE, inputs)])[0]
    assert r.status is Status.OK, r.error_message
    assert [o.shape for o in r.outputs] == [(5, 2), (4, 4), (1, 3)]
    assert all(np.all(o == 3) for o in r.outputs)
    # the identity on a 44x44 input gives a 44x44 output: that is not an ARC grid by default
    same = sb.run([Job("def transform(g):\n    return g\n", inputs)])[0]
    assert same.status is Status.INVALID_OUTPUT and "1..30, got 32x32" in same.error_message


def test_larger_outputs_pass_when_max_grid_side_allows_them():
    with Sandbox(workers=1, limits=Limits(max_grid_side=50)) as sandbox:
        r = sandbox.run([Job("def transform(g):\n    return g\n", [big_input(44, (1, 1, 2, 2))])])[0]
    assert r.status is Status.OK and r.outputs[0].shape == (44, 44)


def test_input_bounds_reject_the_job_alone(sb):
    identity = "def transform(g):\n    return g[:2, :2]\n"
    limits = sb.limits
    jobs = [Job(identity, [np.zeros((limits.max_input_side + 1, 2), int)]),
            Job(identity, [np.zeros((100, 100), int)] * (limits.max_input_cells // 10_000 + 1)),
            Job(identity, [np.ones((limits.max_input_side, limits.max_input_side), int)])]
    too_tall, too_many, fine = sb.run(jobs)
    assert too_tall.status is Status.INVALID_JOB and f"1..{limits.max_input_side}, got 101x2" in too_tall.error_message
    assert too_many.status is Status.INVALID_JOB and "max_input_cells" in too_many.error_message
    assert fine.status is Status.OK and fine.outputs[0].tolist() == [[1, 1], [1, 1]]


@pytest.mark.parametrize("name", ["max_input_side", "max_input_cells"])
@pytest.mark.parametrize("value", [0, -5, 2.5, True])
def test_input_limits_must_be_positive_integers(name, value):
    with pytest.raises(ValueError, match=f"Limits.{name}"):
        Limits(**{name: value})
