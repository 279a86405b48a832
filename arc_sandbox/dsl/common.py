"""BARC-compatible ``common`` library: the helpers that BARC-style programs get from ``from common import *``.

A clean-room implementation of ``shared/spec/barc-common.md`` (BARC ``seeds/common.py`` at HEAD, plus
``Color.PURPLE``/``Color.BROWN`` and the dataset-era legacy names). Behaviour, including element order, dtypes,
exception types and random-number call sequences, follows that spec; ``docs/barc-common.md`` lists the few
deliberate deviations. Conventions: a grid is indexed ``grid[x, y]`` (x = axis 0); an *object* is a
full-canvas array, a *sprite* a cropped one; ``background`` pixels are empty and transparent.

Inside the sandbox this module is served as ``common``; the worker calls :func:`reset_state` before every
program so that one program's edits to ``Color`` (or to this module) never reach the next one.
"""
import itertools as _itertools
import math as _math
import operator as _operator
import random
import sys as _sys

import numpy as np
from scipy import ndimage as _ndimage

__all__ = [
    "np", "random",
    "Color", "Symmetry", "TranslationalSymmetry", "MirrorSymmetry",
    "flood_fill", "draw_line", "blit", "blit_object", "blit_sprite", "scale_pattern", "scale_sprite",
    "bounding_box", "bounding_box_mask", "object_position", "object_colors", "crop", "translate",
    "find_connected_components", "is_contiguous", "detect_objects",
    "collision", "contact", "check_between_objects",
    "object_interior", "object_boundary", "object_neighbors",
    "orbit", "detect_translational_symmetry", "detect_mirror_symmetry", "detect_rotational_symmetry",
    "randomly_scatter_points", "randomly_spaced_indices", "random_free_location_for_sprite",
    "random_free_location_for_object", "random_sprite", "generate_sprite", "apply_symmetry",
    "apply_diagonal_symmetry", "show_colored_grid", "visualize",
    # dataset-era names (BARC commit ffc1b7c), still emitted by models trained on that data
    "random_scatter_points", "generate_position_has_interval",
]


def _frozen(array):
    array.flags.writeable = False
    return array


_CROSS = _frozen(np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], dtype=bool))
_SQUARE = _frozen(np.ones((3, 3), dtype=bool))
_RING4 = _frozen(np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], dtype=bool))
_RING8 = _frozen(np.array([[1, 1, 1], [1, 0, 1], [1, 1, 1]], dtype=bool))
_MOVES4 = ((0, 1), (0, -1), (1, 0), (-1, 0))
_MOVES8 = _MOVES4 + ((1, 1), (1, -1), (-1, 1), (-1, -1))
_CONNECTIVITY_ERROR = "Connectivity must be 4 or 8."


class Color:
    """
    Enum of colors.

    Color.BLACK, Color.BLUE, Color.RED, Color.GREEN, Color.YELLOW, Color.GREY, Color.PINK, Color.ORANGE,
    Color.TEAL, Color.MAROON. Color.ALL_COLORS lists all of them, Color.NOT_BLACK all but black.
    Color.PURPLE and Color.BROWN are the names BARC's fine-tuning data uses for TEAL and MAROON.
    """

    BLACK = 0
    BLUE = 1
    RED = 2
    GREEN = 3
    YELLOW = 4
    GREY = 5
    GRAY = 5
    PINK = 6
    ORANGE = 7
    TEAL = 8
    MAROON = 9
    PURPLE = 8
    BROWN = 9
    TRANSPARENT = 0
    BACKGROUND = 0
    ALL_COLORS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    NOT_BLACK = [1, 2, 3, 4, 5, 6, 7, 8, 9]


def _structure(connectivity, error=_CONNECTIVITY_ERROR):
    if connectivity == 4:
        return _CROSS
    if connectivity == 8:
        return _SQUARE
    raise ValueError(error)


def _check_recursion_budget(cells):
    """Raise RecursionError where BARC's one-frame-per-pixel flood fill would exhaust the recursion limit."""
    if cells < 100:
        return
    depth, frame = 0, _sys._getframe()
    while frame is not None:
        depth, frame = depth + 1, frame.f_back
    if depth + cells + 1 > _sys.getrecursionlimit():
        raise RecursionError("maximum recursion depth exceeded in comparison")


# --- drawing and scaling (spec §4) ---------------------------------------------------------------------------


def flood_fill(grid, x, y, color, connectivity=4):
    """
    Fill the connected region that contains the point (x, y) with the specified color.

    connectivity: 4 or 8, for 4-way or 8-way connectivity. 8-way counts diagonals as connected, 4-way only
    counts cardinal directions as connected.
    """
    old_color = grid[x, y]
    assert connectivity in [4, 8], "flood_fill: Connectivity must be 4 or 8."
    moves = _MOVES4 if connectivity == 4 else _MOVES8
    n, m = grid.shape
    # Iterative version of BARC's recursive fill; the start cell keeps its raw (possibly negative)
    # coordinates, exactly as the recursion sees them.
    stack, painted = [(x, y)], 0
    while stack:
        cx, cy = stack.pop()
        value = grid[cx, cy]
        if value != old_color or value == color:
            continue
        grid[cx, cy] = color
        if grid[cx, cy] == old_color:  # colour casts back to the old value: BARC recurses forever
            raise RecursionError("maximum recursion depth exceeded in comparison")
        painted += 1
        stack.extend((cx + dx, cy + dy) for dx, dy in moves if 0 <= cx + dx < n and 0 <= cy + dy < m)
    _check_recursion_budget(painted)


def _sign(d):
    return d // abs(d) if d != 0 else 0


