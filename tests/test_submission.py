import argparse
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arc_sandbox.scoring.augment import Augmentation
from arc_sandbox.scoring.records import result_to_record, write_records
from arc_sandbox.executor.results import ProgramResult, Status
from arc_sandbox.testing.strategies import tasks
from arc_sandbox.cli.submit import add_cli
from arc_sandbox.scoring.submission import (build_submission, score_submission, select_attempts, validate_submission,
                                            write_submission)
from arc_sandbox.scoring.tasks import Task

TASK = Task.from_dict({
    "train": [{"input": [[1]], "output": [[1]]}, {"input": [[2]], "output": [[2]]}],
    "test": [{"input": [[3]], "output": [[3]]}, {"input": [[4]], "output": [[4]]}],
}, id="t1")


def result(train, test, code="x"):
    outputs = [None if g is None else np.array(g) for g in [*train, *test]]
    return ProgramResult(status=Status.OK, outputs=outputs, grid_statuses=[Status.OK] * len(outputs), code=code)


def test_train_correctness_beats_votes():
    good = result([[[1]], [[2]]], [[[5]], [[4]]])
    popular = [result([[[1]], [[0]]], [[[6]], [[6]]]) for _ in range(5)]
    attempts = select_attempts([*popular, good], TASK)
    assert [g.tolist() for g in attempts[0]] == [[[5]], [[6]]]
    assert [g.tolist() for g in attempts[1]] == [[[4]], [[6]]]


def test_votes_then_shorter_code():
    a = result([[[1]], [[2]]], [[[7]], [[7]]], code="long" * 10)
    b = result([[[1]], [[2]]], [[[8]], [[8]]], code="s")
    c = result([[[1]], [[2]]], [[[9]], [[9]]], code="s")
    attempts = select_attempts([a, a, b, c, c, c], TASK)
    assert [g.tolist() for g in attempts[0]] == [[[9]], [[7]]]            # votes: 3 then 2
    attempts = select_attempts([a, b], TASK)
    assert [g.tolist() for g in attempts[0]] == [[[8]], [[7]]]            # tie on votes: shorter code


def test_missing_outputs_and_failures_are_skipped():
    failed = ProgramResult(status=Status.TIMEOUT, outputs=[None] * 4, grid_statuses=[Status.TIMEOUT] * 4)
    partial = result([[[1]], [[2]]], [None, [[4]]])
    attempts = select_attempts([failed, partial], TASK)
    assert attempts[0] == [] and [g.tolist() for g in attempts[1]] == [[[4]]]


def test_build_fills_every_task_and_test_input():
    other = Task.from_dict({"train": [{"input": [[1]], "output": [[1]]}], "test": [{"input": [[1]]}]}, id="t2")
    sub = build_submission({"t1": [result([[[1]], [[2]]], [[[3]], None])]}, {"t1": TASK, "t2": other})
    assert sub == {"t1": [{"attempt_1": [[3]], "attempt_2": [[0]]}, {"attempt_1": [[0]], "attempt_2": [[0]]}],
                   "t2": [{"attempt_1": [[0]], "attempt_2": [[0]]}]}
    assert validate_submission(sub, {"t1": TASK, "t2": other}) == []
    assert score_submission(sub, {"t1": TASK}).score == 0.5


@settings(max_examples=30, deadline=None)
@given(st.lists(tasks(max_side=5), min_size=1, max_size=4, unique_by=lambda t: t.id), st.integers(0, 3))
def test_submission_from_correct_programs_scores_one(task_list, n_wrong):
    all_tasks = {t.id: t for t in task_list}
    results = {}
    for t in task_list:
        correct = result([p.output for p in t.train], [p.output for p in t.test], code="c" * 50)
        # Wrong programs outvote the correct one (3 votes each, shorter code) but fail on train.
        wrong = [result([(p.output + 1) % 10 for p in t.train], [(p.output + k) % 10 for p in t.test], code="c")
                 for k in range(1, n_wrong + 1) for _ in range(3)]
        results[t.id] = [*wrong, correct]
    sub = build_submission(results, all_tasks)
    assert validate_submission(sub, all_tasks) == []
    score = score_submission(json.loads(json.dumps(sub)), all_tasks)
    assert score.score == 1.0 and score.errors == []
    assert all(entry["attempt_1"] == p.output.tolist() for t in task_list for entry, p in zip(sub[t.id], t.test))


