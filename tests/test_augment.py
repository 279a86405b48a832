import json

import numpy as np
import pytest
from hypothesis import given

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