def draw_line(grid, x, y, end_x=None, end_y=None, length=None, direction=None, color=None, stop_at_color=[]):
    """
    Draws a line starting at (x, y) extending to (end_x, end_y) or of the specified length in the specified
    direction. Direction should be a vector with elements -1, 0, or 1. If length is None, then the line will
    continue until it hits the edge of the grid. stop_at_color: optional list of colors that the line should
    stop at; the line stops before painting such a pixel.

    Returns the endpoint of the line (the last pixel painted, or the start if nothing was painted).
    """
    assert (end_x is None) == (end_y is None)
    assert x == int(x) and y == int(y), "draw_line: x and y must be integers."
    x, y = int(x), int(y)
    if end_x is not None and end_y is not None:
        length = max(abs(end_x - x), abs(end_y - y)) + 1
        direction = (end_x - x, end_y - y)
    if length is None:
        length = 2 * max(grid.shape)
    dx, dy = direction
    dx, dy = _sign(dx), _sign(dy)
    n, m = grid.shape
    stop_x, stop_y = x, y
    for i in range(length):
        px, py = x + i * dx, y + i * dy
        if not (0 <= px < n and 0 <= py < m):
            continue  # off-canvas steps are skipped, not a stop
        if grid[px, py] in stop_at_color:
            break
        grid[px, py] = color
        stop_x, stop_y = px, py
    return stop_x, stop_y


def blit(grid, sprite, x=0, y=0, background=None):
    """
    Copies the sprite into the grid at the specified location. Modifies the grid in place and returns it.

    background: color treated as transparent. If None, every sprite pixel is copied.
    """
    x, y = int(x), int(y)
    if np.may_share_memory(grid, sprite):
        return _blit_pixelwise(grid, sprite, x, y, background)
    w, h = sprite.shape
    n, m = grid.shape
    i0, i1 = max(0, -x), min(w, n - x)
    j0, j1 = max(0, -y), min(h, m - y)
    if i0 >= i1 or j0 >= j1:
        return grid
    source = sprite[i0:i1, j0:j1]
    target = grid[x + i0:x + i1, y + j0:y + j1]
    if background is None:
        target[...] = source
    else:
        opaque = source != background
        target[opaque] = source[opaque]
    return grid


def _blit_pixelwise(grid, sprite, x, y, background):
    # When the sprite is a view of the grid (e.g. np.rot90(grid)), reads must see this call's earlier
    # writes; generate_sprite's radial symmetry depends on it.
    w, h = sprite.shape
    n, m = grid.shape
    for i in range(w):
        for j in range(h):
            value = sprite[i, j]
            if (background is None or value != background) and 0 <= x + i < n and 0 <= y + j < m:
                grid[x + i, y + j] = value
    return grid


def blit_object(grid, obj, background=Color.BLACK):
    """
    Draws an object onto the grid (an object is a full-canvas array). Modifies the grid in place and returns it.
    """
    return blit(grid, obj, 0, 0, background=background)


def blit_sprite(grid, sprite, x, y, background=Color.BLACK):
    """
    Draws a sprite onto the grid at (x, y), skipping background pixels. Modifies the grid in place and returns it.
    """
    return blit(grid, sprite, x, y, background=background)


def scale_pattern(pattern, scale_factor):
    """
    Scales the pattern by the specified factor (deprecated: use scale_sprite).
    """
    print("scale_pattern: DEPRECATED, switch to scale_sprite")
    return np.repeat(np.repeat(pattern, scale_factor, axis=0), scale_factor, axis=1)


def scale_sprite(sprite, factor):
    """
    Scales the sprite by the specified factor: every pixel becomes a factor x factor block.
    """
    return np.kron(sprite, np.ones((factor, factor), dtype=sprite.dtype))


# --- object geometry (spec §5) --------------------------------------------------------------------------------


def bounding_box(grid, background=Color.BLACK):
    """
    Find the bounding box of the non-background pixels in the grid.

    Returns a tuple (x, y, width, height) of the bounding box.
    """
    n, m = grid.shape
    xs, ys = np.nonzero(grid != background)
    if len(xs) == 0:
        return n, m, -n, -m
    x_min, y_min = int(xs.min()), int(ys.min())
    return x_min, y_min, int(xs.max()) - x_min + 1, int(ys.max()) - y_min + 1


def bounding_box_mask(grid, background=Color.BLACK):
    """
    Find the bounding box of the non-background pixels in the grid.

    Returns a boolean mask of the bounding box, the same shape as the grid.
    """
    x, y, w, h = bounding_box(grid, background)
    mask = np.zeros(grid.shape, dtype=bool)
    mask[x:x + w, y:y + h] = True
    return mask


_ANCHORS = {
    "upperleft": lambda x, y, w, h: (x, y),
    "upperright": lambda x, y, w, h: (x + w - 1, y),
    "lowerleft": lambda x, y, w, h: (x, y + h - 1),
    "lowerright": lambda x, y, w, h: (x + w - 1, y + h - 1),
    "center": lambda x, y, w, h: (x + (w - 1) / 2, y + (h - 1) / 2),
    "uppercenter": lambda x, y, w, h: (x + (w - 1) / 2, y),
    "lowercenter": lambda x, y, w, h: (x + (w - 1) / 2, y + h - 1),
    "leftcenter": lambda x, y, w, h: (x, y + (h - 1) / 2),
    "rightcenter": lambda x, y, w, h: (x + w - 1, y + (h - 1) / 2),
}


def _int_if_integral(value):
    return int(round(value)) if abs(value - round(value)) < 1e-6 else value


def object_position(obj, background=Color.BLACK, anchor="upper left"):
    """
    Finds the (x, y) position of an object.

    anchor: "upper left", "upper right", "lower left", "lower right", "center", "upper center",
    "lower center", "left center", "right center" ("top"/"bottom" work for "upper"/"lower").
    Returns an int when the coordinate is whole, else a float ending in .5.
    """
    x, y, w, h = bounding_box(obj, background)
    key = anchor.lower().replace(" ", "").replace("top", "upper").replace("bottom", "lower")
    assert key in _ANCHORS, "Invalid anchor"
    px, py = _ANCHORS[key](x, y, w, h)
    return _int_if_integral(px), _int_if_integral(py)


