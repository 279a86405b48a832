"""Comparing a predicted grid with the expected one.

``similarity`` is pixel accuracy when the shapes agree. When they differ, the predicted grid
is slid over the expected one at every offset where the two overlap, the matching cells are
counted at the best offset, and the count is divided by the area of the bounding box of both
shapes (``max(h1, h2) * max(w1, w2)``). Different shapes therefore never reach 1, and the
measure is symmetric in its two arguments.

The match counts at all offsets are a 2-D cross-correlation. ARC grids are small, so most
pairs count matches directly: every cell of the smaller grid against a strided view of the
other at every offset, in one vectorised comparison (:func:`_direct_counts`). Only when that
would compare too many cells (two grids near 30x30) does an FFT of one-hot colour planes
take over (:func:`_fft_counts`); it costs more to set up but grows as n log n.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from arc_sandbox.executor.grids import GridError, as_grid

# When to count directly rather than by FFT, in cell comparisons (offsets x cells of the smaller grid;
# 10x10 vs 20x20 is 84k, 30x30 vs 29x30 3M). Direct counting costs ~15 us a call plus ~0.35 ns a
# comparison; the FFT ~70-250 us a call plus 20-150 us a grid (benchmarks/scoring.py, 2-core dev box).
# So: direct when a shape's grids need few comparisons in all, or each needs few; FFT otherwise.
_DIRECT_MAX_CELLS = 1_000_000       # also the batch size: bounds the boolean temporary to 1 MB
_DIRECT_MAX_CELLS_PER_GRID = 50_000
_FFT_BATCH = 64   # grids per batched FFT call: bounds the temporary arrays to a few MB


@dataclass(frozen=True)
class Comparison:
    exact: bool          # same shape and same values
    same_shape: bool
    similarity: float    # in [0, 1]; 1.0 exactly when ``exact``


NO_GRID = Comparison(exact=False, same_shape=False, similarity=0.0)   # a missing or invalid grid


def compare(predicted: Any, expected: Any) -> Comparison:
    """Compare ``predicted`` (a grid, or None / anything invalid, which scores 0) with ``expected``.

    ``expected`` must be a valid grid; a :class:`~arc_sandbox.executor.grids.GridError` says why not.
    """
    expected = as_grid(expected)
    predicted = grid_or_none(predicted)
    if predicted is None:
        return NO_GRID
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
    """Similarities of many valid int grids against one expected grid, as a float array."""
    return _similarities(predicted, [expected], [0] * len(predicted))


def similarity_pairs(predicted: Sequence[np.ndarray], expected: Sequence[np.ndarray]) -> np.ndarray:
    """Similarity of each valid int grid ``predicted[i]`` to ``expected[i]``, as a float array."""
    if len(predicted) != len(expected):
        raise ValueError(f"similarity_pairs: {len(predicted)} predicted grids for {len(expected)} expected ones")
    distinct: dict[int, int] = {}   # the same expected grid object often comes back: compare against it once
    which = [distinct.setdefault(id(e), len(distinct)) for e in expected]
    return _similarities(predicted, list({id(e): e for e in expected}.values()), which)


def _similarities(predicted: Sequence[np.ndarray], expected: Sequence[np.ndarray], which: Sequence[int]) -> np.ndarray:
    """Similarity of each ``predicted[i]`` to ``expected[which[i]]``.

    This is what makes scoring hundreds of programs cheap: pairs are grouped by their two shapes, and
    each group costs a few vectorised calls whatever its size. Equal shapes are compared cell by cell;
    different shapes are counted directly when that is cheap, and otherwise go through FFTs batched per
    expected grid, padded to a common size with a value that matches no colour.
    """
    out = np.zeros(len(predicted), dtype=np.float64)
    by_shapes: dict[tuple[tuple[int, int], tuple[int, int]], list[int]] = {}
    for i, (a, k) in enumerate(zip(predicted, which)):
        by_shapes.setdefault((a.shape, expected[k].shape), []).append(i)
    to_fft: dict[int, list[int]] = {}   # expected grid -> pairs
    for (shape_a, shape_b), members in by_shapes.items():
        box = max(shape_a[0], shape_b[0]) * max(shape_a[1], shape_b[1])
        if shape_a != shape_b and not _counts_directly(_direct_cells(shape_a, shape_b), len(members)):
            for i in members:
                to_fft.setdefault(which[i], []).append(i)
            continue
        a = np.array([predicted[i] for i in members])
        targets = {which[i] for i in members}
        if len(targets) == 1:   # one expected grid for the whole group: broadcast it rather than copy it
            b = expected[targets.pop()][None]
        else:
            b = np.array([expected[which[i]] for i in members])
        out[members] = (np.count_nonzero(a == b, axis=(1, 2)) if shape_a == shape_b else _direct_counts(a, b)) / box
    for k, members in to_fft.items():
        b = expected[k]
        for start in range(0, len(members), _FFT_BATCH):
            chunk = members[start:start + _FFT_BATCH]
            shapes = np.array([predicted[i].shape for i in chunk])
            stack = np.full((len(chunk), *shapes.max(axis=0)), -1, dtype=np.int64)
            for row, i in enumerate(chunk):
                h, w = predicted[i].shape
                stack[row, :h, :w] = predicted[i]
            boxes = np.maximum(shapes[:, 0], b.shape[0]) * np.maximum(shapes[:, 1], b.shape[1])
            out[chunk] = _fft_counts(stack, b) / boxes
    return out


def _overlap_counts(stack: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Best-offset match counts of each grid in ``stack`` (m, h1, w1) against ``b`` (h2, w2)."""
    if _counts_directly(_direct_cells(stack.shape[1:], b.shape), len(stack)):
        return _direct_counts(stack, b[None])
    return _fft_counts(stack, b)


