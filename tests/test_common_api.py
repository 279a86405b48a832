"""The ``common`` surface, behaviours the golden vectors do not cover, error behaviour and state reset."""
import random

import numpy as np
import pytest

from arc_sandbox.dsl import common
from arc_sandbox.dsl.common import Color

FUNCTIONS = {
    "flood_fill", "draw_line", "blit", "blit_object", "blit_sprite", "scale_pattern", "scale_sprite",
    "bounding_box", "bounding_box_mask", "object_position", "object_colors", "crop", "translate",
    "find_connected_components", "is_contiguous", "detect_objects", "collision", "contact",
    "check_between_objects", "object_interior", "object_boundary", "object_neighbors", "orbit",
    "detect_translational_symmetry", "detect_mirror_symmetry", "detect_rotational_symmetry",
    "randomly_scatter_points", "randomly_spaced_indices", "random_free_location_for_sprite",
    "random_free_location_for_object", "random_sprite", "generate_sprite", "apply_symmetry",
    "apply_diagonal_symmetry", "show_colored_grid", "visualize",
}
CLASSES = {"Color", "Symmetry", "TranslationalSymmetry", "MirrorSymmetry"}
LEGACY = {"random_scatter_points", "generate_position_has_interval"}


@pytest.fixture(autouse=True)
def pristine_state():
    common.reset_state()
    yield
    common.reset_state()


def star_import():
    namespace = {}
    exec("from arc_sandbox.dsl.common import *", namespace)
    namespace.pop("__builtins__")
    return namespace


def test_star_export_is_barc_head_plus_legacy_names():
    namespace = star_import()
    assert len(FUNCTIONS) == 36
    assert set(namespace) == FUNCTIONS | CLASSES | LEGACY | {"np", "random"}
    assert namespace["np"] is np and namespace["random"] is random
    assert "reset_state" not in namespace and "_score_symmetry" not in namespace
    assert callable(common._score_symmetry)


def test_color_is_a_plain_namespace_with_purple_and_brown():
    assert (Color.TEAL, Color.PURPLE, Color.MAROON, Color.BROWN, Color.GREY, Color.GRAY) == (8, 8, 9, 9, 5, 5)
    assert Color.ALL_COLORS == list(range(10)) and Color.NOT_BLACK == list(range(1, 10))
    assert Color.TRANSPARENT == Color.BACKGROUND == Color.BLACK == 0
    with pytest.raises(TypeError):
        Color(3)
    with pytest.raises(TypeError):
        iter(Color)


def test_reset_state_undoes_color_mutations():
    before = Color.ALL_COLORS
    Color.RED = 7
    Color.ALL_COLORS.append(3)
    Color.NOT_BLACK.remove(2)
    del Color.BLUE
    Color.CYAN = 11
    common.reset_state()
    assert Color.RED == 2 and Color.BLUE == 1 and not hasattr(Color, "CYAN")
    assert Color.ALL_COLORS == list(range(10)) and Color.NOT_BLACK == list(range(1, 10))
    before.append(4)  # a list the last program kept a reference to is no longer Color's
    assert Color.ALL_COLORS == list(range(10))


def test_reset_state_undoes_rebound_module_names_and_class_patches():
    original_crop, original_color = common.crop, common.Color
    common.Color = 5
    common.crop = None
    common.junk = 1
    common.TranslationalSymmetry.apply = lambda self, x, y, iters=1: (0, 0)
    common.reset_state()
    assert common.Color is original_color and common.crop is original_crop
    assert not hasattr(common, "junk")
    assert common.TranslationalSymmetry(1, 0).apply(1, 1) == (2, 1)
    assert star_import()["Color"] is original_color


def test_reset_state_survives_deleted_globals_and_reordered_attributes():
    original_crop = common.crop
    del common.crop, common._MODULE_SNAPSHOT, common._CLASS_SNAPSHOTS
    del Color.BLACK
    Color.BLACK = 0  # same value, new position in the class dict
    common.reset_state()
    assert common.crop is original_crop
    assert Color.BLACK == 0
    assert common._MODULE_SNAPSHOT.is_pristine()
    assert all(snapshot.is_pristine() for snapshot in common._CLASS_SNAPSHOTS)


def test_reset_state_keeps_the_same_objects_when_nothing_changed():
    lists = Color.ALL_COLORS, Color.NOT_BLACK
    common.reset_state()
    assert (Color.ALL_COLORS, Color.NOT_BLACK) == lists
    assert Color.ALL_COLORS is lists[0] and Color.NOT_BLACK is lists[1]