def object_colors(obj, background=Color.BLACK):
    """
    Returns a list of the colors in the object (excluding the background).
    """
    # Set iteration order is part of the behaviour (spec §1.9): build the set exactly as BARC does.
    return list(set(obj.flatten()) - {background})


def crop(grid, background=Color.BLACK):
    """
    Crop the grid to the smallest bounding box that contains all non-background pixels.

    Returns a view of the grid: writing into the crop writes into the grid.
    """
    x, y, w, h = bounding_box(grid, background)
    return grid[x:x + w, y:y + h]


def translate(obj, x, y, background=Color.BLACK):
    """
    Translate by the vector (x, y). Fills in the new pixels with the background color; pixels shifted off the
    canvas are lost. Returns a new array.
    """
    n, m = obj.shape
    translated = np.full_like(obj, background)
    try:
        x, y = _operator.index(x), _operator.index(y)
    except TypeError:
        # BARC indexes the canvas with the shifted float coordinate, which fails as soon as one lands inside.
        if any(0 <= i + x < n for i in range(n)) and any(0 <= j + y < m for j in range(m)):
            raise IndexError("only integers, slices (`:`), ellipsis (`...`), numpy.newaxis (`None`) and "
                             "integer or boolean arrays are valid indices") from None
        return translated
    if -n < x < n and -m < y < m:
        translated[max(0, x):n + min(0, x), max(0, y):m + min(0, y)] = \
            obj[max(0, -x):n - max(0, x), max(0, -y):m - max(0, y)]
    return translated


# --- components and object detection (spec §6) ----------------------------------------------------------------


def _component(grid, mask, background):
    return grid * mask + background * ~mask


def find_connected_components(grid, background=Color.BLACK, connectivity=4, monochromatic=True):
    """
    Find the connected components in the grid, in raster order of their first pixel.

    monochromatic: if True, each component has a single color; if False, components may be multicolored.
    Returns a list of objects (full-canvas arrays, background where the component is absent).
    """
    structure = _structure(connectivity)
    if not monochromatic:
        labels, count = _ndimage.label(grid != background, structure)
        return [_component(grid, labels == i, background) for i in range(1, count + 1)]
    components = []
    for color in set(grid.flatten()) - {background}:
        labels, count = _ndimage.label(grid == color, structure)
        components.extend(_component(grid, labels == i, background) for i in range(1, count + 1))
    return components


def is_contiguous(bitmask, background=Color.BLACK, connectivity=4):
    """
    Check if an array is contiguous: all its non-background pixels form one connected component.
    """
    structure = _structure(connectivity)
    _, count = _ndimage.label(bitmask != background, structure)
    return count == 1


def detect_objects(grid, _=None, predicate=None, background=Color.BLACK, monochromatic=False, connectivity=None,
                   allowed_dimensions=None, colors=None, can_overlap=False):
    """
    Detects and extracts objects from the grid that satisfy custom specification.

    predicate: a function that takes a candidate object (a cropped sprite) and returns True if it is valid.
    connectivity: 4 or 8; components are only computed when it is given.
    allowed_dimensions: list of (height, width) windows to also scan the grid with.
    colors: list of allowed colors. can_overlap: whether returned objects may overlap.
    Returns a list of objects (full-canvas arrays).
    """
    objects = []
    if connectivity:
        objects = find_connected_components(grid, background, connectivity, monochromatic)
        if colors:
            objects = [obj for obj in objects if _only_colors(obj, colors, background)]
        if predicate:
            objects = [obj for obj in objects if predicate(crop(obj, background))]
    if allowed_dimensions:
        objects = [obj for obj in objects if obj.shape in allowed_dimensions]
        objects = objects + _scan_windows(grid, objects, predicate, background, allowed_dimensions, colors)
    if can_overlap:
        return objects
    return _select_non_overlapping(objects, background)


def _only_colors(obj, colors, background):
    return bool(np.all(np.isin(obj, list(colors)) | (obj == background)))


def _scan_windows(grid, found, predicate, background, allowed_dimensions, colors):
    grid_h, grid_w = grid.shape
    scanned = []
    for h, w in allowed_dimensions:
        for i in range(grid_h - h + 1):
            for j in range(grid_w - w + 1):
                window = grid[i:i + h, j:j + w]
                if not np.any(window != background):
                    continue
                if colors is not None and not _only_colors(window, colors, background):
                    continue
                if predicate is not None and not predicate(window):
                    continue
                candidate = np.full(grid.shape, background)
                candidate[i:i + h, j:j + w] = window
                if not any(np.array_equal(candidate, obj) for obj in found):
                    scanned.append(candidate)
    return scanned


def _select_non_overlapping(objects, background):
    def size_key(obj):
        _, _, w, h = bounding_box(crop(obj, background), background)
        return w * h, int(np.sum(obj != background))

    objects = sorted(objects, key=size_key, reverse=True)  # stable: ties keep their order
    masks = [obj != background for obj in objects]
    if not masks:
        return []
    coverage = np.sum(masks, axis=0)  # an object overlaps another iff one of its pixels is covered twice
    overlapping = [bool(np.any(coverage[mask] > 1)) for mask in masks]
    keep = [obj for obj, overlaps in zip(objects, overlapping) if not overlaps]
    contested = [i for i, overlaps in enumerate(overlapping) if overlaps]
    if not contested:
        return keep
    chosen = _largest_disjoint_cover([masks[i] for i in contested])
    return keep + [objects[contested[i]] for i in chosen]


