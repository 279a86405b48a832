import csv
import io
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arc_sandbox.scoring.compare import compare
from arc_sandbox.scoring.metrics import aggregate, fingerprint, pass_at_k, score_outputs, score_tasks
from arc_sandbox.executor.results import ProgramResult, Status
from arc_sandbox.testing.strategies import program_results, tasks
from arc_sandbox.scoring.tasks import Task

TASK = Task.from_dict({
    "train": [{"input": [[1]], "output": [[2, 2]]}, {"input": [[3]], "output": [[4, 4]]}],
    "test": [{"input": [[5]], "output": [[6, 6]]}, {"input": [[7]]}],
}, id="t1")


def ok(outputs, code="x"):
    outputs = [None if g is None else np.array(g) for g in outputs]
    statuses = [Status.OK if g is not None else Status.INVALID_OUTPUT for g in outputs]
    status = Status.OK if all(g is not None for g in outputs) else Status.INVALID_OUTPUT
    return ProgramResult(status=status, outputs=outputs, grid_statuses=statuses, code=code)


def failed(status, n=4):
    return ProgramResult(status=status, outputs=[None] * n, grid_statuses=[status] * n)


RIGHT = [[[2, 2]], [[4, 4]], [[6, 6]], [[0]]]


def test_score_outputs_partitions_and_skips_unknown_test_outputs():
    s = score_outputs([np.array(g) for g in [[[2, 2]], [[4, 0]], [[6, 6]], [[9]]]], TASK)
    assert (s.train.n, s.test.n) == (2, 1)
    assert s.train.pixel_score == pytest.approx(0.75)
    assert s.train.correct_grids == 0.5 and not s.train.all_correct
    assert s.test.all_correct and s.test.correct_grids == 1.0
    assert s.comparisons[3] is None
    assert not s.all_correct


def test_score_outputs_with_missing_grids():
    s = score_outputs([None, np.array([[4, 4]]), None, None], TASK)
    assert s.train.pixel_score == 0.5 and s.test.pixel_score == 0.0


def test_score_outputs_wrong_length_names_task():
    with pytest.raises(ValueError, match="task t1: outputs"):
        score_outputs([None], TASK)


def test_fingerprint_ignores_dtype_but_not_shape():
    a = [np.array([[1, 2]], dtype=np.int64), np.array([[3]])]
    b = [np.array([[1, 2]], dtype=np.uint8), [[3]]]
    assert fingerprint(a) == fingerprint(b)
    assert fingerprint([np.array([[1, 2]])]) != fingerprint([np.array([[1], [2]])])
    assert fingerprint([np.array([[1, 2]])]) != fingerprint([np.array([[1, 3]])])
    assert fingerprint([np.array([[1]]), None]) is None


def test_pass_at_k_known_values():
    assert pass_at_k(10, 1, 1) == 0.1
    assert pass_at_k(10, 0, 5) == 0.0
    assert pass_at_k(10, 10, 1) == 1.0
    assert pass_at_k(4, 2, 2) == pytest.approx(1 - 1 / 6)   # 1 - C(2,2)/C(4,2)
    assert pass_at_k(512, 3, 512) == 1.0


@pytest.mark.parametrize("n,c,k", [(5, 6, 1), (5, 1, 0), (5, 1, 6), (5, -1, 1)])
def test_pass_at_k_rejects_bad_arguments(n, c, k):
    with pytest.raises(ValueError, match="pass_at_k"):
        pass_at_k(n, c, k)


@given(st.integers(1, 300).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n))))
def test_pass_at_k_is_monotone_in_k(nc):
    n, c = nc
    values = [pass_at_k(n, c, k) for k in range(1, n + 1)]
    assert all(0.0 <= v <= 1.0 for v in values)
    assert all(a <= b for a, b in zip(values, values[1:]))
    assert values[0] == pytest.approx(c / n)


def test_aggregate_counts():
    results = {"t1": [ok(RIGHT), ok(RIGHT), ok([[[2, 2]], [[4, 4]], [[6, 0]], [[0]]]),
                      ok([None, [[4, 4]], [[6, 6]], [[1]]]), failed(Status.SYNTAX_ERROR), failed(Status.TIMEOUT)]}
    table = aggregate(results, {"t1": TASK}, ks=(1, 2, 8))
    row = table.rows[0]
    assert row.n == 6
    assert row.valid_code == pytest.approx(5 / 6)
    assert row.valid_outputs == pytest.approx(3 / 6)
    assert row.unique_outputs == 2
    assert row.pass_rate == pytest.approx(2 / 6)
    assert row.pass_at[1] == pytest.approx(2 / 6)
    assert row.pass_at[8] is None
    assert row.solved_train == 1.0 and row.solved_test == 1.0
    assert row.statuses == {"ok": 3, "invalid_output": 1, "syntax_error": 1, "timeout": 1}
    # test pixel: 1, 1, 0.5, 1, 0, 0
    assert row.test_pixel == pytest.approx(3.5 / 6)
    assert table.problems == []