def test_library_functions_read_color_at_call_time_like_barc():
    Color.ALL_COLORS[:] = [0, 5]
    random.seed(1)
    assert set(common.generate_sprite(3, 3, "not_symmetric", max_colors=1).ravel().tolist()) == {0, 5}


def test_set_order_of_colours_matches_cpython_set_iteration():
    assert common.object_colors(np.array([[2, 9]])) == [9, 2]
    assert common.object_colors(np.array([[9, 1, 8]])) == [8, 9, 1]
    assert common.object_colors(np.array([[0, 9, 2, 8]])) == [8, 9, 2]
    assert all(isinstance(c, np.integer) for c in common.object_colors(np.array([[1, 2]])))
    components = common.find_connected_components(np.array([[2, 0, 9]]))
    assert [int(c.max()) for c in components] == [9, 2]


def test_geometry_edge_cases():
    empty = np.zeros((3, 4), dtype=int)
    assert common.bounding_box(empty) == (3, 4, -3, -4)
    assert common.crop(empty).shape == (0, 0)
    assert not common.bounding_box_mask(empty).any()
    assert common.object_position(empty) == (3, 4)
    obj = np.zeros((5, 5), dtype=int)
    obj[1:3, 1:4] = 2
    assert common.object_position(obj, anchor="center") == (1.5, 2)
    assert common.object_position(obj, anchor="Bottom Right") == (2, 3)
    with pytest.raises(AssertionError, match="Invalid anchor"):
        common.object_position(obj, anchor="upper_left")
    assert common.detect_objects(obj) == []


def test_draw_line_reduces_direction_to_signs_and_skips_off_canvas_steps():
    grid = np.zeros((5, 5), dtype=int)
    assert common.draw_line(grid, 0, 0, end_x=2, end_y=5, color=1) == (4, 4)
    np.testing.assert_array_equal(grid, np.eye(5, dtype=int))
    grid = np.zeros((3, 3), dtype=int)
    assert common.draw_line(grid, 1, 1, length=-1, direction=(1, 0), color=4) == (1, 1)
    assert not grid.any()
    with pytest.raises(AssertionError, match="must be integers"):
        common.draw_line(grid, 1.5, 0, direction=(1, 0), color=1)
    with pytest.raises(TypeError):
        common.draw_line(grid, 0, 0, color=1)


def test_blit_clips_truncates_offsets_and_returns_the_grid():
    grid = np.zeros((3, 3), dtype=int)
    sprite = np.array([[1, 0], [2, 3]])
    assert common.blit(grid, sprite, -0.5, 1.7) is grid
    np.testing.assert_array_equal(grid, [[0, 1, 0], [0, 2, 3], [0, 0, 0]])
    assert common.blit_sprite(grid, sprite, 2, 2) is grid
    assert grid[2, 2] == 1


def test_translate_rejects_fractional_shifts_like_numpy_indexing():
    with pytest.raises(IndexError):
        common.translate(np.ones((3, 3), dtype=int), 1.0, 0)
    far_away = common.translate(np.ones((3, 3), dtype=int), 10.5, 0)  # nothing lands: no index, no error
    assert not far_away.any()


def test_symmetry_iteration_quirks():
    mirror = common.MirrorSymmetry(2.5, None)
    assert mirror.apply(1, 7) == (4, 7)
    assert mirror.apply(1.0, 7, iters=2) == (1.0, 7)
    assert mirror.apply(1, 7, iters=-1) == (4, 7)
    assert repr(mirror) == str(mirror) == "MirrorSymmetry(mirror_x=2.5, mirror_y=None)"
    assert not isinstance(mirror, common.Symmetry)
    grid = np.array([[1, 2, 1], [2, 3, 2], [1, 2, 1]])
    rotation = common.detect_rotational_symmetry(grid)
    assert (rotation.center_x, rotation.center_y) == (1, 1)
    assert rotation.apply(0, 2, iters=-3) == (0, 2)
    assert rotation.apply(0, 2) == (2, 2)
    assert common.TranslationalSymmetry(2, 0)._iter_range((5, 5)) == (-3, 4)
    with pytest.raises(AttributeError):
        common.orbit(grid, 0, 0, [common.Symmetry()])