def _largest_disjoint_cover(masks):
    """The positions of the mutually disjoint masks that BARC's search picks (spec §6.3 step 4.4).

    Walks the masks in order, skipping one that overlaps those already chosen, else trying to include it
    (stopping at once if that covers the union of all masks) and then to exclude it, keeping the larger cover
    and, on a tie, the exclusion. Exponential, like BARC's: one frame per mask, so deep searches fail alike.
    """
    best = int(np.sum(np.logical_or.reduce(masks)))

    def search(position, chosen, covered):
        if position == len(masks):
            return chosen, int(np.sum(covered))
        mask = masks[position]
        if np.any(mask & covered):
            return search(position + 1, chosen, covered)
        included = search(position + 1, chosen + [position], covered | mask)
        if included[1] == best:
            return included
        excluded = search(position + 1, chosen, covered)
        return included if included[1] > excluded[1] else excluded

    return search(0, [], np.zeros_like(masks[0]))[0]


# --- spatial relations (spec §7) ------------------------------------------------------------------------------


def _touches(object1, object2, dx, dy, offsets, background):
    xs, ys = np.nonzero(object1 != background)
    n, m = object2.shape
    for ox, oy in offsets:
        px, py = xs - dx + ox, ys - dy + oy
        inside = (px >= 0) & (px < n) & (py >= 0) & (py < m)
        if np.any(object2[px[inside], py[inside]] != background):
            return True
    return False


def collision(_=None, object1=None, object2=None, x1=0, y1=0, x2=0, y2=0, background=Color.BLACK):
    """
    Check if object1 and object2 collide when object1 is at (x1, y1) and object2 is at (x2, y2).
    Call with keywords: collision(object1=a, object2=b, x1=..., ...).
    """
    return _touches(object1, object2, int(x2 - x1), int(y2 - y1), ((0, 0),), background)


def contact(_=None, object1=None, object2=None, x1=0, y1=0, x2=0, y2=0, background=Color.BLACK, connectivity=4):
    """
    Check if object1 and object2 touch (or overlap) when object1 is at (x1, y1) and object2 is at (x2, y2).
    connectivity: 4 or 8 (8 also counts diagonal contact). Call with keywords.
    """
    if connectivity == 4:
        offsets = ((0, 0),) + _MOVES4
    elif connectivity == 8:
        offsets = ((0, 0),) + _MOVES8
    else:
        raise ValueError(_CONNECTIVITY_ERROR)
    return _touches(object1, object2, int(x2 - x1), int(y2 - y1), offsets, background)


def check_between_objects(obj1, obj2, x, y, padding=0, background=Color.BLACK):
    """
    Check if the pixel (x, y) lies strictly between two objects, with `padding` pixels of slack on each side
    perpendicular to the gap.
    """
    objects = sorted([obj1, obj2], key=lambda obj: object_position(obj)[0])
    (x1, y1, w1, h1), (x2, y2, w2, h2) = (bounding_box(obj, background) for obj in objects)
    if (x1 + w1 <= x < x2 or x2 + w2 <= x < x1) and y - padding >= max(y1, y2) and y + padding < min(y1 + h1, y2 + h2):
        return True
    objects = sorted(objects, key=lambda obj: object_position(obj)[1])
    (x1, y1, w1, h1), (x2, y2, w2, h2) = (bounding_box(obj, background) for obj in objects)
    if (y1 + h1 <= y < y2 or y2 + h2 <= y < y1) and x - padding >= max(x1, x2) and x + padding < min(x1 + w1, x2 + w2):
        return True
    return False


# --- region masks (spec §8) -----------------------------------------------------------------------------------


def object_interior(grid, background=Color.BLACK):
    """
    Computes the interior of the object (including edges): its pixels plus enclosed background holes.

    Returns a boolean mask, True inside the object.
    """
    empty = grid == background
    labels, _ = _ndimage.label(empty, _CROSS)
    edge_labels = np.union1d(np.union1d(labels[0, :], labels[-1, :]), np.union1d(labels[:, 0], labels[:, -1]))
    edge_labels = edge_labels[edge_labels > 0]
    if len(edge_labels):
        # BARC flood-fills each edge-touching region recursively: emulate its recursion limit.
        _check_recursion_budget(int(np.max(np.bincount(labels.ravel())[edge_labels])))
    return ~np.isin(labels, edge_labels)


def object_boundary(grid, background=Color.BLACK):
    """
    Computes the boundary of the object: its pixels on the canvas edge or 4-adjacent to the exterior.

    Returns a boolean mask, True on the boundary.
    """
    exterior = ~object_interior(grid, background)
    edge = np.zeros(grid.shape, dtype=bool)
    edge[0, :] = edge[-1, :] = edge[:, 0] = edge[:, -1] = True
    return (grid != background) & (edge | _ndimage.binary_dilation(exterior, iterations=1))


def object_neighbors(grid, background=Color.BLACK, connectivity=4):
    """
    Computes a mask of the background pixels that neighbor the boundary of the object.

    connectivity: 4 or 8. Returns a boolean mask.
    """
    boundary = object_boundary(grid, background)
    if connectivity == 4:
        structure = _RING4
    elif connectivity == 8:
        structure = _RING8
    else:
        raise ValueError(_CONNECTIVITY_ERROR)
    return _ndimage.binary_dilation(boundary, structure) & (grid == background)


# --- symmetry (spec §9) ---------------------------------------------------------------------------------------


def _int_coords(value):
    if isinstance(value, np.ndarray):
        return value.astype(int)
    if isinstance(value, float):
        return int(round(value))
    return value


class Symmetry:
    """Symmetry transformations, which transform a point (x, y) to another point."""

    def apply(self, x, y, iters=1):
        """Apply the symmetry transformation `iters` times to the point (x, y); returns the new point."""


class TranslationalSymmetry(Symmetry):
    """Translation by (translate_x, translate_y)."""

    def __init__(self, translate_x, translate_y):
        self.translate_x = translate_x
        self.translate_y = translate_y

    def apply(self, x, y, iters=1):
        return _int_coords(x + iters * self.translate_x), _int_coords(y + iters * self.translate_y)

    def _iter_range(self, grid_shape):
        top = 0
        if self.translate_x != 0:
            top = _math.ceil(grid_shape[0] / abs(self.translate_x))
        if self.translate_y != 0:
            top = max(top, _math.ceil(grid_shape[1] / abs(self.translate_y)))
        return -top, top + 1

    def __repr__(self):
        return f"TranslationalSymmetry(translate_x={self.translate_x}, translate_y={self.translate_y})"

    __str__ = __repr__


