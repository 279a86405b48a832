"""ARC rewards: properties of the reward functions, and SandboxReward running real programs."""
from __future__ import annotations

import dataclasses
import json
import math
import time

import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

from arc_rl.data import cached_task_from_json, task_to_json
from arc_rl.rewards import (MAX_REWARD, REWARDS, SandboxReward, correct_and_pixel, register_reward, score_many,
                             score_tasks)
from arc_rl.stats import repetition_stats
from arc_sandbox.executor.limits import Limits
from arc_sandbox.executor.results import Status
from arc_sandbox.scoring.metrics import score_outputs
from arc_sandbox.testing.strategies import augmentations, program_results, result_with_outputs, tasks
from arc_sandbox.scoring.tasks import Task

BUILTIN = ("arc-v1", "arc-v2-no-pixel-score")


# --------------------------------------------------------------------------- reward functions
# Tasks, augmentations and program outcomes come from arc_sandbox.testing, augmentation from arc_sandbox.scoring.augment.

any_tasks = st.booleans().flatmap(lambda known: tasks(max_side=6, test_outputs=known))   # test outputs known or not


def value_of(name, result, task):
    return REWARDS[name](result, task)


@settings(max_examples=150, deadline=None)
@given(st.data(), st.sampled_from(BUILTIN))
def test_rewards_stay_in_range(data, name):
    task = data.draw(any_tasks)
    value = value_of(name, data.draw(program_results(task)), task)
    assert value == 0.0 or 1.0 <= value <= MAX_REWARD


@settings(max_examples=60, deadline=None)
@given(st.data(), st.sampled_from(BUILTIN))
def test_expected_outputs_get_the_maximum(data, name):
    task = data.draw(any_tasks)   # where a test output is unknown, any grid counts
    assert value_of(name, data.draw(program_results(task, failed=False, outcomes=("right",))), task) == MAX_REWARD


@settings(max_examples=100, deadline=None)
@given(st.data(), st.sampled_from(BUILTIN))
def test_nothing_valid_gets_the_minimum(data, name):
    # A failed program, or one that left a grid missing: both built-in rewards need a valid grid for every input.
    task = data.draw(any_tasks)
    result = data.draw(program_results(task))
    assume(not result.ok)
    assert value_of(name, result, task) == 0.0


@settings(max_examples=150, deadline=None)
@given(st.data(), st.sampled_from(BUILTIN))
def test_more_correct_grids_never_lower_the_reward(data, name):
    task = data.draw(tasks(max_side=6, test_outputs=True))
    result = data.draw(program_results(task, failed=False))
    wrong = [j for j, (got, want) in enumerate(zip(result.outputs, task.expected))
             if got is None or not np.array_equal(got, want)]
    assume(wrong)
    j = data.draw(st.sampled_from(wrong))
    better = result_with_outputs([task.expected[j].copy() if k == j else g for k, g in enumerate(result.outputs)])
    before, after = value_of(name, result, task), value_of(name, better, task)
    assert after >= before
    if result.ok:   # every grid was valid: one more right one must show
        assert after > before


@settings(max_examples=100, deadline=None)
@given(st.data(), st.sampled_from(BUILTIN), augmentations())
def test_rewards_are_invariant_under_augmentation(data, name, augmentation):
    # The reward scores a program on the task as the prompt showed it (augmented); that must equal reverting
    # its outputs and scoring them on the original task, and scoring an augmented result on the augmented task.
    task = data.draw(any_tasks)
    shown = augmentation.apply_task(task)
    on_shown = data.draw(program_results(shown))
    reverted = dataclasses.replace(on_shown, outputs=augmentation.revert_outputs(on_shown.outputs))
    assert value_of(name, on_shown, shown) == pytest.approx(value_of(name, reverted, task), abs=1e-12)
    on_task = data.draw(program_results(task))
    augmented = dataclasses.replace(on_task, outputs=[None if g is None else augmentation.apply_grid(g)
                                                      for g in on_task.outputs])
    assert value_of(name, augmented, shown) == pytest.approx(value_of(name, on_task, task), abs=1e-12)