def test_aggregate_tasks_without_results_and_bad_results():
    other = Task.from_dict({"train": [{"input": [[1]], "output": [[1]]}], "test": [{"input": [[1]]}]}, id="t2")
    results = {"t1": [ok(RIGHT), failed(Status.CRASHED, n=1)], "nope": [ok(RIGHT)]}
    with pytest.warns(UserWarning, match="problem"):
        table = aggregate(results, {"t1": TASK, "t2": other})
    assert [r.task_id for r in table.rows] == ["t1", "t2"]
    assert table.rows[1].n == 0 and table.rows[1].solved_train == 0.0
    assert table.rows[1].test_pixel is None and table.rows[1].solved_test is None
    assert table.rows[0].pass_rate == 0.5      # the 1-output result counts as failed, not fatal
    assert any("task nope" in p for p in table.problems)
    assert any("task t1: result 1" in p for p in table.problems)
    assert table.mean.task_id == "MEAN"
    assert table.mean.solved_train == 0.5
    assert table.mean.test_pixel == pytest.approx(table.rows[0].test_pixel)   # t2 has no test outputs


def test_table_renderings():
    table = aggregate({"t1": [ok(RIGHT), failed(Status.TIMEOUT)]}, {"t1": TASK}, ks=(1, 2))
    rows = list(csv.DictReader(io.StringIO(table.to_csv())))
    assert [r["task_id"] for r in rows] == ["t1", "MEAN"]
    assert float(rows[0]["pass@2"]) == 1.0 and rows[0]["status:timeout"] == "1"
    data = json.loads(table.to_json())
    assert data["mean"]["pass_rate"] == 0.5 and data["rows"][0]["task_id"] == "t1"
    text = table.to_text()
    assert "MEAN" in text.splitlines()[-1] and "timeout" in text.splitlines()[0]
    assert "omitted" in table.to_text(max_rows=0)


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_aggregate_agrees_with_score_outputs(data):
    task = data.draw(tasks(max_side=5))
    results = data.draw(st.lists(program_results(task), min_size=1, max_size=8))
    row = aggregate({task.id: results}, {task.id: task}).rows[0]
    scores = [score_outputs(r.outputs, task) for r in results]
    assert row.train_pixel == pytest.approx(np.mean([s.train.pixel_score for s in scores]))
    assert row.train_correct == pytest.approx(np.mean([s.train.correct_grids for s in scores]))
    assert row.test_pixel == pytest.approx(np.mean([s.test.pixel_score for s in scores]))
    assert row.pass_rate == pytest.approx(np.mean([s.all_correct for s in scores]))
    assert row.solved_train == float(any(s.train.all_correct for s in scores))
    ok_prints = {fingerprint(r.outputs) for r in results if r.status is Status.OK}
    assert row.unique_outputs == len(ok_prints)


def test_metrics_command(tmp_path, capsys):
    import argparse

    from arc_sandbox.cli.metrics import add_cli
    from arc_sandbox.scoring.records import result_to_record, write_records

    (tmp_path / "t1.json").write_text(json.dumps(TASK.to_dict()))
    results = tmp_path / "r.jsonl"
    with open(results, "w") as f:
        write_records([result_to_record(ok(RIGHT), "t1", 0), result_to_record(failed(Status.TIMEOUT), "t1", 1)], f)
    parser = argparse.ArgumentParser()
    add_cli(parser.add_subparsers())
    args = parser.parse_args(["metrics", str(results), "--tasks", str(tmp_path), "--csv", str(tmp_path / "m.csv")])
    assert args.func(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1].split()[0] == "MEAN" and "timeout" in lines[0]
    rows = list(csv.DictReader(open(tmp_path / "m.csv")))
    assert rows[0]["pass_rate"] == "0.5"


# Outputs a program may return that are not grids, or grids in another form than an int64 array.
HOSTILE = [np.array([[10]]), np.array([[-1, 2]]), [[1, 2], [3]], "x", np.zeros((31, 1), np.int64), np.zeros((0, 3)),
           [[1, 2], [3, 4]], np.array([[1.0, 2.0]]), np.array([[1, 2]], dtype=np.uint8), 7, None]


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_score_tasks_agrees_with_compare_grid_by_grid(data):
    """The vectorised path (distinct grids, batched comparisons, shared scores) against the definition: each grid
    compared on its own with ``compare``, partitions averaged by hand. Duplicated and hostile outputs included."""
    batches = []
    for _ in range(data.draw(st.integers(1, 3))):
        task = data.draw(tasks())
        outputs = []
        for _ in range(data.draw(st.integers(0, 5))):
            if outputs and data.draw(st.booleans()):
                outputs.append(list(data.draw(st.sampled_from(outputs))))   # a repeated sample
            else:
                outs = list(data.draw(program_results(task)).outputs)
                for j in data.draw(st.lists(st.integers(0, len(outs) - 1), max_size=2)):
                    outs[j] = data.draw(st.sampled_from(HOSTILE))
                outputs.append(outs)
        batches.append((outputs, task))
    for (outputs, task), scores in zip(batches, score_tasks(batches)):
        assert len(scores) == len(outputs)
        for outs, score in zip(outputs, scores):
            want = [None if e is None else compare(o, e) for o, e in zip(outs, task.expected)]
            assert [c is None for c in score.comparisons] == [c is None for c in want]
            for got, ref in zip(score.comparisons, want):
                if ref is not None:
                    assert (got.exact, got.same_shape) == (ref.exact, ref.same_shape)
                    assert got.similarity == pytest.approx(ref.similarity, abs=1e-12)
            for part, refs in ((score.train, want[:len(task.train)]), (score.test, want[len(task.train):])):
                scored = [c for c in refs if c is not None]
                assert part.n == len(scored)
                assert part.pixel_score == pytest.approx(np.mean([c.similarity for c in scored]) if scored else 0.0)
                assert part.correct_grids == pytest.approx(np.mean([c.exact for c in scored]) if scored else 0.0)
                assert part.all_correct == (bool(scored) and all(c.exact for c in scored))