class MirrorSymmetry:
    """Reflection across x = mirror_x and/or y = mirror_y (None leaves that axis alone)."""

    def __init__(self, mirror_x, mirror_y):
        self.mirror_x = mirror_x
        self.mirror_y = mirror_y

    def apply(self, x, y, iters=1):
        if iters % 2 == 0:
            return x, y
        if self.mirror_x is not None:
            x = 2 * self.mirror_x - x
        if self.mirror_y is not None:
            y = 2 * self.mirror_y - y
        return _int_coords(x), _int_coords(y)

    def _iter_range(self, grid_shape):
        return 0, 2

    def __repr__(self):
        return f"MirrorSymmetry(mirror_x={self.mirror_x}, mirror_y={self.mirror_y})"

    __str__ = __repr__


def orbit(grid, x, y, symmetries):
    """
    Compute the orbit of the point (x, y) under the symmetries: every in-canvas point they can map it to.

    Returns a list of points (x, y).
    """
    n, m = grid.shape
    ranges = [range(*symmetry._iter_range(grid.shape)) for symmetry in symmetries]
    points = []
    for counts in _itertools.product(*ranges):
        px, py = x, y
        for symmetry, count in zip(symmetries, counts):
            px, py = symmetry.apply(px, py, count)
            if not (0 <= px < n and 0 <= py < m):
                break
        else:
            points.append((px, py))
    return list(set(points))


class _SymmetryScorer:
    """_score_symmetry for many candidate symmetries of one grid: the per-grid work is done once."""

    def __init__(self, grid, ignore_colors, background=None):
        self.grid = grid
        self.shape = grid.shape
        self.ignored = np.isin(grid, list(ignore_colors))
        occupied = ~self.ignored
        if background is not None:
            occupied &= grid != background
        self.xs, self.ys = np.nonzero(occupied)  # row-major, like np.argwhere

    def score(self, symmetry):
        n, m = self.shape
        mapped_x, mapped_y = symmetry.apply(self.xs, self.ys)
        inside = (mapped_x >= 0) & (mapped_x < n) & (mapped_y >= 0) & (mapped_y < m)
        off_canvas = np.sum(~inside)
        mapped_x, mapped_y = mapped_x[inside], mapped_y[inside]
        original = self.grid[self.xs[inside], self.ys[inside]]
        image = self.grid[mapped_x, mapped_y]
        perfect = np.sum(original == image)
        bad = np.sum((original != image) & ~self.ignored[mapped_x, mapped_y])
        return perfect, off_canvas, bad


def _score_symmetry(grid, symmetry, ignore_colors, background=None):
    """
    internal function not used by LLM

    Returns (perfect, off_canvas, bad): mapped pixels that match, land off the canvas, or clash.
    """
    return _SymmetryScorer(grid, ignore_colors, background).score(symmetry)


def detect_translational_symmetry(grid, ignore_colors=[Color.BLACK], background=None):
    """
    Finds translational symmetries in a grid (for example, a repeating pattern).

    ignore_colors: colors that do not count as part of the pattern (wildcards / occluded).
    Returns a list of TranslationalSymmetry objects, at most one along x and one along y (or one diagonal).
    """
    n, m = grid.shape
    candidates_x = [TranslationalSymmetry(t, 0) for t in range(1, n)] + [TranslationalSymmetry(-t, 0) for t in range(1, n)]
    candidates_y = [TranslationalSymmetry(0, t) for t in range(1, m)] + [TranslationalSymmetry(0, -t) for t in range(1, m)]
    candidates_xy = [TranslationalSymmetry(a, b) for a in range(1, n) for b in range(1, m)]

    scorer = _SymmetryScorer(grid, ignore_colors, background)

    def survivors(candidates):
        scored = []
        for symmetry in candidates:
            perfect, off_canvas, bad = scorer.score(symmetry)
            score = perfect - 0.01 * off_canvas - 100000 * bad
            if score > 0:
                scored.append((symmetry, score))
        return scored

    found = []
    scored_x = survivors(candidates_x)
    if scored_x:
        found.append(max(scored_x, key=lambda item: (item[1], -item[0].translate_x))[0])
    scored_y = survivors(candidates_y)
    if scored_y:
        found.append(max(scored_y, key=lambda item: (item[1], -item[0].translate_y))[0])
    if not found:
        scored_xy = survivors(candidates_xy)
        if scored_xy:
            found.append(max(scored_xy, key=lambda item: (item[1], -item[0].translate_x - item[0].translate_y))[0])
    return found


def detect_mirror_symmetry(grid, ignore_colors=[Color.BLACK], background=None):
    """
    Finds mirror symmetries in a grid.

    Returns a list of MirrorSymmetry objects: all the best-scoring ones, or [] if none fits.
    """
    n, m = grid.shape
    candidates = [MirrorSymmetry(c + z, None) for c in range(n) for z in (0, 0.5)]
    candidates += [MirrorSymmetry(None, c + z) for c in range(m) for z in (0, 0.5)]
    candidates += [MirrorSymmetry(a + z, b + z) for a in range(n) for b in range(m) for z in (0, 0.5)]
    scorer = _SymmetryScorer(grid, ignore_colors, background)
    best_score, best = 0, []
    for symmetry in candidates:
        perfect, off_canvas, bad = scorer.score(symmetry)
        if bad > 0 or perfect == 0:
            continue
        score = perfect - 0.01 * off_canvas - 10000 * bad
        if score > best_score:
            best_score, best = score, [symmetry]
        elif score == best_score:
            best.append(symmetry)
    return best