def assert_same_score(fast, slow):
    for part in ("train", "test"):
        f, s = getattr(fast, part), getattr(slow, part)
        assert (f.n, f.all_correct, f.correct_grids) == (s.n, s.all_correct, s.correct_grids)
        assert f.pixel_score == pytest.approx(s.pixel_score, abs=1e-12)
    assert fast.comparisons == slow.comparisons


@settings(max_examples=80, deadline=None)
@given(st.data())
def test_score_many_matches_score_outputs(data):
    task = data.draw(any_tasks)
    batch = [data.draw(program_results(task, failed=False)).outputs for _ in range(data.draw(st.integers(1, 6)))]
    batch.append(list(batch[0]))   # repeated programs are compared once, scored the same
    for outputs, fast in zip(batch, score_many(batch, task)):
        assert_same_score(fast, score_outputs(outputs, task))


@settings(max_examples=50, deadline=None)
@given(st.data())
def test_score_tasks_scores_a_whole_step_like_each_task_alone(data):
    # Several tasks (some with unknown test outputs, one maybe without programs) batched into one call.
    step = []
    for task in data.draw(st.lists(any_tasks, min_size=1, max_size=4)):
        n = data.draw(st.integers(0, 4))
        step.append(([data.draw(program_results(task, failed=False)).outputs for _ in range(n)], task))
    for (batch, task), scores in zip(step, score_tasks(step)):
        assert len(scores) == len(batch)
        for outputs, fast in zip(batch, scores):
            assert_same_score(fast, score_outputs(outputs, task))


def test_score_many_names_a_program_with_the_wrong_number_of_outputs():
    task = Task.from_dict({"train": [{"input": [[1]], "output": [[1]]}], "test": [{"input": [[2]]}]}, id="short")
    with pytest.raises(ValueError, match="task short: program 1: expected 2 outputs, got 1"):
        score_many([[np.ones((1, 1), np.int64), None], [None]], task)


def test_reward_values_by_hand():
    task = Task.from_dict({"train": [{"input": [[1]], "output": [[1, 2]]}, {"input": [[2]], "output": [[3, 3]]}],
                           "test": [{"input": [[3]], "output": [[5, 5]]}]}, id="hand")
    # right, half right (pixel 0.5), wrong shape overlapping one cell of two (pixel 1/2)
    outputs = [np.array([[1, 2]]), np.array([[3, 0]]), np.array([[5]])]
    correct, pixel = correct_and_pixel(score_outputs(outputs, task))
    assert (correct, pixel) == (pytest.approx(1 / 3), pytest.approx((1 + 0.5 + 0.5) / 3))
    assert REWARDS["arc-v1"](result_with_outputs(outputs), task) == pytest.approx(1 + 8 / 3 + 2 / 3)
    assert REWARDS["arc-v2-no-pixel-score"](result_with_outputs(outputs), task) == pytest.approx(1 + 9 / 3)


def test_register_reward_adds_and_refuses_duplicates():
    @register_reward("test-binary")
    def binary(result, task):
        return float(result.ok)
    try:
        assert REWARDS["test-binary"] is binary
        with pytest.raises(ValueError, match="already registered"):
            register_reward("test-binary")(binary)
    finally:
        del REWARDS["test-binary"]


# --------------------------------------------------------------------------- SandboxReward, real programs

FLIP = Task.from_dict({"train": [{"input": [[1, 2, 3]], "output": [[3, 2, 1]]},
                                 {"input": [[4, 0], [5, 6]], "output": [[0, 4], [6, 5]]}],
                       "test": [{"input": [[7, 8]], "output": [[8, 7]]}]}, id="flip")
SHIFT = Task.from_dict({"train": [{"input": [[1]], "output": [[2]]}, {"input": [[3, 4]], "output": [[4, 5]]}],
                        "test": [{"input": [[5]], "output": [[6]]}]}, id="shift")


def fenced(code: str) -> str:
    return f"```python\n{code}\n```\n"


