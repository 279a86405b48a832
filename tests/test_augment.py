import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from arc_sandbox.scoring.augment import Augmentation, all_dihedral, random_augmentation
from arc_sandbox.scoring.metrics import score_outputs
from arc_sandbox.testing.strategies import augmentations, grids, tasks


@given(grids(max_side=12), augmentations())
def test_revert_undoes_apply(g, aug):
    out = aug.apply_grid(g)
    assert out.dtype == g.dtype and sorted(out.shape) == sorted(g.shape)
    assert np.array_equal(aug.revert_grid(out), g)


@given(grids(max_side=12), augmentations())
def test_apply_undoes_revert(g, aug):
    assert np.array_equal(aug.apply_grid(aug.revert_grid(g)), g)


def test_eight_distinct_dihedral_transforms():
    g = np.arange(6).reshape(2, 3)
    images = {aug.apply_grid(g).tobytes() + bytes(aug.apply_grid(g).shape) for aug in all_dihedral()}
    assert len(images) == 8
    assert np.array_equal(Augmentation(dihedral=1).apply_grid(g), np.rot90(g))
    assert np.array_equal(Augmentation(dihedral=4).apply_grid(g), g[:, ::-1])
    assert np.array_equal(Augmentation(dihedral=5).apply_grid(g), g.T)


def test_colour_permutation_maps_values():
    aug = Augmentation(colours=(0, 2, 1, 3, 4, 5, 6, 7, 8, 9))
    assert aug.apply_grid(np.array([[0, 1, 2, 3]])).tolist() == [[0, 2, 1, 3]]


@given(tasks(max_side=6), augmentations())
def test_apply_task_transforms_every_grid_and_records_itself(task, aug):
    out = aug.apply_task(task)
    assert out.id == task.id and out.meta["augmentation"] == aug.to_json()
    for before, after in zip(task.inputs, out.inputs):
        assert np.array_equal(aug.revert_grid(after), before)
    # A program that returns the augmented task's exact outputs, reverted, solves the original.
    reverted = aug.revert_outputs(out.expected)
    assert score_outputs(reverted, task).all_correct


@given(augmentations())
def test_json_round_trip(aug):
    text = json.dumps(aug.to_json())
    assert Augmentation.from_json(json.loads(text)) == aug


@pytest.mark.parametrize("bad", [{"dihedral": 8, "colours": list(range(10))},
                                 {"dihedral": 0, "colours": [0] * 10},
                                 {"dihedral": 0},
                                 {"dihedral": True, "colours": list(range(10))}])
def test_bad_parameters_are_rejected(bad):
    with pytest.raises(ValueError, match="dihedral|colours"):
        Augmentation.from_json(bad)


def test_random_augmentation_background():
    rng = np.random.default_rng(0)
    assert all(random_augmentation(rng).colours[0] == 0 for _ in range(50))
    moved = [random_augmentation(rng, keep_background_prob=0.0).colours[0] != 0 for _ in range(50)]
    assert any(moved)
    assert random_augmentation(rng, dihedral=False, colours=False).is_identity
    assert random_augmentation(3) == random_augmentation(3)
    with pytest.raises(ValueError, match="keep_background_prob"):
        random_augmentation(rng, keep_background_prob=1.5)


# arc25's augmentation, written from its description (formats.md, arc25 data_augmentation): flip left-right
# (axis 1) when hflip, then np.rot90 n_rot90 times, then colour c becomes color_map[c].
def arc25_apply(grid, hflip, n_rot90, color_map):
    grid = np.flip(grid, axis=1) if hflip else grid
    grid = np.rot90(grid, k=n_rot90)
    if color_map is None:
        return grid
    lookup = {int(k): v for k, v in color_map.items()}
    return np.vectorize(lookup.get)(grid)


@st.composite
def arc25_params(draw) -> dict:
    colour_map = None
    if draw(st.booleans()):
        perm = draw(st.permutations(range(10)))
        colour_map = {str(c): perm[c] for c in range(10)}   # JSON object keys are strings
    return {"hflip": draw(st.booleans()), "n_rot90": draw(st.integers(0, 3)), "color_map": colour_map}


@given(grids(max_side=9), arc25_params())
def test_arc25_parameters_give_arc25s_transform(g, params):
    aug = Augmentation.from_json(json.loads(json.dumps(params)))
    assert np.array_equal(aug.apply_grid(g), arc25_apply(g, **params))
    assert np.array_equal(aug.revert_grid(aug.apply_grid(g)), g)
    # and once converted, our own layout round-trips to the same transform
    again = Augmentation.from_json(json.loads(json.dumps(aug.to_json())))
    assert again == aug and np.array_equal(again.apply_grid(g), arc25_apply(g, **params))


@given(grids(max_side=9), augmentations())
def test_our_parameters_give_the_documented_transform(g, aug):
    d = Augmentation.from_json(json.loads(json.dumps(aug.to_json())))
    expected = np.rot90(g[:, ::-1] if aug.dihedral >= 4 else g, aug.dihedral % 4)
    assert np.array_equal(d.apply_grid(g), np.asarray(aug.colours)[expected])
    assert np.array_equal(d.revert_grid(d.apply_grid(g)), g)


def test_arc25_int_keys_and_large_rotations():
    by_int = Augmentation.from_json({"hflip": 1, "n_rot90": 6, "color_map": {c: (c + 1) % 10 for c in range(10)}})
    assert by_int == Augmentation(dihedral=6, colours=(1, 2, 3, 4, 5, 6, 7, 8, 9, 0))


@pytest.mark.parametrize("bad, message", [
    ({"hflip": "yes", "n_rot90": 0, "color_map": None}, "hflip"),
    ({"hflip": False, "n_rot90": 1.0, "color_map": None}, "n_rot90"),
    ({"hflip": False, "n_rot90": 0, "color_map": [0, 1]}, "color_map"),
    ({"hflip": False, "n_rot90": 0, "color_map": {"0": 0, "1": 1}}, "each colour 0..9"),
    ({"hflip": False, "n_rot90": 0, "color_map": {str(c): 0 for c in range(10)}}, "permutation"),
    ({"hflip": False, "n_rot90": 0, "color_map": {"a": 0}}, "each colour 0..9"),
    ({"hflip": False, "n_rot90": 0}, "arc25"),
])
def test_bad_arc25_parameters_are_rejected(bad, message):
    with pytest.raises(ValueError, match=message):
        Augmentation.from_json(bad)
