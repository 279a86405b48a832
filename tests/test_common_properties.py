"""Hypothesis property tests of invariants of the ``common`` library (beyond the golden vectors)."""
import random

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import ndimage

from arc_sandbox.dsl import common

settings.register_profile("common", max_examples=150, deadline=None)
settings.load_profile("common")


def grids(max_side=8, colors=4, min_side=1):
    shapes = st.tuples(st.integers(min_side, max_side), st.integers(min_side, max_side))
    return shapes.flatmap(lambda shape: arrays(np.int64, shape, elements=st.integers(0, colors - 1)))


def neighbours(x, y, connectivity):
    steps = [(0, 1), (0, -1), (1, 0), (-1, 0)]
    if connectivity == 8:
        steps += [(1, 1), (1, -1), (-1, 1), (-1, -1)]
    return [(x + dx, y + dy) for dx, dy in steps]


@given(grids(), st.sampled_from([4, 8]), st.booleans(), st.integers(0, 3))
def test_components_partition_the_foreground_into_maximal_connected_pieces(grid, connectivity, mono, background):
    components = common.find_connected_components(grid, background, connectivity, mono)
    masks = [c != background for c in components]
    coverage = np.sum(masks, axis=0) if masks else np.zeros(grid.shape, dtype=int)
    np.testing.assert_array_equal(coverage, (grid != background).astype(int))  # disjoint and complete
    label_of = np.zeros(grid.shape, dtype=int)
    for index, (component, mask) in enumerate(zip(components, masks), start=1):
        assert component.dtype == np.int64 and component.shape == grid.shape
        np.testing.assert_array_equal(component[mask], grid[mask])
        assert np.all(component[~mask] == background)
        assert common.is_contiguous(component, background, connectivity)
        if mono:
            assert len(set(component[mask].tolist())) == 1
        label_of[mask] = index
    # maximal: two touching foreground pixels that could be joined are in the same component
    n, m = grid.shape
    for x, y in zip(*np.nonzero(grid != background)):
        for nx, ny in neighbours(x, y, connectivity):
            if 0 <= nx < n and 0 <= ny < m and grid[nx, ny] != background:
                if not mono or grid[nx, ny] == grid[x, y]:
                    assert label_of[nx, ny] == label_of[x, y]


@given(grids(), st.sampled_from([4, 8]))
def test_components_come_in_raster_order_of_their_first_pixel(grid, connectivity):
    components = common.find_connected_components(grid, 0, connectivity, monochromatic=False)
    firsts = [np.flatnonzero(c != 0)[0] for c in components]
    assert firsts == sorted(firsts)


def sprites(max_side=5):
    """Sprites whose four edges each hold a non-background (non-zero) pixel, so crop gives them back."""
    def touches_edges(s):
        return all(np.any(edge != 0) for edge in (s[0, :], s[-1, :], s[:, 0], s[:, -1]))
    return grids(max_side, colors=3).filter(touches_edges)


@given(sprites(), st.integers(0, 12), st.integers(0, 12), st.data())
def test_crop_of_a_blitted_sprite_returns_the_sprite(sprite, extra_w, extra_h, data):
    canvas = np.zeros((sprite.shape[0] + extra_w, sprite.shape[1] + extra_h), dtype=np.int64)
    x = data.draw(st.integers(0, extra_w))
    y = data.draw(st.integers(0, extra_h))
    assert common.blit_sprite(canvas, sprite, x, y) is canvas
    cropped = common.crop(canvas)
    np.testing.assert_array_equal(cropped, sprite)
    assert np.shares_memory(cropped, canvas)  # a view, as in BARC
    assert common.bounding_box(canvas) == (x, y, sprite.shape[0], sprite.shape[1])
    assert common.object_position(canvas) == (x, y)


@given(grids(max_side=6), st.integers(-4, 4), st.integers(-4, 4), st.integers(0, 3))
def test_translate_there_and_back_restores_a_grid_with_room_around_it(core, a, b, background):
    grid = np.full((core.shape[0] + 2 * abs(a), core.shape[1] + 2 * abs(b)), background, dtype=np.int64)
    grid[abs(a):abs(a) + core.shape[0], abs(b):abs(b) + core.shape[1]] = core
    moved = common.translate(grid, a, b, background)
    assert moved.dtype == grid.dtype and moved.shape == grid.shape
    np.testing.assert_array_equal(common.translate(moved, -a, -b, background), grid)


@given(grids(), st.integers(-9, 9), st.integers(-9, 9), st.integers(-1, 3))
def test_translate_moves_every_pixel_that_stays_on_the_canvas(grid, a, b, background):
    moved = common.translate(grid, a, b, background)
    n, m = grid.shape
    expected = np.full_like(grid, background)
    for i in range(n):
        for j in range(m):
            if 0 <= i + a < n and 0 <= j + b < m:
                expected[i + a, j + b] = grid[i, j]
    np.testing.assert_array_equal(moved, expected)


