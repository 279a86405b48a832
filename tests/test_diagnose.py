"""``arc-sandbox diagnose`` on real files and real runs."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings, strategies as st

from arc_sandbox import Job, Limits, Sandbox, Status, trace_allocations
from arc_sandbox.cli import main as cli_main
from arc_sandbox.diagnostics.memory import (CANDIDATE_LIMITS_MB, HEADROOM, MAX_LOST_FRACTION, HealthSample, ProgramMemory,
                                  build_report, diagnose, health_of)

TASK = {"train": [{"input": [[1, 0], [0, 1]], "output": [[0, 1], [1, 0]]}],
        "test": [{"input": [[2, 0], [0, 2]], "output": [[0, 2], [2, 0]]}]}
PROGRAMS = {
    "flip": "```python\nimport numpy as np\ndef transform(g):\n    return np.fliplr(g)\n```",
    "big": ("import numpy as np\ndef transform(g):\n    a = np.ones(60 * 2**20, dtype=np.uint8)\n"
            "    return np.fliplr(g)\n"),
    "hog": ("import numpy as np\ndef transform(g):\n    keep = np.ones(50 * 2**20, dtype=np.uint8)\n"
            "    more = np.ones(2**33, dtype=np.uint8)\n    return g\n"),
    "raise": "def transform(g):\n    raise MemoryError('not really')\n",
}
LIMITS = Limits(timeout_s=10, memory_mb=256)


@pytest.fixture()
def files(tmp_path):
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    for name in ("a", "b"):
        (tasks / f"{name}.json").write_text(json.dumps(TASK))
    rows = [{"task_id": "a" if i % 2 else "b", "text": code, "sample": i} for i, code in enumerate(PROGRAMS.values())]
    rows += [{"task_id": "nope", "text": PROGRAMS["flip"], "sample": 0}, {"task_id": "a"}]
    responses = tmp_path / "responses.jsonl"
    responses.write_text("".join(json.dumps(r) + "\n" for r in rows) + "not json\n")
    return tmp_path, tasks, responses


def test_diagnose_responses(files):
    tmp, tasks, responses = files
    report = diagnose(responses, tasks=str(tasks), limits=LIMITS, workers=2, top=5, out_dir=tmp / "out")
    for name in ("memory.md", "memory.json", "memory.png"):
        assert (tmp / "out" / name).stat().st_size > 0
    assert report.programs == 5 and report.measured == 4   # the unknown task can't run
    assert report.hit_limit == 1 and report.status_counts == {"ok": 2, "memory_limit": 1, "runtime_error": 1}
    assert sum(c for _, _, c in report.histogram) == 4
    hog = report.limit_hits[0]
    assert hog.code == PROGRAMS["hog"] and 45 <= hog.peak_memory_mb <= 60
    sites = {s.line: s for s in hog.alloc_sites}
    assert sites[4].failed and abs(sites[3].size_mb - 50) < 5 and not sites[3].failed
    assert [r.code for r in report.top][:1] == [PROGRAMS["big"]]
    assert report.top[0].alloc_sites[0].line == 3
    problems = "\n".join(report.problems)
    assert "task nope" in problems and "line 6" in problems and "line 7: not JSON" in problems
    assert report.health is not None and report.health.samples[-1].programs == 4
    assert report.recommended_limit_mb == 128   # 60 MB peak * 1.25 headroom fits 128, not 64
    saved = json.loads((tmp / "out" / "memory.json").read_text())
    assert saved["hit_limit"] == 1 and saved["limit_hits"][0]["alloc_sites"][0]["line"] in (3, 4)
    text = (tmp / "out" / "memory.md").read_text()
    assert "more = np.ones(2**33, dtype=np.uint8)" in text and "## Executor health" in text


def test_diagnose_results_file_from_run(files, capsys):
    tmp, tasks, responses = files
    results = tmp / "results.jsonl"
    assert cli_main(["run", str(responses), "--tasks", str(tasks), "--out", str(results), "--memory-mb", "256",
                     "--timeout", "10", "--workers", "2", "--no-progress"]) == 0
    records = [json.loads(line) for line in results.read_text().splitlines()]
    # damage it the ways old or foreign files are damaged
    old = dict(records[0])
    del old["peak_memory_mb"]
    foreign = dict(records[0], status="exploded")
    orphan = dict(next(r for r in records if r["code"] == PROGRAMS["big"]), task_id="gone")
    with results.open("a") as f:
        f.write(json.dumps(old) + "\n" + json.dumps(foreign) + "\n{broken\n" + json.dumps(orphan) + "\n")
    out = tmp / "rep"
    assert cli_main(["diagnose", str(results), "--tasks", str(tasks), "--out-dir", str(out), "--memory-mb", "256",
                     "--top", "3", "--no-progress"]) == 0
    assert "hit the 256 MB limit" in capsys.readouterr().out
    saved = json.loads((out / "memory.json").read_text())
    assert saved["programs"] == len(records) + 1 and saved["health"] is None
    problems = "\n".join(saved["problems"])
    for line in (5, 6, 7):
        assert f"line {line}:" in problems
    assert "peak_memory_mb" in problems and "exploded" in problems
    measured = {r["code"]: r["peak_memory_mb"] for r in records}
    for row in saved["top"] + saved["limit_hits"]:   # the file's peaks, not new ones
        if row["task_id"] != "gone":
            assert row["peak_memory_mb"] == pytest.approx(measured[row["code"]], abs=1e-3)
    gone = next(r for r in saved["top"] if r["task_id"] == "gone")
    assert "not in the tasks" in gone["notes"] and gone["alloc_sites"] == []


def test_diagnose_results_rerun_measures_health(files):
    tmp, tasks, responses = files
    results = tmp / "results.jsonl"
    cli_main(["run", str(responses), "--tasks", str(tasks), "--out", str(results), "--memory-mb", "256",
              "--timeout", "10", "--workers", "1", "--no-progress"])
    report = diagnose(results, tasks=str(tasks), limits=LIMITS, workers=1, rerun=True, trace=False,
                      out_dir=tmp / "rerun")
    assert report.health is not None and report.hit_limit == 1
    assert all(not r.alloc_sites for r in report.top)


def test_trace_allocations_api():
    jobs = [Job(PROGRAMS["flip"], [[[1, 2]]]), Job(PROGRAMS["big"], [[[1, 2]]]), (PROGRAMS["hog"], [[[1, 2]]])]
    with Sandbox(workers=2, limits=LIMITS) as sb:
        results = sb.run(jobs)
        traced_here = trace_allocations(results, jobs, sb, top=1)
    assert set(traced_here) == {2, 1}   # the limit hit, then the highest other peak
    traced_new = trace_allocations(results, jobs, LIMITS, top=1)
    for traced in (traced_here, traced_new):
        assert traced[1].alloc_sites[0].line == 3 and abs(traced[1].alloc_sites[0].size_mb - 60) < 6
        assert traced[2].status is Status.MEMORY_LIMIT and any(s.failed for s in traced[2].alloc_sites)


@settings(max_examples=60, deadline=None)
@given(peaks=st.lists(st.tuples(st.floats(0, 9000), st.sampled_from([Status.OK, Status.RUNTIME_ERROR,
                                                                    Status.MEMORY_LIMIT])), max_size=300),
       limit=st.sampled_from([256.0, 512.0, 300.0]))
def test_limit_costs_and_recommendation(peaks, limit):
    rows = [ProgramMemory("t", i, status, peak, "code") for i, (peak, status) in enumerate(peaks)]
    report = build_report(rows + [None], limit)
    valid = [p for p, s in peaks if s is Status.OK]
    assert report.programs == len(rows) + 1 and report.measured == len(rows)
    assert sum(c for _, _, c in report.histogram) == len(rows)
    for cost in report.limit_costs:
        assert cost.lost_valid == sum(p > cost.limit_mb for p in valid)
    assert [c.lost_valid for c in report.limit_costs] == sorted((c.lost_valid for c in report.limit_costs), reverse=True)
    if report.recommended_limit_mb is not None:
        rec = report.recommended_limit_mb
        assert sum(p * HEADROOM > rec for p in valid) <= MAX_LOST_FRACTION * len(valid)
        smaller = [c for c in CANDIDATE_LIMITS_MB if c < rec]
        for c in smaller:   # and it is the smallest that does
            assert sum(p * HEADROOM > c for p in valid) > MAX_LOST_FRACTION * len(valid)
    else:
        assert not valid or sum(p * HEADROOM > CANDIDATE_LIMITS_MB[-1] for p in valid) > MAX_LOST_FRACTION * len(valid)


def test_health_verdicts():
    flat = [HealthSample(i, 100 * i, 80.0 + (i % 3), 50.0 + (i % 2), 100.0) for i in range(20)]
    assert health_of(flat).verdict == "flat"
    leaking = [HealthSample(i, 100 * i, 80.0 + 5 * i, 50.0, 100.0) for i in range(20)]
    health = health_of(leaking)
    assert health.verdict.startswith("growing: parent") and health.parent_growth_mb == pytest.approx(95, abs=1)
    assert "too short" in health_of(flat[:2]).verdict