SOLVE_FLIP = fenced("import numpy as np\ndef transform(input_grid):\n    return np.fliplr(input_grid)")
IDENTITY = fenced("def transform(input_grid):\n    return input_grid")
CRASH = fenced("def transform(input_grid):\n    return 1 / 0")
SOLVE_SHIFT = fenced("def transform(input_grid):\n    return (input_grid + 1) % 10")


@pytest.fixture(scope="module")
def reward():
    with SandboxReward("arc-v1", workers=2, limits=Limits(timeout_s=2.0), max_completion_length=50) as r:
        yield r


def test_step_scores_every_kind_of_completion(reward):
    flip, shift = task_to_json(FLIP), task_to_json(SHIFT)
    completions = [SOLVE_FLIP, IDENTITY, CRASH, "I have no idea.", "```python\ndef transform(g):\n    return",
                   [{"role": "assistant", "content": SOLVE_SHIFT}], SOLVE_SHIFT, SOLVE_FLIP]
    column = [flip, flip, flip, flip, flip, shift, shift, "{not json"]
    logged = {}
    rewards = reward(completions=completions, task=column, log_metric=logged.__setitem__)
    identity = score_outputs([g.copy() for g in FLIP.inputs], FLIP)
    assert rewards[0] == MAX_REWARD
    assert rewards[1] == pytest.approx(1 + 8 * correct_and_pixel(identity)[0] + correct_and_pixel(identity)[1])
    assert rewards[2:5] == [0.0, 0.0, 0.0]            # runtime error, prose (run as code), truncated fence
    assert rewards[5:7] == [MAX_REWARD, MAX_REWARD]   # conversational completion, plain string
    assert rewards[7] == 0.0                          # corrupt task: scored 0, not raised
    m = reward.last_metrics
    assert logged == m
    assert m["sandbox/solved_ratio"] == 3 / 8 and m["sandbox/valid_output_ratio"] == 4 / 8
    assert m["sandbox/status/runtime_error"] == 1 / 8 and m["sandbox/status/syntax_error"] == 1 / 8
    assert m["sandbox/status/no_code"] == 1 / 8
    assert m["sandbox/bad_sample/bad_task"] == 1 / 8
    assert m["sandbox/reward_max"] == MAX_REWARD and m["sandbox/reward_min"] == 0.0
    assert m["sandbox/reward_mean"] == pytest.approx(sum(rewards) / 8)
    assert m["truncation/ratio"] == 1 / 8 and m["truncation/truncated_reward_mean"] == 0.0
    assert m["truncation/complete_reward_mean"] == pytest.approx(sum(rewards) / 7)
    assert m["length/solved_mean"] == pytest.approx(np.mean([len(SOLVE_FLIP), len(SOLVE_SHIFT), len(SOLVE_SHIFT)]))
    assert all(math.isfinite(v) for v in m.values())


def test_completion_ids_give_length_truncation_and_repetition(reward):
    column = [task_to_json(SHIFT)] * 3
    ids = [list(range(10)), [7] * 50, [1, 2, 3] * 5]
    rewards = reward(completions=[SOLVE_SHIFT] * 3, completion_ids=ids, task=column)
    assert rewards == [MAX_REWARD] * 3
    m = reward.last_metrics
    assert m["truncation/ratio"] == 1 / 3                       # 50 tokens = max_completion_length
    assert m["truncation/truncated_reward_mean"] == MAX_REWARD
    expected = repetition_stats(ids)
    assert m["repetition/unique_token_ratio"] == pytest.approx(np.mean([s.unique_token_ratio for s in expected]))
    assert m["repetition/truncated_unique_token_ratio"] == pytest.approx(1 / 50)
    assert m["repetition/ngram_3_most_repeated_count"] == pytest.approx((1 + 48 + 5) / 3)
    assert m["length/solved_max"] == 50