def detect_rotational_symmetry(grid, ignore_colors=[Color.BLACK], background=None):
    """
    Finds rotational symmetry in a grid (rotation by 90 degrees about a center).

    Returns a RotationalSymmetry object (attributes center_x, center_y) or None.
    """

    class RotationalSymmetry(Symmetry):
        def __init__(self, center_x, center_y):
            self.center_x = center_x
            self.center_y = center_y

        def apply(self, x, y, iters=1):
            dx, dy = x - self.center_x, y - self.center_y
            for _ in range(iters):  # negative iters: the identity, as in BARC
                dx, dy = dy, -dx
            return _int_coords(dx + self.center_x), _int_coords(dy + self.center_y)

        def _iter_range(self, grid_shape):
            return 0, 4

    n, m = grid.shape
    scorer = _SymmetryScorer(grid, ignore_colors, background)
    best_score, best = 0, None
    for a in range(n):
        for b in range(m):
            for z in (0, 0.5):
                symmetry = RotationalSymmetry(a + z, b + z)
                perfect, off_canvas, bad = scorer.score(symmetry)
                score = perfect - 5 * off_canvas - 1000 * bad
                if score > best_score:
                    best_score, best = score, symmetry
    return best


# --- random generation (spec §10, RNG call sequences §12) -----------------------------------------------------


def _never_finishes(message):
    # BARC would loop forever here; in the sandbox that is a timeout, so fail fast instead.
    raise ValueError(message)


def randomly_scatter_points(grid, color, density=0.5, background=Color.BLACK):
    """
    Randomly scatter points of the specified color on the background pixels of the grid, until `density` of
    the grid's area has been painted. Modifies the grid in place and returns it.
    """
    n, m = grid.shape
    target = density * n * m
    empty = int(np.sum(grid == background))
    if target > 0 and (empty == 0 or (color != background and empty < target)):
        _never_finishes(f"randomly_scatter_points: only {empty} background cells for density {density}")
    painted = 0
    while painted < target:
        x = np.random.randint(0, n)
        y = np.random.randint(0, m)
        if grid[x, y] == background:
            grid[x, y] = color
            painted += 1
    return grid


def randomly_spaced_indices(max_len, n_indices, border_size=1, padding=1):
    """
    Generate randomly-spaced indices in [0, max_len), at least `padding` apart (padding empty cells between
    them) and away from the borders. Returns a sorted int64 array.
    """
    if border_size > 0:
        return randomly_spaced_indices(max_len - border_size - 2, n_indices, border_size=0, padding=padding) + border_size
    taken = [0] * max_len
    while sum(taken) < n_indices:
        free = [i for i in range(max_len) if not any(taken[max(0, i - padding):min(i + padding + 1, max_len)])]
        taken[random.choice(free)] = 1
    return np.argwhere(np.array(taken)).flatten()


def random_free_location_for_sprite(grid, sprite, background=Color.BLACK, border_size=0, padding=0,
                                    padding_connectivity=8):
    """
    Find a random free location for the sprite in the grid: one where its non-background pixels land only on
    background, at least `padding` pixels from existing ones and `border_size` from the edges.

    Returns a tuple (x, y) of the upper-left corner. Raises ValueError if there is none.
    """
    n, m = grid.shape
    sprite_mask = sprite != background
    occupied = grid != background
    if padding > 0:
        structure = _structure(padding_connectivity, "padding_connectivity must be 4 or 8.")
        occupied = _ndimage.binary_dilation(occupied, iterations=padding, structure=structure)
    sprite_w, sprite_h = sprite.shape
    # A negative border lets candidates stick out of the canvas; BARC rejects those whose opaque pixels do.
    margin = max(0, -border_size)
    if margin:
        occupied = np.pad(occupied, margin, constant_values=True)
    free = [(x, y)
            for x in range(border_size, n + 1 - border_size - sprite_w)
            for y in range(border_size, m + 1 - border_size - sprite_h)
            if not np.any(occupied[x + margin:x + margin + sprite_w, y + margin:y + margin + sprite_h] & sprite_mask)]
    if not free:
        raise ValueError("No free location for sprite found.")
    return random.choice(free)


def random_free_location_for_object(*args, **kwargs):
    """
    internal function not used by LLM

    Alias of random_free_location_for_sprite, kept for backward compatibility.
    """
    return random_free_location_for_sprite(*args, **kwargs)


def _as_choices(value):
    if isinstance(value, range):
        return list(value)
    return value if isinstance(value, list) else [value]


_MAX_SPRITE_TRIES = 10_000   # about a second for small sprites


def random_sprite(n, m, density=0.5, symmetry=None, color_palette=None, connectivity=4, background=Color.BLACK):
    """
    Generate a random contiguous sprite touching all four sides of its box.

    n, m: width and height, or lists/ranges to draw them from.
    symmetry: "horizontal", "vertical", "diagonal", "radial", "mirror", "not_symmetric", or None for random.
    color_palette: colors to use (None: random). Returns the sprite.
    """
    n_choices, m_choices = _as_choices(n), _as_choices(m)
    for _ in range(_MAX_SPRITE_TRIES):
        can_be_square = any(a == b for a in n_choices for b in m_choices)
        pool = ["horizontal", "vertical", "not_symmetric", "mirror"]
        if can_be_square:
            pool += ["diagonal", "radial"]
        chosen_symmetry = symmetry or random.choice(pool)
        if chosen_symmetry in ("diagonal", "radial"):
            width, height = random.choice([(a, b) for a in n_choices for b in m_choices if a == b])
        else:
            width = random.choice(n_choices)
            height = random.choice(m_choices)
        fill = _sprite_density(width, height, density)
        sprite = generate_sprite(width, height, symmetry_type=chosen_symmetry, color_palate=color_palette,
                                 fill_percentage=fill, connectivity=connectivity, background=background)
        assert is_contiguous(sprite, connectivity=connectivity, background=background), "Generated sprite is not contiguous."
        if (np.any(sprite[0, :] != background) and np.any(sprite[-1, :] != background)
                and np.any(sprite[:, 0] != background) and np.any(sprite[:, -1] != background)):
            return sprite
    # BARC retries forever; some requests can never succeed (a 3x3 "mirror" sprite with
    # connectivity 4). The RNG sequence of every call that does succeed is unchanged.
    raise ValueError(f"random_sprite: no {n}x{m} sprite (symmetry {symmetry!r}, connectivity {connectivity}) "
                     f"touching all four edges after {_MAX_SPRITE_TRIES} tries")