@given(grids(), grids(max_side=5), st.integers(-6, 9), st.integers(-6, 9), st.sampled_from([None, 0, 2]))
def test_vectorised_blit_equals_pixel_by_pixel_blit(grid, sprite, x, y, background):
    fast = common.blit(grid.copy(), sprite, x, y, background)
    slow = common._blit_pixelwise(grid.copy(), sprite, x, y, background)
    np.testing.assert_array_equal(fast, slow)


@given(grids(max_side=7, colors=3), st.data(), st.sampled_from([4, 8]))
def test_flood_fill_repaints_exactly_the_component_of_the_start(grid, data, connectivity):
    x = data.draw(st.integers(0, grid.shape[0] - 1))
    y = data.draw(st.integers(0, grid.shape[1] - 1))
    structure = ndimage.generate_binary_structure(2, 1 if connectivity == 4 else 2)
    labels, _ = ndimage.label(grid == grid[x, y], structure)
    expected = grid.copy()
    expected[labels == labels[x, y]] = 9
    common.flood_fill(grid, x, y, 9, connectivity)
    np.testing.assert_array_equal(grid, expected)


@given(grids(colors=3), st.sampled_from([4, 8]))
def test_region_masks_nest(grid, connectivity):
    interior = common.object_interior(grid)
    boundary = common.object_boundary(grid)
    neighbours_mask = common.object_neighbors(grid, connectivity=connectivity)
    foreground = grid != 0
    assert interior.dtype == boundary.dtype == neighbours_mask.dtype == bool
    assert np.all(interior[foreground])
    assert not np.any(boundary & ~foreground)
    assert not np.any(neighbours_mask & foreground)
    # enclosed holes: background pixels of the interior never reach the edge through background
    labels, _ = ndimage.label(~foreground)
    edge = set(labels[0, :]) | set(labels[-1, :]) | set(labels[:, 0]) | set(labels[:, -1])
    holes = interior & ~foreground
    assert not (set(labels[holes].tolist()) & edge)


