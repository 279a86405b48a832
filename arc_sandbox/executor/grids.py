"""What counts as an ARC grid, and converting things into one.

A grid is any 2-D array or nested list whose values are all integral numbers 0..9, whatever
its dtype: int or uint arrays, float arrays holding whole numbers (``np.zeros`` defaults to
float64), and object arrays of numbers (programs that build ``np.zeros(shape, dtype=object)``
and fill it; BARC and arc25 both accept those). Booleans count as the numbers 0 and 1, as they
do for numpy and for both reference harnesses. Everything else is a :class:`GridError` that
names the problem: ragged rows, a non-numeric value, NaN or infinity, a non-integer, a colour
out of range, a side out of range.
"""
from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

MAX_SIDE = 30


class GridError(ValueError):
    """Raised when something is not a valid ARC grid; the message says why."""


def as_grid(obj: Any, max_side: int = MAX_SIDE) -> np.ndarray:
    """Return ``obj`` as a 2-D int64 array of colours 0..9 with sides 1..max_side."""
    if isinstance(obj, np.ndarray):
        arr = obj
    else:
        try:
            arr = np.asarray(obj)
        except ValueError as exc:   # numpy refuses ragged nesting outright
            if "inhomogeneous" in str(exc):
                raise GridError("ragged grid: rows of different lengths or depths") from None
            raise GridError(f"not convertible to an array (ValueError: {exc})") from None
        except Exception as exc:  # objects whose __array__ or __len__ raises...
            raise GridError(f"not convertible to an array ({type(exc).__name__}: {exc})") from None
    if arr.dtype == object and arr.ndim == 1 and any(isinstance(row, (list, tuple, np.ndarray)) for row in arr):
        raise GridError("ragged grid: rows of different lengths or depths")
    if arr.ndim != 2:
        raise GridError(f"grid must be 2-D, got {arr.ndim}-D with shape {arr.shape}")
    h, w = arr.shape
    if not (1 <= h <= max_side and 1 <= w <= max_side):
        raise GridError(f"grid sides must be within 1..{max_side}, got {h}x{w}")
    kind = arr.dtype.kind
    if kind == "O":
        return _from_objects(arr)
    if kind == "f":
        if not np.all(np.isfinite(arr)):
            raise GridError("grid holds NaN or infinity")
        if not np.all(arr == np.round(arr)):
            raise GridError("grid holds non-integer values")
    elif kind not in "iub":
        raise GridError(f"grid dtype {arr.dtype} is not numeric")
    lo, hi = arr.min(), arr.max()
    if lo < 0 or hi > 9:
        raise GridError(f"grid values must be colours 0..9, got range {lo}..{hi}")
    return arr.astype(np.int64, copy=kind != "i" or arr.dtype != np.int64)


def _from_objects(arr: np.ndarray) -> np.ndarray:
    """An object array of numbers as int64; the first bad value is named with its position."""
    w = arr.shape[1]
    values = []
    for k, value in enumerate(arr.ravel().tolist()):
        colour = _colour(value)
        if isinstance(colour, str):
            raise GridError(f"grid value at row {k // w}, column {k % w}: {colour}")
        values.append(colour)
    return np.array(values, dtype=np.int64).reshape(arr.shape)


def _colour(value: Any) -> int | str:
    """The colour ``value`` stands for, or why it is not one."""
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, numbers.Integral):
        number = int(value)
    elif isinstance(value, numbers.Real):   # float, numpy floats, Fraction
        if not math.isfinite(value):
            return f"{value!r} is NaN or infinity"
        if value != math.floor(value):
            return f"{value!r} is not an integer"
        number = int(value)
    else:
        return f"{_short_repr(value)} ({type(value).__name__}) is not a number"
    return number if 0 <= number <= 9 else f"{number} is not a colour 0..9"


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def is_grid(obj: Any, max_side: int = MAX_SIDE) -> bool:
    try:
        as_grid(obj, max_side)
    except GridError:
        return False
    return True
