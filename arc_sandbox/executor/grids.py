"""What counts as an ARC grid, and converting things into one."""
from __future__ import annotations

from typing import Any

import numpy as np

MAX_SIDE = 30


class GridError(ValueError):
    """Raised when something is not a valid ARC grid; the message says why."""


def as_grid(obj: Any, max_side: int = MAX_SIDE) -> np.ndarray:
    """Return ``obj`` as a 2-D int64 array of colours 0..9 with sides 1..max_side.

    Lists of lists are accepted; floats only when every value is integral (``np.zeros``
    defaults to float64, and BARC's own comparison accepts such grids).
    """
    if isinstance(obj, np.ndarray):
        arr = obj
    else:
        try:
            arr = np.asarray(obj)
        except Exception as exc:  # ragged lists, objects whose __array__ raises...
            raise GridError(f"not convertible to an array ({type(exc).__name__}: {exc})") from None
    if arr.dtype == object:
        raise GridError("ragged or non-numeric grid (object array)")
    if arr.ndim != 2:
        raise GridError(f"grid must be 2-D, got {arr.ndim}-D with shape {arr.shape}")
    h, w = arr.shape
    if not (1 <= h <= max_side and 1 <= w <= max_side):
        raise GridError(f"grid sides must be within 1..{max_side}, got {h}x{w}")
    kind = arr.dtype.kind
    if kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise GridError("grid holds non-integer values")
    elif kind not in "iub":
        raise GridError(f"grid dtype {arr.dtype} is not numeric")
    lo, hi = arr.min(), arr.max()
    if lo < 0 or hi > 9:
        raise GridError(f"grid values must be colours 0..9, got range {lo}..{hi}")
    return arr.astype(np.int64, copy=kind != "i" or arr.dtype != np.int64)


def is_grid(obj: Any, max_side: int = MAX_SIDE) -> bool:
    try:
        as_grid(obj, max_side)
    except GridError:
        return False
    return True
