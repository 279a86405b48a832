"""BARC jsonl streaming, the task column, and the TRL dataset."""
from __future__ import annotations

import gzip
import json
from collections import Counter

import numpy as np
import pytest

from arc_rl.data import (ARC_TRAIN_COUNTS, MAX_TASK_PIXELS, ReadReport, SkipReason, build_dataset,
                         iter_barc_jsonl, load_tasks, task_from_json, task_to_json)
from arc_rl.prompts import render_prompt
from test_rl_prompts import make_task, tiny_tokenizer

SOURCE = "from common import *\n\ndef main(input_grid):\n    return input_grid + 1\n"


def barc_row(n_examples: int, side: int = 3, seed: int = 0, **extra) -> dict:
    rng = np.random.default_rng(seed)
    examples = []
    for _ in range(n_examples):
        grid = rng.integers(0, 9, (side, side))
        examples.append([grid.tolist(), (grid + 1).tolist()])
    return {"source": SOURCE, "examples": examples, "seeds": ["abc.py"], **extra}


def same(a, b) -> bool:
    return a.id == b.id and a.to_dict() == b.to_dict()


def write_jsonl(path, rows) -> None:
    with open(path, "w") as f:
        for row in rows:
            f.write((row if isinstance(row, str) else json.dumps(row)) + "\n")


def test_rows_become_tasks_with_one_test_pair_and_arc_sized_train(tmp_path):
    path = tmp_path / "barc.jsonl"
    write_jsonl(path, [barc_row(30, seed=i) for i in range(50)])
    tasks = list(iter_barc_jsonl(path, seed=3))
    assert [t.id for t in tasks] == [f"barc_{i:06d}" for i in range(50)]
    rows = [barc_row(30, seed=i) for i in range(50)]
    for task, row in zip(tasks, rows):
        assert len(task.test) == 1 and task.has_test_outputs
        assert len(task.train) in ARC_TRAIN_COUNTS
        assert task.meta["source"] == SOURCE and task.meta["seeds"] == ["abc.py"]
        pairs = {json.dumps([p.input.tolist(), p.output.tolist()]) for p in task.train + task.test}
        assert len(pairs) == len(task.train) + 1                       # drawn without replacement
        assert pairs <= {json.dumps(e) for e in row["examples"]}       # unchanged grids from the row


def test_train_counts_follow_arc_frequencies(tmp_path):
    path = tmp_path / "barc.jsonl"
    write_jsonl(path, [barc_row(12, side=2, seed=i) for i in range(2000)])
    counts = Counter(len(t.train) for t in iter_barc_jsonl(path, seed=0))
    total = sum(ARC_TRAIN_COUNTS.values())
    for k, weight in ARC_TRAIN_COUNTS.items():
        expected = 2000 * weight / total
        assert abs(counts[k] - expected) <= 4 * np.sqrt(expected) + 2, (k, counts[k], expected)


def test_train_count_is_limited_by_the_examples_a_row_has(tmp_path):
    path = tmp_path / "barc.jsonl"
    write_jsonl(path, [barc_row(3, seed=i) for i in range(30)] + [barc_row(4, seed=i) for i in range(30)])
    tasks = list(iter_barc_jsonl(path))
    assert {len(t.train) for t in tasks[:30]} == {2}
    assert {len(t.train) for t in tasks[30:]} <= {2, 3} and len({len(t.train) for t in tasks[30:]}) == 2


def test_pixel_cap_is_respected_and_unfittable_rows_are_counted(tmp_path):
    path = tmp_path / "barc.jsonl"
    # 30x30 pairs are 1800 pixels: three of them (2 train + test) never fit in 4500
    write_jsonl(path, [barc_row(5, side=30), barc_row(20, side=14, seed=1)])
    report = ReadReport()
    tasks = list(iter_barc_jsonl(path, report=report))
    assert report.skipped_rows == Counter({SkipReason.NO_SAMPLE_FITS: 1})
    assert [t.id for t in tasks] == ["barc_000001"]
    pixels = sum(g.size for p in tasks[0].train + tasks[0].test for g in (p.input, p.output))
    assert pixels <= MAX_TASK_PIXELS


def test_bad_rows_are_skipped_and_counted_with_reasons(tmp_path):
    path = tmp_path / "barc.jsonl"
    big = barc_row(5)
    big["examples"][0] = [np.zeros((31, 2), int).tolist(), [[1]]]
    bad_colour = barc_row(3)
    bad_colour["examples"][1][1] = [[1, 12]]
    write_jsonl(path, [
        barc_row(5),                                   # 0 fine
        '{"source": "x", "examples": [[[1]], [[2]]',    # 1 cut-off JSON
        json.dumps([1, 2]),                            # 2 not an object
        barc_row(2),                                   # 3 too few examples
        big,                                           # 4 one pair dropped, still 4 left
        {"examples": [[[[1]], [[2]]], "junk", [[[1, 2], [3]], [[1]]], [[[1]], [[2]]]]},   # 5
        bad_colour,                                    # 6 a colour 12 among 3 pairs
        "",                                            # blank lines are not rows
        barc_row(4, seed=9),                           # 8 fine
    ])
    report = ReadReport()
    tasks = list(iter_barc_jsonl(path, report=report))
    assert [t.id for t in tasks] == ["barc_000000", "barc_000004", "barc_000008"]
    assert report.rows == 8 and report.tasks == 3
    assert report.skipped_rows == Counter({SkipReason.CORRUPT_JSON: 1, SkipReason.BAD_ROW: 1,
                                           SkipReason.TOO_FEW_EXAMPLES: 3})
    assert report.dropped_pairs == Counter({SkipReason.GRID_TOO_LARGE: 1, SkipReason.BAD_PAIR: 1,
                                            SkipReason.INVALID_GRID: 2})
    assert any(e.startswith("line 1: corrupt_json") for e in report.examples)
    assert any(e.startswith("line 4: grid_too_large: examples[0]: grid of 31x2") for e in report.examples)
    assert "rows skipped: bad_row=1, corrupt_json=1, too_few_examples=3" in report.summary()


