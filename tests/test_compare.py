import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arc_sandbox.scoring.compare import (Comparison, _direct_counts, _fft_counts, best_overlap, compare, similarity_many,
                                 similarity_pairs)
from arc_sandbox.executor.grids import GridError
from arc_sandbox.testing.strategies import grids


def naive_best_overlap(a, b):
    """Reference: count matches at every offset with a Python double loop."""
    (h1, w1), (h2, w2) = a.shape, b.shape
    best = 0
    for dy in range(-h2 + 1, h1):
        for dx in range(-w2 + 1, w1):
            matches = sum(a[y, x] == b[y - dy, x - dx]
                          for y in range(max(0, dy), min(h1, dy + h2))
                          for x in range(max(0, dx), min(w1, dx + w2)))
            best = max(best, matches)
    return best


def test_equal_shapes_give_pixel_accuracy():
    expected = np.array([[1, 2], [3, 4]])
    c = compare(np.array([[1, 2], [3, 0]]), expected)
    assert c == Comparison(exact=False, same_shape=True, similarity=0.75)
    assert compare(expected.copy(), expected) == Comparison(True, True, 1.0)


def test_partial_overlap_counts():
    # The only match needs the grids to overlap partly: [1 2 3] shifted two cells left over [3 0 0 0].
    a, b = np.array([[1, 2, 3]]), np.array([[3, 0, 0, 0]])
    assert best_overlap(a, b) == 1
    assert compare(a, b).similarity == pytest.approx(1 / 4)


def test_contained_grid_is_found_at_its_offset():
    big = np.zeros((6, 7), dtype=np.int64)
    small = np.array([[1, 2], [3, 4]])
    big[3:5, 4:6] = small
    # every cell of small matches, plus nothing else can do better; box is 6x7
    assert compare(small, big).similarity == pytest.approx(4 / 42)
    assert not compare(small, big).same_shape


@pytest.mark.parametrize("bad", [None, "x", [[1, 2], [3]], [[10]], [[-1]], [], [[]], np.zeros((2, 2, 2))])
def test_missing_or_invalid_prediction_scores_zero(bad):
    assert compare(bad, np.array([[1]])) == Comparison(False, False, 0.0)


def test_lists_and_integral_floats_are_accepted():
    assert compare([[1.0, 2.0]], [[1, 2]]).exact


def test_invalid_expected_raises():
    with pytest.raises(GridError):
        compare([[1]], [[1, 2], [3]])


@given(grids())
def test_similarity_is_one_exactly_for_equal_grids(g):
    c = compare(g.copy(), g)
    assert c.exact and c.same_shape and c.similarity == 1.0


@given(grids(max_side=6, colours=3), grids(max_side=6, colours=3))
def test_similarity_is_symmetric_and_below_one_unless_equal(a, b):
    ab, ba = compare(a, b), compare(b, a)
    assert ab.similarity == pytest.approx(ba.similarity)
    assert 0.0 <= ab.similarity <= 1.0
    assert (ab.similarity == 1.0) == ab.exact == (a.shape == b.shape and np.array_equal(a, b))


@settings(max_examples=60)
@given(grids(max_side=7, colours=4), grids(max_side=7, colours=4))
def test_fft_overlap_matches_naive_loop(a, b):
    assert best_overlap(a, b) == naive_best_overlap(a, b)
    if a.shape != b.shape:
        box = max(a.shape[0], b.shape[0]) * max(a.shape[1], b.shape[1])
        assert compare(a, b).similarity == pytest.approx(naive_best_overlap(a, b) / box)


@settings(max_examples=100, deadline=None)   # the first call imports scipy.fft
@given(st.lists(grids(max_side=7, colours=4), min_size=1, max_size=3), grids(max_side=7, colours=4))
def test_direct_and_fft_counts_both_match_naive_loop(preds, b):
    # similarity_many picks one of the two by size; each must equal the definition on its own.
    shape = preds[0].shape
    stack = np.stack([p for p in preds if p.shape == shape])
    naive = [naive_best_overlap(a, b) for a in stack]
    assert _direct_counts(stack, b[None]).tolist() == naive
    assert _fft_counts(stack, b).tolist() == naive


def test_large_single_colour_grids_count_exactly():
    # The largest possible counts: float32 FFT rounding must still land on the integer.
    a, b = np.full((30, 30), 7), np.full((29, 30), 7)
    assert best_overlap(a, b) == 29 * 30
    assert _direct_counts(a[None], b[None]).tolist() == _fft_counts(a[None], b).tolist() == [29 * 30]
    assert compare(a, b).similarity == pytest.approx(29 / 30)


@given(st.lists(grids(max_side=9, colours=5), min_size=1, max_size=12), grids(max_side=9, colours=5))
def test_similarity_many_agrees_with_compare(preds, expected):
    many = similarity_many(preds, expected)
    assert many == pytest.approx([compare(p, expected).similarity for p in preds])


@given(st.lists(st.tuples(grids(max_side=9, colours=5), grids(max_side=9, colours=5)), min_size=1, max_size=12))
def test_similarity_pairs_agrees_with_compare(pairs):
    predicted, expected = [p for p, _ in pairs], [e for _, e in pairs]
    assert similarity_pairs(predicted, expected) == pytest.approx([compare(p, e).similarity for p, e in pairs])


def test_similarity_pairs_on_large_grids_uses_fft_and_agrees_with_direct_counts():
    # Near-30x30 pairs of different shapes are past the direct path's threshold.
    rng = np.random.default_rng(0)
    expected = [rng.integers(0, 3, (29, 30)), rng.integers(0, 10, (30, 28))]
    predicted = [rng.integers(0, 3, (30, 30)), rng.integers(0, 10, (27, 30)), rng.integers(0, 3, (28, 29))]
    pairs = [(predicted[0], expected[0]), (predicted[1], expected[1]), (predicted[2], expected[0]),
             (predicted[0], expected[1])]
    got = similarity_pairs([p for p, _ in pairs], [e for _, e in pairs])
    for (p, e), sim in zip(pairs, got):
        box = max(p.shape[0], e.shape[0]) * max(p.shape[1], e.shape[1])
        assert sim == _direct_counts(p[None], e[None])[0] / box


def test_similarity_pairs_needs_aligned_lists():
    with pytest.raises(ValueError, match="2 predicted grids for 1 expected"):
        similarity_pairs([np.zeros((1, 1), np.int64)] * 2, [np.zeros((1, 1), np.int64)])