def test_programs_run_on_the_task_as_the_prompt_showed_it(reward):
    # FLIP transposed: what was a left-right flip is now an up-down flip
    shown = Task.from_dict({"train": [{"input": np.transpose(p.input).tolist(), "output": np.transpose(p.output).tolist()}
                                      for p in FLIP.train],
                            "test": [{"input": np.transpose(p.input).tolist(), "output": np.transpose(p.output).tolist()}
                                     for p in FLIP.test]}, id="flip")
    solve_shown = fenced("import numpy as np\ndef transform(input_grid):\n    return np.flipud(input_grid)")
    rewards = reward(completions=[solve_shown, SOLVE_FLIP], task=[task_to_json(shown)] * 2)
    assert rewards[0] == MAX_REWARD and rewards[1] < MAX_REWARD


def test_one_sandbox_is_kept_across_steps_and_closed():
    with SandboxReward("arc-v2-no-pixel-score", workers=1) as r:
        assert r.__name__ == "arc-v2-no-pixel-score"
        r(completions=[SOLVE_SHIFT], task=[task_to_json(SHIFT)])
        first = r.sandbox
        assert r(completions=[IDENTITY], task=[task_to_json(SHIFT)]) == [1.0]
        assert r.sandbox is first
    assert r._sandbox is None and first._closed


def test_a_broken_sandbox_gives_none_for_the_step_not_an_exception():
    with SandboxReward(workers=-1) as r:   # the sandbox refuses to start
        logged = {}
        assert r(completions=[SOLVE_SHIFT, IDENTITY], task=[task_to_json(SHIFT)] * 2,
                 log_metric=logged.__setitem__) == [None, None]
        assert logged == {"sandbox/failures": 1.0}


class _LosesOneJob:
    """A real local Sandbox whose second job is reported lost, as RaySandbox reports a job whose nodes all died
    (the real loss is exercised in test_ray_sandbox.py; here only the reward's handling of it)."""

    def __init__(self, sandbox):
        self.sandbox = sandbox

    def run(self, jobs):
        results = self.sandbox.run(jobs)
        lost = results[1]
        results[1] = dataclasses.replace(lost, status=Status.INFRA_ERROR, outputs=[None] * len(lost.outputs))
        return results


def test_a_job_lost_by_the_infrastructure_gets_none_not_zero():
    from arc_sandbox import Sandbox
    with Sandbox(workers=1) as local, SandboxReward("arc-v1", sandbox=_LosesOneJob(local)) as r:
        rewards = r(completions=[SOLVE_SHIFT, SOLVE_SHIFT, CRASH], task=[task_to_json(SHIFT)] * 3)
    assert rewards[0] == MAX_REWARD and rewards[1] is None and rewards[2] == 0.0
    assert r.last_metrics["sandbox/status/infra_error"] == pytest.approx(1 / 3)


def test_task_column_is_parsed_once_across_steps():
    text = task_to_json(SHIFT)
    task, augmentation = cached_task_from_json(text)
    assert cached_task_from_json(text)[0] is task and augmentation is None
    assert task.to_dict() == SHIFT.to_dict()
    with pytest.raises(ValueError):   # callers share the cached task: its grids can't be changed
        task.train[0].input[0, 0] = 9
    with pytest.raises(ValueError, match="not JSON"):
        cached_task_from_json("{not json")


def test_missing_task_column_scores_zero_with_a_reason(reward):
    assert reward(completions=[SOLVE_SHIFT, SOLVE_SHIFT]) == [0.0, 0.0]
    assert reward.last_metrics["sandbox/bad_sample/bad_task"] == 1.0


def test_unknown_reward_name_is_named():
    with pytest.raises(ValueError, match="unknown reward 'arc-v9'"):
        SandboxReward("arc-v9")


def test_barc_source_solves_its_own_task(tmp_path, reward):
    from arc_rl.data import iter_barc_jsonl
    source = ("from common import *\nimport numpy as np\n\n# concepts: colour shift\n"
              "def main(input_grid):\n    return (input_grid + 1) % 10\n\n"
              "def generate_input():\n    return np.zeros((2, 2), dtype=int)\n")
    rng = np.random.default_rng(0)
    examples = [[g.tolist(), ((g + 1) % 10).tolist()] for g in (rng.integers(0, 10, (3, 4)) for _ in range(8))]
    path = tmp_path / "barc.jsonl"
    path.write_text(json.dumps({"source": source, "examples": examples, "seeds": []}) + "\n")
    task = next(iter_barc_jsonl(path))
    assert reward(completions=[fenced(task.meta["source"])], task=[task_to_json(task)]) == [MAX_REWARD]