def test_draws_depend_on_seed_and_line_only(tmp_path):
    path = tmp_path / "barc.jsonl"
    write_jsonl(path, [barc_row(20, side=2, seed=i) for i in range(40)])
    first = {t.id: t for t in iter_barc_jsonl(path, seed=5)}
    again = {t.id: t for t in iter_barc_jsonl(path, seed=5, limit=10)}
    assert len(again) == 10 and all(same(again[k], first[k]) for k in again)
    other = {t.id: t for t in iter_barc_jsonl(path, seed=6)}
    assert sum(not same(other[k], first[k]) for k in first) > 30


def test_streaming_stops_reading_at_the_limit(tmp_path):
    path = tmp_path / "barc.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.write(json.dumps(barc_row(4)) + "\n" + json.dumps(barc_row(5)) + "\n")
        f.write("not json\n" * 1000)
    report = ReadReport()
    tasks = list(iter_barc_jsonl(path, limit=2, report=report))
    assert len(tasks) == 2 and report.rows == 2 and not report.skipped_rows
    assert len(load_tasks(path, limit=1)) == 1


def test_task_column_round_trips():
    task = make_task(task_id="007bbfb7")
    text = task_to_json(task)
    back, augmentation = task_from_json(text)
    assert same(back, task) and back.id == "007bbfb7" and augmentation is None


@pytest.mark.parametrize("text, problem", [("{", "not JSON"), ("[1]", "JSON object"),
                                           ('{"id": "q", "train": [], "test": []}', "task q: 'train' is empty")])
def test_bad_task_column_is_named(text, problem):
    with pytest.raises(ValueError, match=problem):
        task_from_json(text)


@pytest.mark.parametrize("streaming", [False, True])
def test_build_dataset_has_prompt_and_task_columns(streaming):
    tokenizer = tiny_tokenizer()
    tasks = {t.id: t for t in (make_task(task_id=f"t{i}") for i in range(3))}
    ds = build_dataset(tasks, tokenizer, streaming=streaming)
    rows = list(ds)
    assert [task_from_json(r["task"])[0].id for r in rows] == ["t0", "t1", "t2"]
    for row in rows:
        task, _ = task_from_json(row["task"])
        assert same(task, tasks[task.id])
        assert row["prompt"] == render_prompt(task, tokenizer)


def test_build_dataset_streams_barc_file_again_each_pass(tmp_path):
    path = tmp_path / "barc.jsonl"
    write_jsonl(path, [barc_row(6, seed=i) for i in range(4)])
    ds = build_dataset(lambda: iter_barc_jsonl(path, seed=1), tiny_tokenizer(), prompt_version="arc25",
                       streaming=True, epochs=2)
    ids = [json.loads(r["task"])["id"] for r in ds]
    assert ids == [f"barc_{i:06d}" for i in range(4)] * 2
    assert ids == [json.loads(r["task"])["id"] for r in ds]   # iterating again reads the file again


def test_augmented_rows_carry_the_shown_task_and_its_augmentation():
    task = make_task(task_id="aug")
    rows = list(build_dataset({"aug": task}, tiny_tokenizer(), augment=True, seed=0, epochs=6))
    seen = set()
    for row in rows:
        shown, augmentation = task_from_json(row["task"])
        assert augmentation is not None and shown.id == "aug"
        assert same(shown, augmentation.apply_task(task))            # the column holds what the prompt shows
        assert row["prompt"] == render_prompt(shown, tiny_tokenizer())
        for p, q in zip(shown.train + shown.test, task.train + task.test):
            assert np.array_equal(augmentation.revert_grid(p.output), q.output)
        seen.add(json.dumps(augmentation.to_json(), sort_keys=True))
    assert len(seen) > 1   # fresh augmentation per pass


@pytest.mark.parametrize("streaming", [False, True])
def test_tasks_without_test_inputs_are_skipped_and_counted(streaming):
    from arc_sandbox.scoring.tasks import Task
    tasks = [make_task(task_id="a"), Task(id="empty", train=make_task().train, test=()), make_task(task_id="c")]
    skipped = Counter()
    ds = build_dataset(lambda: iter(tasks), tiny_tokenizer(), streaming=streaming, epochs=2, augment=True,
                       skipped=skipped)
    rows = list(ds)
    assert [json.loads(r["task"])["id"] for r in rows] == ["a", "c", "a", "c"]
    assert skipped == {SkipReason.NO_TEST_INPUT: 2}
    # the skipped task keeps its place: the task after it gets the augmentation it gets with the task there
    kept = list(build_dataset(lambda: iter([tasks[0], make_task(task_id="b"), tasks[2]]), tiny_tokenizer(),
                              streaming=streaming, epochs=2, augment=True))
    assert [r["task"] for r in kept if json.loads(r["task"])["id"] == "c"] == \
           [r["task"] for r in rows if json.loads(r["task"])["id"] == "c"]
