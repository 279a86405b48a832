"""What counts as a grid: any dtype whose values are whole numbers 0..9, and a precise reason otherwise."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from arc_sandbox.executor.grids import GridError, as_grid, is_grid
from arc_sandbox.testing.strategies import grids

NUMERIC_DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64,
                  np.float16, np.float32, np.float64, np.longdouble]
# How one colour may sit in an object array or a nested list: every number type a program might produce.
AS_OBJECT = [int, float, np.int8, np.int64, np.uint8, np.float32, np.float64, Fraction]


@st.composite
def dressed_grids(draw) -> tuple[np.ndarray, object]:
    """A valid grid, and the same grid in some numeric dtype, as an object array of mixed number
    types, or as nested lists of such numbers."""
    grid = draw(grids(max_side=12))
    form = draw(st.sampled_from(["dtype", "object", "lists", "bool"]))
    if form == "dtype":
        return grid, grid.astype(draw(st.sampled_from(NUMERIC_DTYPES)))
    if form == "bool":
        binary = grid % 2
        return binary, binary.astype(bool)
    makers = draw(st.lists(st.sampled_from(AS_OBJECT), min_size=grid.size, max_size=grid.size))
    values = [make(int(v)) for make, v in zip(makers, grid.ravel().tolist())]
    if form == "lists":
        w = grid.shape[1]
        return grid, [values[r * w:(r + 1) * w] for r in range(grid.shape[0])]
    dressed = np.empty(grid.shape, dtype=object)
    dressed.ravel()[:] = values   # element by element: np.array(values, dtype=object) could re-infer types
    return grid, dressed


@given(dressed_grids())
def test_any_valid_grid_round_trips_to_the_same_int_grid(pair):
    grid, dressed = pair
    out = as_grid(dressed)
    assert out.dtype == np.int64 and out.shape == grid.shape
    assert np.array_equal(out, grid)


# One bad value, planted at a drawn position of an otherwise valid object array, and the words that must name it.
BAD_VALUES = [
    (None, "None (NoneType) is not a number"),
    ("3", "'3' (str) is not a number"),
    ([1], "[1] (list) is not a number"),
    (complex(1, 0), "(1+0j) (complex) is not a number"),
    (float("nan"), "nan is NaN or infinity"),
    (float("-inf"), "-inf is NaN or infinity"),
    (1.5, "1.5 is not an integer"),
    (Fraction(7, 2), "is not an integer"),
    (10, "10 is not a colour 0..9"),
    (-1, "-1 is not a colour 0..9"),
    (2 ** 70, "is not a colour 0..9"),
    (np.float64(9.0000001), "is not an integer"),
]


@given(grids(max_side=8), st.sampled_from(BAD_VALUES), st.data())
def test_one_bad_value_in_an_object_grid_is_named_with_its_position(grid, bad, data):
    value, reason = bad
    r, c = data.draw(st.integers(0, grid.shape[0] - 1)), data.draw(st.integers(0, grid.shape[1] - 1))
    dressed = grid.astype(object)
    dressed[r, c] = value
    with pytest.raises(GridError, match="not a|NaN") as exc:
        as_grid(dressed)
    assert f"row {r}, column {c}: " in str(exc.value) and reason in str(exc.value)


@given(grids(max_side=8), st.sampled_from([(np.nan, "NaN or infinity"), (np.inf, "NaN or infinity"),
                                            (0.5, "non-integer"), (10.0, "0..9"), (-2.0, "0..9")]), st.data())
def test_one_bad_value_in_a_float_grid_gives_the_reason(grid, bad, data):
    value, reason = bad
    floats = grid.astype(np.float64)
    floats[data.draw(st.integers(0, grid.shape[0] - 1)), data.draw(st.integers(0, grid.shape[1] - 1))] = value
    with pytest.raises(GridError, match=reason):
        as_grid(floats)


@given(st.lists(st.lists(st.integers(0, 9), min_size=1, max_size=6), min_size=2, max_size=6))
def test_ragged_rows_are_named_ragged(rows):
    if len({len(r) for r in rows}) == 1:
        rows[0] = rows[0] + [0]   # make it ragged
    with pytest.raises(GridError, match="ragged"):
        as_grid(rows)
    ragged_objects = np.empty(len(rows), dtype=object)
    ragged_objects[:] = [np.array(r) for r in rows]   # what np.array(rows, dtype=object) builds
    with pytest.raises(GridError, match="ragged"):
        as_grid(ragged_objects)


def test_booleans_count_as_colours_0_and_1():
    """Decided: True/False are the numbers 1/0, as in numpy and in BARC's and arc25's checks, whether the
    array is boolean or an object array holding bools. (A program that returns a mask as its answer
    gets it scored, not rejected.)"""
    assert as_grid(np.array([[True, False]])).tolist() == [[1, 0]]
    assert as_grid(np.array([[True, 3]], dtype=object)).tolist() == [[1, 3]]
    assert as_grid([[np.bool_(True), 2]]).tolist() == [[1, 2]]


def test_other_shapes_and_dtypes_stay_rejected():
    with pytest.raises(GridError, match="2-D"):
        as_grid([1, 2, 3])
    with pytest.raises(GridError, match="sides"):
        as_grid(np.zeros((0, 3), dtype=object))
    with pytest.raises(GridError, match="sides must be within 1..30, got 31x1"):
        as_grid(np.zeros((31, 1), dtype=object))
    with pytest.raises(GridError, match="not numeric"):
        as_grid(np.array([["a", "b"]]))
    with pytest.raises(GridError, match="not numeric"):
        as_grid(np.ones((2, 2), dtype=complex))
    assert is_grid(np.zeros((44, 44)), max_side=100) and not is_grid(np.zeros((44, 44)))


def test_input_conversion_is_not_fooled_by_objects_that_raise():
    class Hostile:
        def __array__(self, *args, **kwargs):
            raise RuntimeError("no")
    with pytest.raises(GridError, match="not convertible"):
        as_grid(Hostile())
    inside = np.empty((1, 2), dtype=object)
    inside[0, 0], inside[0, 1] = 1, Hostile()
    with pytest.raises(GridError, match=r"column 1: .*\(Hostile\) is not a number"):
        as_grid(inside)