def _counts_directly(cells: int, grids: int) -> bool:
    return cells <= _DIRECT_MAX_CELLS_PER_GRID or cells * grids <= _DIRECT_MAX_CELLS


def _direct_cells(shape_a: tuple[int, int], shape_b: tuple[int, int]) -> int:
    """Cell comparisons :func:`_direct_counts` makes for one grid: offsets x cells of the smaller grid."""
    (h1, w1), (h2, w2) = shape_a, shape_b
    return (h1 + h2 - 1) * (w1 + w2 - 1) * min(h1 * w1, h2 * w2)


def _direct_counts(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Best-offset match counts of valid grids ``a[k]`` (m, h1, w1) against ``b[k]`` (m or 1, h2, w2), cell
    by cell: the smaller shape's cells are compared with the larger grid shifted under them to every offset
    (see :func:`_shifted`), all offsets in one comparison; summing over the cells gives the counts."""
    m, h1, w1 = a.shape
    _, h2, w2 = b.shape
    batch = max(1, _DIRECT_MAX_CELLS // _direct_cells((h1, w1), (h2, w2)))
    counts = np.empty(m, dtype=np.int64)
    for start in range(0, m, batch):
        part_a = a[start:start + batch].astype(np.int8)
        part_b = (b[start:start + batch] if len(b) > 1 else b).astype(np.int8)
        if h1 * w1 <= h2 * w2:
            equal = _shifted(part_b, h1, w1) == part_a[..., None]
        else:
            equal = _shifted(part_a, h2, w2) == part_b[..., None]
        # Rows first in bytes (at most 30 matches), then columns in int16 (at most 900): no wide temporaries.
        counts[start:start + batch] = equal.view(np.uint8).sum(axis=1, dtype=np.uint8).sum(axis=1, dtype=np.int16).max(axis=1)
    return counts


def _shifted(grids: np.ndarray, h: int, w: int) -> np.ndarray:
    """An (m, h, w, offsets) view: ``[k, y, x, o]`` is the cell of ``grids[k]`` that cell
    ``(y, x)`` of an h x w window covers at offset ``o``, or -1 (no colour) where it falls outside.

    The grids are padded with -1 (h - 1 rows above, h below, w - 1 columns on the left) and
    flattened, so offset ``o = oy * row + ox`` (``row = W + w - 1``) puts the window's top-left
    corner at padded cell (oy, ox): every placement overlapping the grid is one ``o``, and a window
    running past the right edge wraps into the next row's left padding, which reads as -1 too.
    """
    m, H, W = grids.shape
    row = W + w - 1
    padded = np.full((m, H + 2 * h - 1, row), -1, dtype=np.int8)
    padded[:, h - 1:h - 1 + H, w - 1:] = grids
    s_grid, s_row, s_cell = padded.strides
    # np.ndarray over the buffer rather than as_strided: same view, checked against the buffer's
    # bounds, and a tenth of the call overhead (which is what small grids pay for).
    return np.ndarray((m, h, w, (H + h - 1) * row), dtype=np.int8, buffer=padded,
                      strides=(s_grid, s_row, s_cell, s_cell))


def _fft_counts(stack: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Best-offset match counts of each grid in ``stack`` (m, h1, w1) against ``b`` (h2, w2), by FFT.

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
