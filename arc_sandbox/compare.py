"""Comparing a predicted grid with the expected one.

``similarity`` is pixel accuracy when the shapes agree. When they differ, the predicted grid
is slid over the expected one at every offset where the two overlap, the matching cells are
counted at the best offset, and the count is divided by the area of the bounding box of both
shapes (``max(h1, h2) * max(w1, w2)``). Different shapes therefore never reach 1, and the
measure is symmetric in its two arguments.

The match counts at all offsets are a 2-D cross-correlation of one-hot colour planes,
computed with one FFT per colour plane rather than a Python loop over offsets.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .grids import GridError, as_grid

_FFT_BATCH = 64   # grids per batched FFT call: bounds the temporary arrays to a few MB


@dataclass(frozen=True)
class Comparison:
    exact: bool          # same shape and same values
    same_shape: bool
    similarity: float    # in [0, 1]; 1.0 exactly when ``exact``


_MISSING = Comparison(exact=False, same_shape=False, similarity=0.0)


def compare(predicted: Any, expected: Any) -> Comparison:
    """Compare ``predicted`` (a grid, or None / anything invalid, which scores 0) with ``expected``.

    ``expected`` must be a valid grid; a :class:`~arc_sandbox.grids.GridError` says why not.
    """
    expected = as_grid(expected)
    predicted = grid_or_none(predicted)
    if predicted is None:
        return _MISSING
    if predicted.shape == expected.shape:
        matches = int(np.count_nonzero(predicted == expected))
        return Comparison(exact=matches == expected.size, same_shape=True,
                          similarity=matches / expected.size)
    return Comparison(exact=False, same_shape=False,
                      similarity=float(similarity_many([predicted], expected)[0]))


def similarity(predicted: Any, expected: Any) -> float:
    """Shorthand for ``compare(predicted, expected).similarity``."""
    return compare(predicted, expected).similarity


def best_overlap(a: np.ndarray, b: np.ndarray) -> int:
    """Most cells that agree when ``b`` is slid over ``a`` (every offset with some overlap)."""
    a, b = as_grid(a), as_grid(b)
    return int(_overlap_counts(a[None], b)[0])


def similarity_many(predicted: Sequence[np.ndarray], expected: np.ndarray) -> np.ndarray:
    """Similarities of many valid int grids against one expected grid, as a float array.

    Grids of the expected shape cost one vectorised comparison; all the others go through
    batched FFTs, padded to a common size with a value that matches no colour. This is what
    makes scoring hundreds of programs per task cheap.
    """
    out = np.zeros(len(predicted), dtype=np.float64)
    same = [i for i, g in enumerate(predicted) if g.shape == expected.shape]
    other = [i for i, g in enumerate(predicted) if g.shape != expected.shape]
    if same:
        stack = np.stack([predicted[i] for i in same])
        out[same] = np.count_nonzero(stack == expected, axis=(1, 2)) / expected.size
    for start in range(0, len(other), _FFT_BATCH):
        chunk = other[start:start + _FFT_BATCH]
        shapes = np.array([predicted[i].shape for i in chunk])
        stack = np.full((len(chunk), *shapes.max(axis=0)), -1, dtype=np.int64)
        for row, i in enumerate(chunk):
            h, w = predicted[i].shape
            stack[row, :h, :w] = predicted[i]
        boxes = np.maximum(shapes[:, 0], expected.shape[0]) * np.maximum(shapes[:, 1], expected.shape[1])
        out[chunk] = _overlap_counts(stack, expected) / boxes
    return out


def _overlap_counts(stack: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Best-offset match counts of each grid in ``stack`` (m, h1, w1) against ``b`` (h2, w2).

    ``stack`` may hold -1 padding, which matches nothing.
    """
    from scipy import fft as sfft   # here, not at the top: it costs about a second at `import arc_sandbox`

    m, h1, w1 = stack.shape
    h2, w2 = b.shape
    # A colour missing from either side matches nothing: skip its plane (real grids use few colours).
    colours = np.flatnonzero(np.bincount(stack[stack >= 0], minlength=10)
                             * np.bincount(b.ravel(), minlength=10))
    if colours.size == 0:
        return np.zeros(m, dtype=np.int64)
    # Correlating a with b is convolving a with b flipped; the full result covers every offset.
    # float32 is exact enough: counts are at most 900, far above the FFT's rounding error.
    full = (h1 + h2 - 1, w1 + w2 - 1)
    fft_shape = (sfft.next_fast_len(full[0], real=True), sfft.next_fast_len(full[1], real=True))
    planes_a = (stack[:, None] == colours[None, :, None, None]).astype(np.float32)
    planes_b = (b[::-1, ::-1][None] == colours[:, None, None]).astype(np.float32)
    product = sfft.rfft2(planes_a, s=fft_shape) * sfft.rfft2(planes_b, s=fft_shape)
    counts = sfft.irfft2(product.sum(axis=1), s=fft_shape)[:, : full[0], : full[1]]
    return np.rint(counts.reshape(m, -1).max(axis=1)).astype(np.int64)


def grid_or_none(grid: Any) -> np.ndarray | None:
    """``grid`` as a valid int64 grid, or None when it is None or not a valid grid."""
    if grid is None:
        return None
    try:
        return as_grid(grid)
    except GridError:
        return None
