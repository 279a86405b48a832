"""ARC rewards: properties of the reward functions, and SandboxReward running real programs."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

from arc_rl.data import task_to_json
from arc_rl.rewards import (MAX_REWARD, REWARDS, SandboxReward, correct_and_pixel, register_reward, score_many)
from arc_rl.stats import repetition_stats
from arc_sandbox.limits import Limits
from arc_sandbox.metrics import score_outputs
from arc_sandbox.results import ProgramResult, Status
from arc_sandbox.tasks import Task

BUILTIN = ("arc-v1", "arc-v2-no-pixel-score")


# --------------------------------------------------------------------------- local strategies
# (minimal stand-ins until arc_sandbox.strategies lands)

@st.composite
def grids(draw, max_side=6):
    h, w = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    return np.array(draw(st.lists(st.integers(0, 9), min_size=h * w, max_size=h * w)), dtype=np.int64).reshape(h, w)


@st.composite
def tasks(draw, test_outputs=st.booleans()):
    pair = lambda out: {"input": draw(grids()).tolist(), "output": draw(grids()).tolist() if out else None}
    with_outputs = draw(test_outputs)
    return Task.from_dict({"train": [pair(True) for _ in range(draw(st.integers(1, 4)))],
                           "test": [pair(with_outputs) for _ in range(draw(st.integers(1, 2)))]}, id="prop")


@st.composite
def outputs_for(draw, task: Task):
    """Per input: the expected grid, another grid, or nothing."""
    out = []
    for want in task.expected:
        choice = draw(st.sampled_from(["right", "other", "none"] if want is not None else ["other", "none"]))
        out.append(want.copy() if choice == "right" else draw(grids()) if choice == "other" else None)
    return out


def result_of(outputs, status=None) -> ProgramResult:
    statuses = [Status.OK if o is not None else Status.RUNTIME_ERROR for o in outputs]
    if status is None:
        status = Status.OK if all(s is Status.OK for s in statuses) else Status.RUNTIME_ERROR
    return ProgramResult(status=status, outputs=list(outputs), grid_statuses=statuses)


def transform_grid(grid, k, flip, colours):
    g = np.rot90(grid, k)
    return colours[(np.fliplr(g) if flip else g)]


# --------------------------------------------------------------------------- reward functions

@settings(max_examples=150, deadline=None)
@given(st.data(), st.sampled_from(BUILTIN))
def test_rewards_stay_in_range(data, name):
    task = data.draw(tasks())
    value = REWARDS[name](result_of(data.draw(outputs_for(task))), task)
    assert value == 0.0 or 1.0 <= value <= MAX_REWARD


@settings(max_examples=60, deadline=None)
@given(tasks(), st.sampled_from(BUILTIN))
def test_expected_outputs_get_the_maximum(task, name):
    outputs = [want.copy() if want is not None else np.zeros((1, 1), np.int64) for want in task.expected]
    assert REWARDS[name](result_of(outputs), task) == MAX_REWARD


@settings(max_examples=60, deadline=None)
@given(st.data(), st.sampled_from(BUILTIN),
       st.sampled_from([s for s in Status if s is not Status.OK]))
def test_nothing_valid_gets_the_minimum(data, name, status):
    task = data.draw(tasks())
    outputs = data.draw(outputs_for(task)) if status is Status.RUNTIME_ERROR else [None] * len(task.inputs)
    assert REWARDS[name](result_of(outputs, status), task) == 0.0


@settings(max_examples=150, deadline=None)
@given(st.data(), st.sampled_from(BUILTIN))
def test_more_correct_grids_never_lower_the_reward(data, name):
    task = data.draw(tasks(test_outputs=st.just(True)))
    outputs = data.draw(outputs_for(task))
    wrong = [j for j, (got, want) in enumerate(zip(outputs, task.expected))
             if got is None or not np.array_equal(got, want)]
    assume(wrong)
    j = data.draw(st.sampled_from(wrong))
    better = list(outputs)
    better[j] = task.expected[j].copy()
    before, after = REWARDS[name](result_of(outputs), task), REWARDS[name](result_of(better), task)
    assert after >= before
    if all(o is not None for o in outputs):
        assert after > before


@settings(max_examples=100, deadline=None)
@given(st.data(), st.sampled_from(BUILTIN), st.integers(0, 3), st.booleans(), st.permutations(range(10)))
def test_rewards_are_invariant_under_augmentation(data, name, k, flip, perm):
    task = data.draw(tasks())
    outputs = data.draw(outputs_for(task))
    colours = np.array(perm)
    aug = lambda g: None if g is None else transform_grid(g, k, flip, colours)
    shown = Task.from_dict({"train": [{"input": aug(p.input).tolist(), "output": aug(p.output).tolist()}
                                      for p in task.train],
                            "test": [{"input": aug(p.input).tolist(),
                                      "output": None if p.output is None else aug(p.output).tolist()}
                                     for p in task.test]}, id=task.id)
    plain = REWARDS[name](result_of(outputs), task)
    assert REWARDS[name](result_of([aug(o) for o in outputs]), shown) == pytest.approx(plain, abs=1e-12)


@settings(max_examples=80, deadline=None)
@given(st.data())
def test_score_many_matches_score_outputs(data):
    task = data.draw(tasks())
    batch = [data.draw(outputs_for(task)) for _ in range(data.draw(st.integers(1, 6)))]
    batch.append(list(batch[0]))   # repeated programs are compared once, scored the same
    for outputs, fast in zip(batch, score_many(batch, task)):
        slow = score_outputs(outputs, task)
        for part in ("train", "test"):
            f, s = getattr(fast, part), getattr(slow, part)
            assert (f.n, f.all_correct, f.correct_grids) == (s.n, s.all_correct, s.correct_grids)
            assert f.pixel_score == pytest.approx(s.pixel_score, abs=1e-12)


def test_reward_values_by_hand():
    task = Task.from_dict({"train": [{"input": [[1]], "output": [[1, 2]]}, {"input": [[2]], "output": [[3, 3]]}],
                           "test": [{"input": [[3]], "output": [[5, 5]]}]}, id="hand")
    # right, half right (pixel 0.5), wrong shape overlapping one cell of two (pixel 1/2)
    outputs = [np.array([[1, 2]]), np.array([[3, 0]]), np.array([[5]])]
    correct, pixel = correct_and_pixel(score_outputs(outputs, task))
    assert (correct, pixel) == (pytest.approx(1 / 3), pytest.approx((1 + 0.5 + 0.5) / 3))
    assert REWARDS["arc-v1"](result_of(outputs), task) == pytest.approx(1 + 8 / 3 + 2 / 3)
    assert REWARDS["arc-v2-no-pixel-score"](result_of(outputs), task) == pytest.approx(1 + 9 / 3)


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
    for seq, stats in zip(sequences, repetition_stats(sequences)):
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