def _sprite_density(width, height, density):
    if width == 1 or height == 1:
        return 1
    if width == 2 or height == 2:
        return max(density, 0.6)
    if width == 3 or height == 3:
        return max(density, 0.5)
    if density == 1:
        return density
    return max(0.4, min(0.95, random.gauss(density, 0.1)))


def generate_sprite(n, m, symmetry_type, fill_percentage=0.5, max_colors=9, color_palate=None, connectivity=4,
                    background=Color.BLACK):
    """
    internal function not used by LLM

    Random-walk sprite generator behind random_sprite. symmetry_type: "not_symmetric", "horizontal",
    "vertical", "diagonal", "radial" or "mirror".
    """
    if color_palate is None:
        n_colors = 1
        while n_colors < max_colors and random.random() < 0.3:
            n_colors += 1
        palette = random.sample([c for c in Color.ALL_COLORS if c != background], n_colors)
    else:
        palette, n_colors = color_palate, len(color_palate)

    grid = np.full((n, m), background)
    if symmetry_type == "not_symmetric":
        x, y = random.randint(0, n - 1), random.randint(0, m - 1)
    elif symmetry_type == "horizontal":
        x, y = random.randint(0, n - 1), m // 2
    elif symmetry_type == "vertical":
        x, y = n // 2, random.randint(0, m - 1)
    elif symmetry_type == "diagonal":
        on_main_diagonal = random.choice([True, False])
        x = random.randint(0, n - 1)
        y = x if on_main_diagonal else n - 1 - x
    elif symmetry_type == "mirror":
        full_n, full_m = n, m
        n, m = int(n / 2 + 0.5), int(m / 2 + 0.5)
        x, y = random.randint(0, n - 1), random.randint(0, m - 1)
        grid = np.full((n, m), background)
    elif symmetry_type == "radial":
        assert n == m, "Radial symmetry requires a square grid."
        side = n
        n, m = int(n / 2 + 0.5), int(m / 2 + 0.5)
        x, y = n - 1, m - 1
        grid = np.full((n, m), background)
    else:
        raise ValueError(f"Invalid symmetry type {symmetry_type}.")

    if connectivity == 4:
        moves = list(_MOVES4)
    elif connectivity == 8:
        moves = list(_MOVES8)
    else:
        raise ValueError(_CONNECTIVITY_ERROR)

    _random_walk(grid, x, y, palette, n_colors, moves, fill_percentage * n * m, background)

    if symmetry_type in ("horizontal", "vertical"):
        grid = apply_symmetry(grid, symmetry_type, background)
    elif symmetry_type == "radial":
        quadrant, grid = grid, np.full((side, side), background)
        blit(grid, quadrant, background=background)
        for _ in range(3):
            blit(grid, np.rot90(grid), background=background)  # a live view of the destination, on purpose
    elif symmetry_type == "mirror":
        quadrant, grid = grid, np.full((full_n, full_m), background)
        dx = 0 if full_n % 2 == 0 else -1
        dy = 0 if full_m % 2 == 0 else -1
        grid[:n, :m] = quadrant
        grid[n + dx:, :m] = quadrant[::-1, :]
        grid[:n, m + dy:] = quadrant[:, ::-1]
        grid[n + dx:, m + dy:] = quadrant[::-1, ::-1]
        if not is_contiguous(grid, background, connectivity):
            return generate_sprite(full_n, full_m, "mirror", fill_percentage, color_palate=palette,
                                   connectivity=connectivity, background=background)
    elif symmetry_type == "diagonal":
        if on_main_diagonal:
            grid = apply_diagonal_symmetry(grid[::-1], background)[::-1]
        else:
            grid = apply_diagonal_symmetry(grid, background)
    return grid


def _random_walk(grid, x, y, palette, n_colors, moves, target, background):
    n, m = grid.shape
    if target > n * m or (target > 0 and len(palette) > 0 and all(c == background for c in palette)):
        _never_finishes(f"generate_sprite: cannot fill {target} of {n * m} cells with palette {palette}")
    filled = int(np.sum(grid != background))
    color_index = 0
    while filled < target:
        was_filled = grid[x, y] != background
        grid[x, y] = palette[color_index]
        filled += int(grid[x, y] != background) - int(was_filled)
        if random.random() < 0.33:
            color_index = random.choice(range(n_colors))
        dx, dy = random.choice(moves)
        if 0 <= x + dx < n and 0 <= y + dy < m:
            x, y = x + dx, y + dy


def apply_symmetry(sprite, symmetry_type, background=Color.BLACK):
    """
    internal function not used by LLM

    Make the sprite symmetric in place ("horizontal": across axis 0, "vertical": across axis 1); where the two
    mirrored pixels differ, the non-background one on the low side wins. Returns the sprite.
    """
    if symmetry_type == "horizontal":
        half = sprite.shape[0] // 2
        low, high = sprite[:half, :], sprite[::-1, :][:half, :]
    elif symmetry_type == "vertical":
        half = sprite.shape[1] // 2
        low, high = sprite[:, :half], sprite[:, ::-1][:, :half]
    else:
        raise ValueError(f"Invalid symmetry type {symmetry_type}.")
    merged = np.where(low != background, low, high)
    low[...] = merged
    high[...] = merged
    return sprite


