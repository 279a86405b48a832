"""``arc-sandbox run``: responses streamed in, results written in order, arc25 files, the summary."""
from __future__ import annotations

import gzip
import io
import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from arc_sandbox import Limits, ProgramResult, Sandbox, Status
from arc_sandbox.cli import main as cli_main
from arc_sandbox.scoring.loading import load_tasks
from arc_sandbox.scoring.runner import _in_order, iter_responses, run_responses

# recolour 1 -> 2; task "shift" shifts rows down by one
TASKS = {
    "recolour": {"train": [{"input": [[1, 0], [0, 1]], "output": [[2, 0], [0, 2]]},
                           {"input": [[1, 1, 4]], "output": [[2, 2, 4]]}],
                 "test": [{"input": [[0], [1]], "output": [[0], [2]]}]},
    "shift": {"train": [{"input": [[1], [2], [3]], "output": [[3], [1], [2]]}],
              "test": [{"input": [[5, 6], [7, 8]], "output": [[7, 8], [5, 6]]}]},
}
RECOLOUR = "import numpy as np\ndef transform(g):\n    return np.where(g == 1, 2, g)\n"
SHIFT = "import numpy as np\ndef transform(g):\n    return np.roll(g, 1, axis=0)\n"


@pytest.fixture(scope="module")
def tasks_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("tasks") / "tasks.json"
    path.write_text(json.dumps(TASKS))
    return path


@pytest.fixture(scope="module")
def sb():
    with Sandbox(workers=2, limits=Limits(timeout_s=2.0, memory_mb=256)) as sandbox:
        yield sandbox


def write_lines(path, rows):
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wt") as f:
        for row in rows:
            f.write((row if isinstance(row, str) else json.dumps(row)) + "\n")


@given(st.permutations(range(30)))
def test_results_come_out_in_job_order_whatever_order_they_finish_in(order):
    finished = [ProgramResult(status=Status.OK, outputs=[], grid_statuses=[], index=i) for i in order]
    assert [r.index for r in _in_order(finished)] == list(range(30))


def test_jsonl_is_streamed(tmp_path, tasks_path, sb):
    path = tmp_path / "responses.jsonl.gz"
    write_lines(path, [{"task_id": "shift", "text": SHIFT + f"# variant {i}\n"} for i in range(200)])  # distinct
    pulled = 0

    def counted():
        nonlocal pulled
        for response in iter_responses(path):
            pulled += 1
            yield response

    class Out(io.StringIO):
        pulled_at_first_write = None

        def write(self, text):
            if self.pulled_at_first_write is None:
                self.pulled_at_first_write = pulled
            return super().write(text)

    out = Out()
    results, skipped = run_responses(counted(), load_tasks(tasks_path), sb, out)
    assert out.pulled_at_first_write < 20, "the whole file was read before the first result was written"
    assert [json.loads(line)["sample"] for line in out.getvalue().splitlines()] == list(range(200))
    assert len(results["shift"]) == 200 and skipped.count == 0
    assert results["shift"][1].status is Status.OK and results["shift"][1].code == ""   # only what scoring needs


def test_results_are_written_in_file_order_when_the_first_program_is_slow(tmp_path, tasks_path, sb):
    slow = "import time\ndef transform(g):\n    time.sleep(0.3)\n    return g\n"
    path = tmp_path / "responses.jsonl"
    write_lines(path, [{"task_id": "shift", "text": slow}] +
                [{"task_id": "shift", "text": SHIFT + f"# {i}\n"} for i in range(10)])
    out = io.StringIO()
    run_responses(iter_responses(path), load_tasks(tasks_path), sb, out)
    written = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["sample"] for r in written] == list(range(11)) and written[0]["code"].startswith("import time")


def test_bad_rows_and_unknown_tasks_are_counted_and_the_rest_runs(tmp_path, tasks_path, sb):
    path = tmp_path / "responses.jsonl"
    write_lines(path, [{"task_id": "recolour", "text": RECOLOUR}, "{not json", {"task_id": "nope", "text": "x"},
                       {"task_id": "shift"}, {"task_id": "shift", "code": SHIFT}])
    results, skipped = run_responses(iter_responses(path), load_tasks(tasks_path), sb, io.StringIO())
    assert skipped.count == 3
    assert any("line 2: not JSON" in m for m in skipped.messages)
    assert any("task nope (sample 0): unknown task" in m for m in skipped.messages)
    assert any("line 4" in m and "no text" in m for m in skipped.messages)
    assert [r.status for r in results["recolour"] + results["shift"]] == [Status.OK, Status.OK]


def test_arc25_files_with_augmentation_run_on_the_augmented_task(tmp_path, tasks_path, sb):
    # colour 1 becomes 3 and 2 becomes 5 in the prompt: a program solving the augmented task recolours 3 -> 5
    colour_map = {str(c): c for c in range(10)} | {"1": 3, "3": 1, "2": 5, "5": 2}
    params = {"hflip": True, "n_rot90": 1, "color_map": colour_map}
    for_augmented = "```python\nimport numpy as np\ndef transform(g):\n    return np.where(g == 3, 5, g)\n```"
    path = tmp_path / "preds.json.gz"
    with gzip.open(path, "wt") as f:
        json.dump({"recolour": {"text_predictions": [for_augmented, ""], "data_augmentation_params": params}}, f)
    out = io.StringIO()
    results, skipped = run_responses(iter_responses(path), load_tasks(tasks_path), sb, out)
    assert skipped.count == 0
    solved, no_code = results["recolour"]
    assert solved.status is Status.OK and no_code.status is Status.NO_CODE
    assert [g.tolist() for g in solved.outputs] == [[[2, 0], [0, 2]], [[2, 2, 4]], [[0], [2]]]
    record = json.loads(out.getvalue().splitlines()[0])
    assert record["augmentation"]["dihedral"] == 5      # hflip then one quarter turn
    assert np.array(record["outputs"][1]).shape == (3, 1)   # stored in the augmented (rotated) space


def test_cli_prints_a_compact_summary_and_keeps_the_table_elsewhere(tmp_path, tasks_path, capsys):
    responses = tmp_path / "r.jsonl"
    write_lines(responses, [{"task_id": "recolour", "text": RECOLOUR}, {"task_id": "recolour", "text": ""},
                            {"task_id": "shift", "text": SHIFT}, {"task_id": "shift", "text": RECOLOUR}])
    base = ["run", str(responses), "--tasks", str(tasks_path), "--workers", "1", "--no-progress",
            "--out", str(tmp_path / "out.jsonl")]
    assert cli_main(base + ["--metrics-json", str(tmp_path / "m.json"), "--metrics-csv", str(tmp_path / "m.csv")]) == 0
    printed = capsys.readouterr().out
    assert "2 tasks, 4 programs" in printed and "solved: train 2/2, test 2/2 tasks" in printed
    assert "pass@1 0.500" in printed and "ok 75.0%" in printed and "no_code 25.0%" in printed
    assert all(len(line) <= 100 for line in printed.splitlines() if "out.jsonl" not in line)
    assert "train_pixel" not in printed
    table = json.loads((tmp_path / "m.json").read_text())
    assert [r["task_id"] for r in table["rows"]] == ["recolour", "shift"] and "train_pixel" in table["mean"]
    assert (tmp_path / "m.csv").read_text().startswith("task_id,n,")
    assert cli_main(base + ["--table"]) == 0
    printed = capsys.readouterr().out
    assert "train_pixel" in printed and "recolour" in printed and "shift" in printed

