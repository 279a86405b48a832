"""Every golden vector of ``tests/data/barc_golden.json`` (produced by BARC's own library) against ours.

The file ships with the tests, so a clone alone runs all of them (a missing file is a failure, not a skip).
Its encoding is described in the team's ``shared/spec/barc-common.md`` §17.1; the special cases are decoded here.
"""
import json
import random
from pathlib import Path

import numpy as np
import pytest

from arc_sandbox.dsl import common

GOLDEN = Path(__file__).resolve().parent / "data" / "barc_golden.json"
CASES = json.loads(GOLDEN.read_text())["cases"]


def decode(value):
    if isinstance(value, dict) and "ndarray" in value:
        return np.array(value["ndarray"], dtype=value["dtype"])
    return value


def draw_line_canvas():
    grid = np.zeros((5, 6), dtype=np.int64)
    grid[0, 4] = 7
    return grid


def between_objects():
    a = np.zeros((7, 7), dtype=np.int64)
    a[0:2, 2:5] = 1
    b = np.zeros((7, 7), dtype=np.int64)
    b[5:7, 1:4] = 2
    return {"A": a, "B": b}


def rotational_symmetry(center_x, center_y):
    # The class is local to detect_rotational_symmetry: take it from a grid with an obvious rotation centre.
    pinwheel = np.array([[1, 2, 1], [2, 3, 2], [1, 2, 1]])
    detected = common.detect_rotational_symmetry(pinwheel)
    assert type(detected).__name__ == "RotationalSymmetry"
    return type(detected)(center_x, center_y)


ORBIT_SYMMETRIES = {
    "TranslationalSymmetry(2,0)": lambda: [common.TranslationalSymmetry(2, 0)],
    "MirrorSymmetry(2.5,None),MirrorSymmetry(None,2.5)": lambda: [common.MirrorSymmetry(2.5, None),
                                                                common.MirrorSymmetry(None, 2.5)],
    "rotational center (1,1)": lambda: [rotational_symmetry(1, 1)],
    "[] (empty)": lambda: [],
}


def decode_call(case):
    """The function, positional and keyword arguments of a case, and the grid an in-place call mutates."""
    name = case["function"].removeprefix("LEGACY ")
    args = [decode(a) for a in case["args"]]
    kwargs = {k: decode(v) for k, v in case["kwargs"].items()}
    mutated = None
    if name == "draw_line":
        args[0] = mutated = draw_line_canvas()
    elif name == "flood_fill":
        args[0] = mutated = np.array(args[0], dtype=np.int64)
    elif name in ("collision", "contact"):
        kwargs["object1"] = np.array(kwargs["object1"], dtype=np.int64)
        kwargs["object2"] = np.array(kwargs["object2"], dtype=np.int64)
    elif name == "orbit":
        args[3] = ORBIT_SYMMETRIES[args[3]]()
    elif name == "check_between_objects":
        objects = between_objects()
        args[0], args[1] = objects[args[0]], objects[args[1]]
    elif name == "detect_objects" and kwargs.get("allowed_dimensions"):
        kwargs["allowed_dimensions"] = [tuple(d) for d in kwargs["allowed_dimensions"]]
    elif name == "randomly_scatter_points":
        # Recorded after the in-place call; the grid before it is documented in the spec.
        args[0] = np.zeros((6, 5), dtype=np.int64)
        args[0][0, 0] = 4
    return getattr(common, name), args, kwargs, mutated


def assert_same(actual, expected):
    if isinstance(expected, dict) and "ndarray" in expected:
        want = decode(expected)
        assert isinstance(actual, np.ndarray)
        assert actual.dtype == want.dtype and actual.shape == want.shape
        np.testing.assert_array_equal(actual, want)
    elif isinstance(expected, list) and expected and isinstance(expected[0], dict):
        assert len(actual) == len(expected)
        for got, want in zip(actual, expected):
            assert_same(got, want)
    elif isinstance(expected, list):
        assert isinstance(actual, (list, tuple, np.ndarray))
        assert [v for v in actual] == expected
    else:
        assert actual == expected and type(actual) is type(expected)


def check_output(name, result, mutated, expected):
    if name == "draw_line":
        assert list(result) == expected["return"]
        np.testing.assert_array_equal(mutated, np.array(expected["grid"]))
    elif name == "flood_fill":
        assert result is None
        np.testing.assert_array_equal(mutated, np.array(expected))
    elif name == "orbit":
        assert len(result) == len(set(result))
        assert {tuple(p) for p in result} == {tuple(p) for p in expected}
    elif name in ("detect_translational_symmetry", "detect_mirror_symmetry"):
        assert [repr(s) for s in result] == expected
    elif name == "detect_rotational_symmetry":
        if expected is None:
            assert result is None
        else:
            assert (result.center_x, result.center_y) == tuple(expected)
    elif name in ("collision", "contact", "check_between_objects"):
        assert bool(result) is expected
    else:
        assert_same(result, expected)


def case_id(index_and_case):
    index, case = index_and_case
    return f"{index:03d}-{case['function'].replace(' ', '_')}"


@pytest.mark.parametrize("index_and_case", list(enumerate(CASES)), ids=[case_id(c) for c in enumerate(CASES)])
def test_golden_vector(index_and_case):
    _, case = index_and_case
    function, args, kwargs, mutated = decode_call(case)
    name = function.__name__
    expected = case["output"]
    if "seed" in case:
        random.seed(case["seed"])
        np.random.seed(case["seed"])
    if isinstance(expected, dict) and "exception" in expected:
        with pytest.raises(Exception) as raised:
            function(*args, **kwargs)
        assert type(raised.value).__name__ == expected["exception"]
        assert str(raised.value) == expected["message"]
    else:
        check_output(name, function(*args, **kwargs), mutated, expected)
    if "rng_after" in case:
        assert random.random() == case["rng_after"]["next_random_random"]
        assert np.random.rand() == case["rng_after"]["next_np_random_rand"]


def test_every_golden_function_is_public():
    star = set(common.__all__)
    assert {case["function"].removeprefix("LEGACY ") for case in CASES} <= star


def test_the_whole_golden_file_is_here():
    assert len(CASES) == 292   # the count docs/barc-common.md reports