def apply_diagonal_symmetry(sprite, background=Color.BLACK):
    """
    internal function not used by LLM

    Make the sprite symmetric across its main diagonal in place; the upper triangle wins. Returns the sprite.
    """
    n, m = sprite.shape
    if n != m:
        raise ValueError("Diagonal symmetry requires a square sprite.")
    xs, ys = np.triu_indices(n, k=1)
    upper, lower = sprite[xs, ys], sprite[ys, xs]
    merged = np.where(upper != background, upper, lower)
    sprite[xs, ys] = merged
    sprite[ys, xs] = merged
    return sprite


# --- debugging (spec §11) -------------------------------------------------------------------------------------

_ANSI_CODES = {0: 0, 1: 4, 2: 1, 3: 2, 4: 3, 5: 7, 6: 13, 7: 202, 8: 6, 9: 196}
_ARC_PALETTE = ["#000000", "#0074D9", "#FF4136", "#2ECC40", "#FFDC00",
                "#AAAAAA", "#F012BE", "#FF851B", "#7FDBFF", "#870C25"]


def show_colored_grid(grid, text=True):
    """
    internal function not used by LLM

    Print the grid with ANSI colours, one line per y (or plot it with matplotlib when text is False).
    """
    if not text:
        import matplotlib.pyplot as plt
        from matplotlib.colors import ListedColormap
        plt.imshow(grid, cmap=ListedColormap(_ARC_PALETTE), vmin=0, vmax=9)
        plt.show()
        return
    n, m = grid.shape
    for y in range(m):
        print("".join(f"\033[38;5;{_ANSI_CODES.get(int(grid[x, y]), 0)}m{grid[x, y]}\033[0m" for x in range(n)))


def visualize(input_generator, transform, n_examples=5, n_attempts=100):
    """
    internal function not used by LLM

    Print up to n_examples (input, transform(input)) pairs from n_attempts tries, then the failure rate.
    """
    import traceback

    examples, failures = [], []
    for _ in range(n_attempts):
        if len(examples) >= n_examples:
            break
        try:
            grid = input_generator()
            examples.append((grid, transform(grid.copy())))
        except Exception:
            failures.append(traceback.format_exc())
    for grid, output in examples:
        print("Input:")
        show_colored_grid(grid)
        print("Output:")
        show_colored_grid(output)
        print("---------------------")
    attempts = len(examples) + len(failures)
    print(f"Failure rate: {len(failures)}/{attempts}")
    if failures:
        print(failures[0])


# --- dataset-era names (spec §14.1) ---------------------------------------------------------------------------


def random_scatter_points(grid, color, density=0.5, background=Color.BLACK):
    """
    Old name of randomly_scatter_points (same behaviour and random numbers).
    """
    return randomly_scatter_points(grid, color, density, background)


def generate_position_has_interval(max_len, position_num, if_padding=False):
    """
    Old helper replaced by randomly_spaced_indices: `position_num` positions with gaps, spread over max_len
    slots by inserting zeros at random (NumPy RNG). Returns an int64 array, or None if they do not fit.
    """
    if if_padding:
        slots = [0, 1] * position_num + [0]
    else:
        slots = [1, 0] * (position_num - 1) + [1]
    if len(slots) > max_len:
        return None
    for _ in range(max_len - len(slots)):
        slots.insert(np.random.randint(0, len(slots)), 0)
    return np.argwhere(np.array(slots) == 1).flatten()


# --- per-program state reset ----------------------------------------------------------------------------------


class _ClassSnapshot:
    """The pristine attributes of one class; list attributes are compared and restored by value."""

    def __init__(self, cls):
        self.cls = cls
        self.attributes = dict(vars(cls))
        self.values = tuple(self.attributes.values())
        self.lists = {name: list(value) for name, value in self.attributes.items() if isinstance(value, list)}
        self.list_names, self.list_contents = tuple(self.lists), list(self.lists.values())

    def is_pristine(self):
        current = vars(self.cls)
        # Same length and the same objects in the same order means no attribute was added, deleted or rebound.
        if len(current) != len(self.values) or not all(map(_operator.is_, current.values(), self.values)):
            return False
        return not self.list_names or list(map(current.__getitem__, self.list_names)) == self.list_contents

    def restore(self):
        current = vars(self.cls)
        for name in [name for name in current if name not in self.attributes]:
            delattr(self.cls, name)
        for name, pristine in self.lists.items():
            self.attributes[name] = list(pristine)
        for name, value in self.attributes.items():
            if current.get(name, _MISSING) is not value:
                setattr(self.cls, name, value)
        # A deleted and re-added attribute comes back at the end: remember the order as it now is.
        self.attributes = dict(current)
        self.values = tuple(self.attributes.values())


class _ModuleSnapshot:
    """The pristine globals of this module."""

    def __init__(self, namespace):
        self.namespace = namespace
        self.items, self.values = {}, ()

    def take(self):
        self.items = dict(self.namespace)
        self.values = tuple(self.items.values())

    def is_pristine(self):
        return len(self.namespace) == len(self.values) and all(map(_operator.is_, self.namespace.values(), self.values))

    def restore(self):
        self.namespace.clear()  # clear + update also restores the key order that is_pristine relies on
        self.namespace.update(self.items)


_MISSING = object()
_CLASS_SNAPSHOTS = (_ClassSnapshot(Color), _ClassSnapshot(Symmetry), _ClassSnapshot(TranslationalSymmetry),
                    _ClassSnapshot(MirrorSymmetry))
_MODULE_SNAPSHOT = _ModuleSnapshot(globals())


def reset_state(_module=_MODULE_SNAPSHOT, _classes=_CLASS_SNAPSHOTS):
    """Undo whatever the previous program did to this module: rebound or added names, Color attributes and lists.

    Costs a few microseconds when nothing was touched. Not star-exported. (The snapshots are bound as defaults
    so that this works even after a program deleted module globals.)
    """
    if not _module.is_pristine():
        _module.restore()
    for snapshot in _classes:
        if not snapshot.is_pristine():
            snapshot.restore()


_MODULE_SNAPSHOT.take()