# --------------------------------------------------------------------------- repetition statistics

@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(st.integers(0, 5), max_size=40), min_size=1, max_size=8))
def test_repetition_stats_match_counting_by_hand(sequences):
    from collections import Counter
    sequences = sequences + sequences[:2]   # repeated completions are measured once: same answers
    for seq, stats in zip(sequences, repetition_stats(sequences), strict=True):
        assert stats.tokens == len(seq)
        assert stats.unique_token_ratio == (len(set(seq)) / len(seq) if seq else 0.0)
        for n in (3, 4):
            grams = Counter(tuple(seq[i:i + n]) for i in range(len(seq) - n + 1))
            most = max(grams.values(), default=0)
            assert stats.most_repeated[n] == most
            assert stats.frequency[n] == (most / sum(grams.values()) if grams else 0.0)


def test_repetition_stats_of_words():
    [loop, varied] = repetition_stats([["x", "=", "x", "+", "1"] * 4, "a b c d e f".split()])
    assert loop.most_repeated[4] == 4 and loop.unique_token_ratio == 4 / 20
    assert varied.most_repeated == {3: 1, 4: 1} and varied.unique_token_ratio == 1.0


# --------------------------------------------------------------------------- off the critical path: async, pickling,
# threads, deadline, a sandbox given by the user

SLEEPY = fenced("import time\ndef transform(input_grid):\n    time.sleep(0.3)\n    return (input_grid + 1) % 10")


def test_async_reward_leaves_the_event_loop_free_and_agrees_with_the_sync_one():
    import asyncio

    from arc_rl.rewards import AsyncSandboxReward

    column = [task_to_json(SHIFT)] * 4
    completions = [SLEEPY.replace("0.3", f"0.3{k}") for k in range(4)]   # distinct programs: nothing de-duplicated

    async def scenario(reward):
        ticks = []

        async def ticker():
            while True:
                ticks.append(time.perf_counter())
                await asyncio.sleep(0.01)
        task = asyncio.ensure_future(ticker())
        started = time.perf_counter()
        rewards = await reward(completions=completions, task=column)
        ended = time.perf_counter()
        task.cancel()
        return rewards, [t for t in ticks if started < t < ended], ended - started

    with AsyncSandboxReward("arc-v1", workers=2, limits=Limits(timeout_s=5.0)) as reward:
        assert __import__("inspect").iscoroutinefunction(reward.__call__)    # what TRL checks
        rewards, ticks, took = asyncio.run(scenario(reward))
    assert rewards == [MAX_REWARD] * 4
    assert took > 0.5                         # 4 programs of 0.3 s on 2 workers
    assert len(ticks) > took / 0.01 * 0.5     # the loop kept ticking while the programs ran
    with SandboxReward("arc-v1", workers=2, limits=Limits(timeout_s=5.0)) as sync:
        assert sync(completions=completions, task=column) == rewards


def _score_in_child(reward, completions, column, queue):
    queue.put((reward(completions=completions, task=column), reward.sandbox is not None))


def test_reward_pickles_without_its_pool_and_starts_one_where_it_is_used():
    import multiprocessing
    import pickle

    with SandboxReward("arc-v1", workers=1, limits=Limits(timeout_s=5.0)) as reward:
        column = [task_to_json(SHIFT), task_to_json(FLIP)]
        expected = reward(completions=[SOLVE_SHIFT, SOLVE_FLIP], task=column)   # pool, lock, threads now live
        copy = pickle.loads(pickle.dumps(reward))
        assert copy._sandbox is None and copy.limits == reward.limits and copy.__name__ == "arc-v1"
        with copy:
            assert copy(completions=[SOLVE_SHIFT, SOLVE_FLIP], task=column) == expected
            assert copy.sandbox is not reward.sandbox
        # a spawned process (as TRL's async trainer uses for rewards) gets its own pool
        context = multiprocessing.get_context("spawn")
        queue = context.Queue()
        child = context.Process(target=_score_in_child, args=(reward, [SOLVE_SHIFT, SOLVE_FLIP], column, queue))
        child.start()
        rewards, started = queue.get(timeout=120)
        child.join(30)
        assert rewards == expected == [MAX_REWARD, MAX_REWARD] and started and child.exitcode == 0


