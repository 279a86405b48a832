import io
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arc_sandbox.scoring.records import read_results, record_to_result, result_to_record, write_records
from arc_sandbox.executor.results import ProgramResult, Status
from arc_sandbox.testing.strategies import augmentations, program_results, tasks

KEYS = {"task_id", "sample", "status", "code", "outputs", "grid_statuses", "error_type", "error_message",
        "wall_s", "cpu_s", "peak_memory_mb", "augmentation"}


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_round_trip_through_json(data):
    task = data.draw(tasks(max_side=5))
    result = data.draw(program_results(task))
    aug = data.draw(st.none() | augmentations())
    augmented = result if aug is None else ProgramResult(
        status=result.status, outputs=[None if g is None else aug.apply_grid(g) for g in result.outputs],
        grid_statuses=result.grid_statuses, code=result.code)
    record = json.loads(json.dumps(result_to_record(augmented, task.id, 7, aug)))
    assert set(record) == KEYS
    back = record_to_result(record)
    assert (back.task_id, back.sample, back.augmentation) == (task.id, 7, aug)
    assert back.result.status is result.status and back.result.grid_statuses == result.grid_statuses
    for got, want in zip(back.result.outputs, result.outputs, strict=True):
        assert (got is None and want is None) or np.array_equal(got, want)
    raw = record_to_result(record, revert=False).result.outputs
    assert all((g is None) or np.array_equal(g, a) for g, a in zip(raw, augmented.outputs))


@pytest.mark.parametrize("change,message", [
    ({"status": "exploded"}, "task t: status: unknown status 'exploded'"),
    ({"outputs": [[[1, 2], [3]]]}, "task t: outputs[0]"),
    ({"sample": "3"}, "task t: sample"),
    ({"task_id": None}, "record: task_id"),
    ({"augmentation": {"dihedral": 9, "colours": list(range(10))}}, "task t: Augmentation.dihedral"),
])
def test_bad_records_name_the_field(change, message):
    record = result_to_record(ProgramResult(status=Status.OK, outputs=[np.array([[1]])],
                                            grid_statuses=[Status.OK]), "t", 0)
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        record_to_result({**record, **change})


def test_read_results_keeps_good_lines(tmp_path):
    ok = ProgramResult(status=Status.OK, outputs=[np.array([[1]])], grid_statuses=[Status.OK], code="c")
    path = tmp_path / "r.jsonl"
    buf = io.StringIO()
    write_records([result_to_record(ok, "a", 0), result_to_record(ok, "b", 0), result_to_record(ok, "a", 1)], buf)
    lines = buf.getvalue().splitlines()
    path.write_text("\n".join([lines[0], "{broken", lines[1], '{"task_id": "c"}', "", lines[2]]) + "\n")
    with pytest.warns(UserWarning, match="2 unreadable"):
        read = read_results(path)
    assert {k: len(v) for k, v in read.by_task.items()} == {"a": 2, "b": 1}
    assert read.errors[0].startswith("line 2: not JSON") and read.errors[1].startswith("line 4: task c")
    assert [r.index for r in read.results()["a"]] == [0, 1]
