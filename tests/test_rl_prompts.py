"""BARC / arc25 prompts: exact strings, grid text round trip, and rendering through a local chat template."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from arc_rl import prompts
from arc_rl.prompts import (ASSISTANT_PREFIX, COLOR_NAMES, LLAMA31_CHAT_TEMPLATE, SYSTEM_PROMPT, build_messages,
                            grid_to_text, render_prompt, text_to_grid)
from arc_sandbox.executor.grids import GridError
from arc_sandbox.scoring.tasks import Task

SPECIAL = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
           "<unk>", "<pad>"]


def tiny_tokenizer(chat_template: str | None = LLAMA31_CHAT_TEMPLATE):
    """A word-level tokenizer trained here on the prompt vocabulary, with a Llama 3.1 style chat template."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    corpus = [SYSTEM_PROMPT, prompts.USER_INTRO, prompts.USER_OUTRO, ASSISTANT_PREFIX, " ".join(COLOR_NAMES),
              "Example Input: Output: 1 2 3 4 5 6 7 8 9 10 ```python def transform(input_grid): return"]
    tok.train_from_iterator(corpus, trainers.WordLevelTrainer(special_tokens=SPECIAL))
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>",
                                      unk_token="<unk>", pad_token="<pad>", padding_side="left")
    if chat_template is not None:
        wrapped.chat_template = chat_template
    return wrapped


def make_task(train_shapes=((2, 3), (1, 1)), n_test=1, task_id="t1") -> Task:
    rng = np.random.default_rng(0)
    pair = lambda h, w: {"input": rng.integers(0, 10, (h, w)).tolist(), "output": rng.integers(0, 10, (w, h)).tolist()}
    return Task.from_dict({"train": [pair(*s) for s in train_shapes],
                           "test": [pair(3, 2) for _ in range(n_test)]}, id=task_id)


def test_grid_text_is_colour_names_by_rows():
    assert grid_to_text([[0, 1, 2], [3, 4, 5]]) == "Black Blue Red\nGreen Yellow Gray"
    assert grid_to_text([[6, 7, 8, 9]]) == "Pink Orange Purple Brown"


@settings(max_examples=60, deadline=None)
@given(arrays(np.int64, st.tuples(st.integers(1, 30), st.integers(1, 30)), elements=st.integers(0, 9)))
def test_grid_text_round_trips(grid):
    text = grid_to_text(grid)
    assert not text.endswith("\n")
    assert np.array_equal(text_to_grid(text), grid)


@pytest.mark.parametrize("text, problem", [("Black Teal", "'Teal'"), ("Black Blue\nRed", "different lengths"),
                                           ("", "sides")])
def test_text_to_grid_names_the_problem(text, problem):
    with pytest.raises(GridError, match=problem):
        text_to_grid(text)


def test_barc_user_message_is_exact():
    task = Task.from_dict({"train": [{"input": [[1]], "output": [[2]]}, {"input": [[3, 0]], "output": [[4, 0]]}],
                           "test": [{"input": [[5], [6]]}]}, id="x")
    system, user, assistant = build_messages(task, "barc")
    assert system == {"role": "system", "content": SYSTEM_PROMPT}
    assert assistant == {"role": "assistant", "content": ASSISTANT_PREFIX}
    assert user["content"] == (
        "Given input-output grid pairs as reference examples, carefully observe the patterns to predict the output "
        "grid for new test input. Each pair follows the same transformation rule. Grids are 2D arrays represented "
        "as strings, with cells (colors) separated by spaces and rows by newlines."
        "\nHere are the input and output grids for the reference examples:\n"
        "Example 1\nInput:\nBlue\n\nOutput:\nRed\n\n\n"
        "Example 2\nInput:\nGreen Black\n\nOutput:\nYellow Black\n\n\n"
        "Here is the input grid for the test example:\nInput:\nGray\nPink\n"
        "\nWrite a Python function `transform` that can convert any given input grid to its corresponding output "
        "grid based on the pattern observed in the reference examples.")
    assert ASSISTANT_PREFIX.startswith("Let's solve this puzzle using Python code with the common library functions.")
    assert ASSISTANT_PREFIX.endswith("Here is the Python code with the comments describing how to solve the problem:\n")


def test_arc25_variant_drops_the_input_line_and_keeps_two_newlines():
    task = Task.from_dict({"train": [{"input": [[1]], "output": [[2]]}], "test": [{"input": [[5]]}]}, id="x")
    user = build_messages(task, "arc25")[1]["content"]
    assert user.endswith("Example 1\nInput:\nBlue\n\nOutput:\nRed\n\n"
                         "\nHere is the input grid for the test example:\nGray"
                         "\n\nWrite a Python function `transform` that can convert any given input grid to its "
                         "corresponding output grid based on the pattern observed in the reference examples.")


def test_arc25_with_rng_shuffles_train_and_picks_a_test_input():
    task = make_task(train_shapes=[(1, k) for k in range(1, 9)], n_test=3)
    barc = build_messages(task, "barc")[1]["content"]
    assert build_messages(task, "barc", np.random.default_rng(1))[1]["content"] == barc   # barc ignores rng
    shown = [build_messages(task, "arc25", np.random.default_rng(s))[1]["content"] for s in range(10)]
    assert len(set(shown)) > 1
    tests_seen = set()
    for text in shown:
        for pair in task.train:   # every train pair, whatever the order
            assert f"Input:\n{grid_to_text(pair.input)}\n\nOutput:\n{grid_to_text(pair.output)}" in text
        test_part = text.split("test example:\n")[1]
        tests_seen |= {i for i, p in enumerate(task.test) if test_part.startswith(grid_to_text(p.input) + "\n")}
    assert len(tests_seen) > 1


def test_bad_version_and_missing_test_input_are_named():
    with pytest.raises(ValueError, match="unknown prompt version 'llama'"):
        build_messages(make_task(), "llama")
    no_test = Task.from_dict({"train": [{"input": [[1]], "output": [[2]]}], "test": []}, id="lonely")
    with pytest.raises(ValueError, match="task lonely: no test input"):
        build_messages(no_test)


@pytest.mark.parametrize("version", ["barc", "arc25"])
def test_render_prompt_through_llama31_template(version):
    tokenizer = tiny_tokenizer()
    task = make_task()
    text = render_prompt(task, tokenizer, version)
    user = build_messages(task, version)[1]["content"]
    assert text == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
        "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n" + SYSTEM_PROMPT + "<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\n" + user.strip() + "<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n" + ASSISTANT_PREFIX)
    # the special tokens survive tokenisation, and the assistant turn is left open for the model
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert ids[0] == tokenizer.convert_tokens_to_ids("<|begin_of_text|>")
    assert ids.count(tokenizer.convert_tokens_to_ids("<|eot_id|>")) == 2


def test_render_prompt_with_a_template_that_keeps_whitespace():
    keeping = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% if not loop.last %}</>{% endif %}"
               "{% endfor %}")
    text = render_prompt(make_task(), tiny_tokenizer(keeping))
    assert text.startswith("<system>" + SYSTEM_PROMPT) and text.endswith("<assistant>" + ASSISTANT_PREFIX)


def test_render_prompt_without_a_chat_template_says_what_to_do():
    with pytest.raises(ValueError, match="chat_template"):
        render_prompt(make_task(), tiny_tokenizer(chat_template=None))