def test_validate_reports_every_problem_with_task_and_field(tmp_path):
    challenges = {tid: {"train": [], "test": [{"input": [[0]]}, {"input": [[0]]}]}
                  for tid in ("a0", "a1", "a2", "a3", "a4")}
    good = {"attempt_1": [[1]], "attempt_2": [[0]]}
    sub = {
        "a0": [good, good],
        "a1": [good],                                            # one entry short
        "a2": [good, {"attempt_1": [[1]]}],                      # attempt_2 missing
        "a3": [good, {"attempt_1": [[1, 2], [3]], "attempt_2": [[True]]}],
        "zz": [],                                                # unknown; a4 missing
    }
    path = tmp_path / "sub.json"
    write_submission(sub, path)
    errors = validate_submission(path, challenges)
    assert "task a4: missing from the submission" in errors
    assert "task zz: not in the challenges" in errors
    assert "task a1: 1 entries for 2 test input(s)" in errors
    assert any(e.startswith("task a2: [1]: needs exactly attempt_1 and attempt_2") for e in errors)
    assert "task a3: [1].attempt_1: ragged rows" in errors
    assert "task a3: [1].attempt_2: values must be ints 0..9" in errors
    assert not any(e.startswith("task a0") for e in errors)


def test_validate_against_a_challenges_file(tmp_path):
    path = tmp_path / "x_challenges.json"
    path.write_text(json.dumps({"a0": {"train": [{"input": [[1]], "output": [[1]]}], "test": [{"input": [[0]]}]}}))
    sub = {"a0": [{"attempt_1": [[0]], "attempt_2": [[10]]}]}
    assert validate_submission(sub, path) == ["task a0: [0].attempt_2: values must be ints 0..9"]
    (tmp_path / "broken.json").write_text("{")
    assert "not readable JSON" in validate_submission(tmp_path / "broken.json", {"a0": TASK})[0]


def test_score_partial_and_missing():
    other = Task.from_dict({"train": [{"input": [[1]], "output": [[1]]}],
                            "test": [{"input": [[1]], "output": [[5]]}]}, id="t2")
    sub = {"t1": [{"attempt_1": [[0]], "attempt_2": [[3]]}, {"attempt_1": [[4, 4]], "attempt_2": "junk"}],
           "extra": []}
    score = score_submission(sub, {"t1": TASK, "t2": other})
    assert score.per_task == {"t1": 0.5, "t2": 0.0}
    assert score.score == 0.25
    assert "task t2: missing from the submission" in score.errors
    assert any("task extra" in e for e in score.errors)
    assert score_submission(sub, {"t1": [[[3]], [[4]]]}).per_task == {"t1": 0.5}


def test_submit_command(tmp_path, capsys):
    task_dir = tmp_path / "tasks"
    task_dir.mkdir()
    (task_dir / "t1.json").write_text(json.dumps(TASK.to_dict()))
    aug = Augmentation(dihedral=0, colours=(0, 2, 1, 4, 3, 5, 6, 7, 8, 9))
    # Programs ran on the augmented task: their outputs are in augmented colours.
    right = result([aug.apply_grid(p.output) for p in TASK.train], [aug.apply_grid(p.output) for p in TASK.test])
    results_path = tmp_path / "results.jsonl"
    with open(results_path, "w") as f:
        write_records([result_to_record(right, "t1", 0, aug)], f)
        f.write("not json\n")
    parser = argparse.ArgumentParser()
    add_cli(parser.add_subparsers())
    args = parser.parse_args(["submit", str(results_path), "--tasks", str(task_dir),
                              "-o", str(tmp_path / "sub.json")])
    with pytest.warns(UserWarning, match="unreadable"):
        assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "1 unreadable result line" in out and "score on 1 task(s) with known test outputs: 1.0000" in out
    sub = json.loads((tmp_path / "sub.json").read_text())
    assert sub["t1"][0]["attempt_1"] == [[3]] and sub["t1"][1]["attempt_1"] == [[4]]
