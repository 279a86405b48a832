import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arc_sandbox.compare import Comparison, best_overlap, compare, similarity_many
from arc_sandbox.grids import GridError
from arc_sandbox.strategies import grids


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


def test_large_single_colour_grids_count_exactly():
    # The largest possible counts: float32 FFT rounding must still land on the integer.
    a, b = np.full((30, 30), 7), np.full((29, 30), 7)
    assert best_overlap(a, b) == 29 * 30
    assert compare(a, b).similarity == pytest.approx(29 / 30)


@given(st.lists(grids(max_side=9, colours=5), min_size=1, max_size=12), grids(max_side=9, colours=5))
def test_similarity_many_agrees_with_compare(preds, expected):
    many = similarity_many(preds, expected)
    assert many == pytest.approx([compare(p, expected).similarity for p in preds])