def test_concurrent_calls_from_threads_each_get_their_own_rewards():
    import concurrent.futures

    column = {"shift": task_to_json(SHIFT), "flip": task_to_json(FLIP)}
    calls = [([SOLVE_SHIFT, IDENTITY, CRASH], ["shift"] * 3), ([SOLVE_FLIP, SOLVE_SHIFT], ["flip"] * 2),
             ([CRASH, SOLVE_FLIP, SOLVE_FLIP], ["flip"] * 3), ([SOLVE_SHIFT], ["shift"])] * 3
    with SandboxReward("arc-v1", workers=2, limits=Limits(timeout_s=5.0)) as reward:
        alone = [reward(completions=c, task=[column[t] for t in ts]) for c, ts in calls]
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            together = list(pool.map(lambda call: reward(completions=call[0], task=[column[t] for t in call[1]]),
                                     calls))
    assert together == alone
    assert alone[0][0] == MAX_REWARD and alone[0][2] == 0.0 and alone[1][0] == MAX_REWARD > alone[1][1]


def test_a_call_past_its_deadline_returns_none_and_the_next_call_works():
    hang = fenced("import time\ndef transform(input_grid):\n    time.sleep(60)\n    return input_grid")
    column = [task_to_json(SHIFT)]
    # 5 s: room for the scoring itself on a loaded 2-core machine (the pool's start is outside the deadline)
    with SandboxReward("arc-v1", workers=1, limits=Limits(timeout_s=120.0), deadline_s=5.0) as reward:
        logged = {}
        started = time.perf_counter()
        assert reward(completions=[hang], task=column, log_metric=logged.__setitem__) == [None]
        assert time.perf_counter() - started < 15
        assert logged == {"sandbox/failures": 1.0, "sandbox/deadline_exceeded": 1.0}
        assert reward(completions=[SOLVE_SHIFT], task=column) == [MAX_REWARD]


def test_default_deadline_covers_the_worst_case_of_the_call():
    reward = SandboxReward("arc-v1", workers=4, limits=Limits(timeout_s=2.0))
    assert reward.deadline_for(16) == 30 + 3 * 4 * 2.0
    assert reward.deadline_for(17) == 30 + 3 * 5 * 2.0
    with pytest.raises(ValueError, match="deadline_s"):
        SandboxReward(deadline_s=0)


class _Recording:
    """A user's executor: anything with run(jobs) -> results (here a real Sandbox underneath)."""

    def __init__(self):
        from arc_sandbox import Sandbox
        self.inner = Sandbox(workers=1, limits=Limits(timeout_s=5.0))
        self.jobs = 0
        self.closed = False

    def run(self, jobs):
        self.jobs += len(jobs)
        return self.inner.run(jobs)

    def close(self):
        self.closed = True
        self.inner.close()


def test_a_given_sandbox_is_used_and_left_open_a_factory_is_called_lazily_and_closed():
    given_sandbox = _Recording()
    try:
        with SandboxReward("arc-v1", sandbox=given_sandbox) as reward:
            assert reward(completions=[SOLVE_SHIFT, CRASH], task=[task_to_json(SHIFT)] * 2) == [MAX_REWARD, 0.0]
        assert given_sandbox.jobs == 2 and not given_sandbox.closed
    finally:
        given_sandbox.close()
    made = []

    def factory():
        made.append(_Recording())
        return made[-1]
    with SandboxReward("arc-v1", sandbox=factory) as reward:
        assert made == []
        assert reward(completions=[SOLVE_SHIFT], task=[task_to_json(SHIFT)]) == [MAX_REWARD]
        assert len(made) == 1 and made[0].jobs == 1
    assert made[0].closed