@pytest.mark.parametrize("call, error, message", [
    (lambda: common.flood_fill(np.zeros((2, 2), int), 0, 0, 1, connectivity=6), AssertionError,
     "flood_fill: Connectivity must be 4 or 8."),
    (lambda: common.find_connected_components(np.zeros((2, 2), int), connectivity=6), ValueError,
     "Connectivity must be 4 or 8."),
    (lambda: common.is_contiguous(np.zeros((2, 2), int), connectivity=5), ValueError, "Connectivity must be 4 or 8."),
    (lambda: common.contact(object1=np.ones((2, 2)), object2=np.ones((2, 2)), connectivity=3), ValueError,
     "Connectivity must be 4 or 8."),
    (lambda: common.object_neighbors(np.ones((2, 2), int), connectivity=3), ValueError, "Connectivity must be 4 or 8."),
    (lambda: common.generate_sprite(3, 3, "spiral"), ValueError, "Invalid symmetry type spiral."),
    (lambda: common.generate_sprite(3, 4, "radial"), AssertionError, "Radial symmetry requires a square grid."),
    (lambda: common.generate_sprite(3, 3, "horizontal", connectivity=6), ValueError, "Connectivity must be 4 or 8."),
    (lambda: common.apply_symmetry(np.zeros((2, 2), int), "diagonal"), ValueError, "Invalid symmetry type diagonal."),
    (lambda: common.apply_diagonal_symmetry(np.zeros((2, 3), int)), ValueError,
     "Diagonal symmetry requires a square sprite."),
    (lambda: common.random_sprite(3, 4, symmetry="radial"), IndexError, "Cannot choose from an empty sequence"),
    (lambda: common.random_free_location_for_sprite(np.zeros((3, 3), int), np.ones((4, 1), int)), ValueError,
     "No free location for sprite found."),
    (lambda: common.random_free_location_for_sprite(np.zeros((3, 3), int), np.ones((1, 1)), padding=1,
                                                    padding_connectivity=6), ValueError,
     "padding_connectivity must be 4 or 8."),
])
def test_errors_match_the_reference(call, error, message):
    with pytest.raises(error) as raised:
        call()
    assert type(raised.value) is error and str(raised.value) == message


def test_scale_and_collision_misuse_fail_like_the_reference():
    with pytest.raises(TypeError):
        common.scale_sprite(np.ones((2, 2), int), 1.5)
    with pytest.raises(AttributeError):
        common.collision(np.ones((2, 2)), np.ones((2, 2)))


def test_flood_fill_keeps_the_recursion_limit_of_the_reference():
    common.flood_fill(np.zeros((30, 30), int), 0, 0, 1)  # ARC-sized regions are fine
    with pytest.raises(RecursionError):
        common.flood_fill(np.zeros((32, 32), int), 0, 0, 1)
    with pytest.raises(RecursionError):
        common.object_interior(np.zeros((32, 32), int))


def test_flood_fill_start_cell_indexes_numpy_style():
    grid = np.zeros((3, 3), dtype=int)
    grid[1, :] = 5
    # Starts at grid[2, 0] with raw x = -1: its neighbour x+1 = 0 is "in bounds" (so row 0 fills), while
    # (-1, 1) is not, so the rest of row 2 stays as it was.
    common.flood_fill(grid, -1, 0, 7)
    np.testing.assert_array_equal(grid, [[7, 7, 7], [5, 5, 5], [7, 0, 0]])


def test_generators_that_would_loop_forever_fail_fast():
    with pytest.raises(ValueError, match="background cells"):
        common.randomly_scatter_points(np.ones((3, 3), int), 2, density=0.5)
    with pytest.raises(ValueError, match="cannot fill"):
        common.generate_sprite(3, 3, "not_symmetric", fill_percentage=1.5)
    with pytest.raises(ValueError, match="cannot fill"):
        common.generate_sprite(3, 3, "not_symmetric", color_palate=[0])


def test_legacy_names_behave_like_their_successors():
    np.random.seed(3)
    old = common.random_scatter_points(np.zeros((4, 4), int), 2, density=0.25)
    np.random.seed(3)
    new = common.randomly_scatter_points(np.zeros((4, 4), int), 2, density=0.25)
    np.testing.assert_array_equal(old, new)
    assert common.generate_position_has_interval(3, 4) is None
    np.testing.assert_array_equal(common.generate_position_has_interval(3, 2), [0, 2])


def test_scale_pattern_prints_its_deprecation(capsys):
    out = common.scale_pattern(np.array([[1, 2]]), 2)
    assert capsys.readouterr().out == "scale_pattern: DEPRECATED, switch to scale_sprite\n"
    np.testing.assert_array_equal(out, common.scale_sprite(np.array([[1, 2]]), 2))


def test_show_colored_grid_prints_one_line_per_y(capsys):
    common.show_colored_grid(np.array([[1, 2, 3], [4, 5, 6]]))
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert "1" in lines[0] and "4" in lines[0] and "\033[38;5;4m1\033[0m" in lines[0]
