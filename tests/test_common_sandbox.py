"""BARC-style programs (``from common import *``) give the same outputs in the sandbox as in-process.

In-process, each entry-function call is preceded by ``random.seed(seed); np.random.seed(seed)``, as the
workers do before every input grid.
"""
import random
import sys

import numpy as np
import pytest

from arc_sandbox import Limits, Sandbox, Status, run_program
from arc_sandbox.dsl import common

SEED = 0

OBJECTS_PROGRAM = '''
from common import *
import numpy as np

# concepts: objects, recolor by size, gravity
# description: recolor the biggest object purple, the others brown, then crop each one and stack them
def main(input_grid):
    objects = detect_objects(input_grid, connectivity=8, monochromatic=False)
    output_grid = np.full_like(input_grid, Color.BLACK)
    for rank, obj in enumerate(objects):
        sprite = crop(obj)
        color = Color.PURPLE if rank == 0 else Color.BROWN
        sprite = np.where(sprite != Color.BLACK, color, Color.BLACK)
        x, y = object_position(obj)
        blit_sprite(output_grid, sprite, x, y)
    for component in find_connected_components(input_grid, monochromatic=True):
        if len(object_colors(component)) == 1 and np.sum(component != Color.BLACK) == 1:
            x, y = object_position(component)
            draw_line(output_grid, x, y, direction=(0, 1), color=Color.GRAY, stop_at_color=Color.NOT_BLACK)
    return output_grid
'''

RANDOM_PROGRAM = '''
from common import *

def transform(input_grid):
    output_grid = input_grid.copy()
    sprite = random_sprite([2, 3], [2, 3], color_palette=[random.choice(Color.NOT_BLACK)])
    x, y = random_free_location_for_sprite(output_grid, sprite, padding=1)
    blit_sprite(output_grid, sprite, x, y)
    randomly_scatter_points(output_grid, Color.GREY, density=0.05)
    output_grid[np.random.randint(0, output_grid.shape[0]), 0] = Color.YELLOW
    return output_grid
'''

COLOR_MUTATING_PROGRAM = '''
from common import *

def transform(input_grid):
    Color.RED = 7
    Color.NOT_BLACK.remove(1)
    del Color.BLUE
    return input_grid
'''

MODULE_MUTATING_PROGRAM = '''
import common

def transform(input_grid):
    common.crop = None
    common.Color.RED = 7
    return input_grid
'''

COLOR_PROBE_PROGRAM = '''
from common import *

def transform(input_grid):
    out = crop(input_grid).copy()
    out[0, 0] = Color.RED
    out[0, -1] = Color.BLUE
    out[-1, 0] = len(Color.NOT_BLACK)
    return out
'''


def sample_inputs(seed, count=3):
    rng = np.random.default_rng(seed)
    grids = []
    for _ in range(count):
        grid = np.zeros(tuple(rng.integers(6, 12, size=2)), dtype=np.int64)
        for _ in range(rng.integers(2, 5)):
            x, y = rng.integers(0, grid.shape[0] - 2), rng.integers(0, grid.shape[1] - 2)
            grid[x:x + rng.integers(1, 3), y:y + rng.integers(1, 3)] = rng.integers(1, 10)
        grid[rng.integers(0, grid.shape[0]), rng.integers(0, grid.shape[1])] = rng.integers(1, 10)
        grids.append(grid)
    return grids


def run_in_process(text, inputs, seed=SEED):
    """Execute the program here, against the same library, seeding before every call like the workers."""
    saved = sys.modules.get("common")
    sys.modules["common"] = common
    try:
        namespace = {"__name__": "program"}
        exec(compile(text, "<program>", "exec"), namespace)
        fn = namespace.get("transform") or namespace["main"]
        outputs = []
        for grid in inputs:
            random.seed(seed)
            np.random.seed(seed)
            outputs.append(np.asarray(fn(grid.copy())))
        return outputs
    finally:
        common.reset_state()
        if saved is None:
            sys.modules.pop("common")
        else:
            sys.modules["common"] = saved


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(workers=1, limits=Limits(timeout_s=5.0, seed=SEED)) as sb:
        yield sb


def assert_same_outputs(result, expected):
    assert result.status is Status.OK, (result.error_type, result.error_message)
    assert len(result.outputs) == len(expected)
    for got, want in zip(result.outputs, expected):
        np.testing.assert_array_equal(got, want)


def test_objects_program_matches_in_process(sandbox):
    inputs = sample_inputs(1)
    expected = run_in_process(OBJECTS_PROGRAM, inputs)
    assert any(np.any(out == 8) for out in expected)  # the program really did something
    assert_same_outputs(sandbox.run([(OBJECTS_PROGRAM, inputs)])[0], expected)


def test_random_program_matches_in_process_through_run_program():
    inputs = sample_inputs(2)
    expected = run_in_process(RANDOM_PROGRAM, inputs)
    other_seed = run_in_process(RANDOM_PROGRAM, inputs, seed=SEED + 1)
    assert any(not np.array_equal(a, b) for a, b in zip(expected, other_seed))  # the seed matters
    assert_same_outputs(run_program(RANDOM_PROGRAM, inputs, limits=Limits(timeout_s=5.0, seed=SEED)), expected)


def test_color_mutations_do_not_reach_the_next_program(sandbox):
    inputs = sample_inputs(3, count=1)
    mutated, probe = sandbox.run([(COLOR_MUTATING_PROGRAM, inputs), (COLOR_PROBE_PROGRAM, inputs)])
    assert mutated.status is Status.OK
    assert not mutated.worker_replaced  # same worker: reset_state did the work
    assert_same_outputs(probe, run_in_process(COLOR_PROBE_PROGRAM, inputs))
    out = probe.outputs[0]
    assert (out[0, 0], out[0, -1], out[-1, 0]) == (2, 1, 9)


def test_rebound_library_names_do_not_reach_the_next_program(sandbox):
    inputs = sample_inputs(4, count=1)
    mutated, probe = sandbox.run([(MODULE_MUTATING_PROGRAM, inputs), (COLOR_PROBE_PROGRAM, inputs)])
    assert mutated.status is Status.OK
    assert_same_outputs(probe, run_in_process(COLOR_PROBE_PROGRAM, inputs))