@given(grids(max_side=6), st.integers(0, 4))
def test_scale_sprite_blows_every_pixel_up_to_a_block(sprite, factor):
    scaled = common.scale_sprite(sprite, factor)
    assert scaled.shape == (sprite.shape[0] * factor, sprite.shape[1] * factor) and scaled.dtype == sprite.dtype
    for i in range(scaled.shape[0]):
        for j in range(scaled.shape[1]):
            assert scaled[i, j] == sprite[i // factor, j // factor]


@given(grids(max_side=6, colors=2), grids(max_side=6, colors=2), st.integers(-3, 3), st.integers(-3, 3))
def test_collision_and_contact_are_symmetric_and_contact_includes_collision(a, b, dx, dy):
    collide = common.collision(object1=a, object2=b, x2=dx, y2=dy)
    assert collide == common.collision(object1=b, object2=a, x1=dx, y1=dy)
    for connectivity in (4, 8):
        touch = common.contact(object1=a, object2=b, x2=dx, y2=dy, connectivity=connectivity)
        assert touch == common.contact(object1=b, object2=a, x1=dx, y1=dy, connectivity=connectivity)
        assert touch or not collide


@given(grids(), st.sampled_from([4, 8]), st.booleans())
def test_detect_objects_keeps_all_components_sorted_by_size(grid, connectivity, mono):
    components = common.find_connected_components(grid, 0, connectivity, mono)
    detected = common.detect_objects(grid, connectivity=connectivity, monochromatic=mono)
    assert len(detected) == len(components)
    assert sorted(o.tobytes() for o in detected) == sorted(c.tobytes() for c in components)
    keys = []
    for obj in detected:
        _, _, w, h = common.bounding_box(obj)
        keys.append((w * h, int(np.sum(obj != 0))))
    assert keys == sorted(keys, reverse=True)
    overlapping = common.detect_objects(grid, connectivity=connectivity, monochromatic=mono, can_overlap=True)
    assert [o.tobytes() for o in overlapping] == [c.tobytes() for c in components]


@given(grids(min_side=2, max_side=7), st.sampled_from(["horizontal", "vertical"]))
def test_apply_symmetry_makes_the_sprite_symmetric(sprite, kind):
    result = common.apply_symmetry(sprite, kind)
    assert result is sprite
    axis = 0 if kind == "horizontal" else 1
    np.testing.assert_array_equal(result, np.flip(result, axis))


@given(st.integers(1, 7).flatmap(lambda n: arrays(np.int64, (n, n), elements=st.integers(0, 3))))
def test_apply_diagonal_symmetry_keeps_the_upper_triangle(sprite):
    upper = np.triu(sprite, 1).copy()
    result = common.apply_diagonal_symmetry(sprite)
    np.testing.assert_array_equal(result, result.T)
    nonzero = upper != 0
    np.testing.assert_array_equal(result[nonzero], upper[nonzero])


SYMMETRIES = ["horizontal", "vertical", "diagonal", "radial", "mirror", "not_symmetric", None]


@settings(max_examples=60)
@given(st.integers(0, 10_000), st.integers(1, 7), st.sampled_from(SYMMETRIES),
       st.sampled_from([None, [2], [1, 3]]), st.sampled_from([4, 8]))
def test_random_sprite_is_contiguous_and_touches_every_edge(seed, side, symmetry, palette, connectivity):
    assume((side, symmetry, connectivity) != (3, "mirror", 4))   # can never succeed: see the test below
    random.seed(seed)
    sprite = common.random_sprite(side, side, symmetry=symmetry, color_palette=palette, connectivity=connectivity)
    assert sprite.shape == (side, side)
    assert common.is_contiguous(sprite, connectivity=connectivity)
    assert common.crop(sprite).shape == sprite.shape
    if palette:
        assert set(sprite[sprite != 0].tolist()) <= set(palette)
    if symmetry == "horizontal":
        np.testing.assert_array_equal(sprite, sprite[::-1, :])
    if symmetry == "radial":
        np.testing.assert_array_equal(sprite, np.rot90(sprite))


@given(st.integers(0, 10_000), st.integers(4, 30), st.integers(0, 4), st.integers(0, 2), st.integers(1, 2))
def test_randomly_spaced_indices_are_spaced_and_inside_the_border(seed, max_len, count, border, padding):
    random.seed(seed)
    try:
        indices = common.randomly_spaced_indices(max_len, count, border_size=border, padding=padding)
    except IndexError:
        return  # no room left: the reference raises too
    assert indices.dtype == np.int64 and len(indices) == count
    assert np.all(np.diff(indices) > padding)
    if count:
        assert indices.min() >= border
        assert indices.max() <= (max_len - 1 if border == 0 else max_len - 3)


@given(grids(max_side=9, colors=2, min_side=3), sprites(max_side=3), st.integers(0, 10_000),
       st.integers(0, 1), st.integers(0, 2))
def test_random_free_location_is_free(grid, sprite, seed, border, padding):
    random.seed(seed)
    try:
        x, y = common.random_free_location_for_sprite(grid, sprite, border_size=border, padding=padding)
    except ValueError:
        return
    assert type(x) is int and type(y) is int
    assert border <= x <= grid.shape[0] - border - sprite.shape[0]
    assert border <= y <= grid.shape[1] - border - sprite.shape[1]
    occupied = ndimage.binary_dilation(grid != 0, iterations=padding, structure=np.ones((3, 3))) if padding else grid != 0
    window = occupied[x:x + sprite.shape[0], y:y + sprite.shape[1]]
    assert not np.any(window & (sprite != 0))


@given(grids(min_side=2), st.integers(-3, 3), st.integers(-3, 3), st.data())
def test_orbit_points_lie_on_the_canvas_and_include_the_start(grid, tx, ty, data):
    x = data.draw(st.integers(0, grid.shape[0] - 1))
    y = data.draw(st.integers(0, grid.shape[1] - 1))
    symmetries = [common.TranslationalSymmetry(tx, ty), common.MirrorSymmetry(grid.shape[0] / 2 - 0.5, None)]
    points = common.orbit(grid, x, y, symmetries)
    assert (x, y) in points and len(points) == len(set(points))
    for px, py in points:
        assert 0 <= px < grid.shape[0] and 0 <= py < grid.shape[1]


@pytest.mark.parametrize("side", [1, 2, 5])
def test_randomly_scatter_points_paints_exactly_the_density(side):
    np.random.seed(side)
    grid = np.zeros((side, 4), dtype=np.int64)
    common.randomly_scatter_points(grid, 3, density=0.5)
    assert np.sum(grid == 3) == int(np.ceil(0.5 * side * 4))


def naive_symmetry_score(grid, symmetry, ignore_colors, background):
    n, m = grid.shape
    perfect = off = bad = 0
    for x in range(n):
        for y in range(m):
            if grid[x, y] in ignore_colors or (background is not None and grid[x, y] == background):
                continue
            mx, my = symmetry.apply(np.array([x]), np.array([y]))
            mx, my = int(mx[0]), int(my[0])
            if not (0 <= mx < n and 0 <= my < m):
                off += 1
            elif grid[x, y] == grid[mx, my]:
                perfect += 1
            elif grid[mx, my] not in ignore_colors:
                bad += 1
    return perfect, off, bad


@given(grids(max_side=6, colors=3), st.integers(-5, 5), st.integers(-5, 5), st.integers(0, 10),
       st.sampled_from([[0], [], [0, 2]]), st.sampled_from([None, 0, 1]))
def test_symmetry_scores_match_a_pixel_by_pixel_count(grid, tx, ty, half_steps, ignore_colors, background):
    rotation_class = type(common.detect_rotational_symmetry(np.array([[1, 2, 1], [2, 3, 2], [1, 2, 1]])))
    for symmetry in (common.TranslationalSymmetry(tx, ty), common.MirrorSymmetry(half_steps / 2, None),
                     common.MirrorSymmetry(half_steps / 2, tx / 2), rotation_class(half_steps / 2, half_steps / 2)):
        got = common._score_symmetry(grid, symmetry, ignore_colors, background)
        assert tuple(int(v) for v in got) == naive_symmetry_score(grid, symmetry, ignore_colors, background)


def test_random_sprite_gives_up_where_barc_would_loop_forever():
    random.seed(0)
    with pytest.raises(ValueError, match="after 10000 tries"):
        common.random_sprite(3, 3, symmetry="mirror", connectivity=4)
