"""The induction prompt that BARC models were trained on, and grids as colour-name text.

Every string here is exact (``formats.md`` §6): a model fine-tuned on BARC data notices a changed newline.
Two versions exist:

- ``"barc"``: BARC's training/prompt files. Train pairs in task order, first test input, an ``Input:`` line.
- ``"arc25"``: the reference RL project's variant. No ``Input:`` line before the test grid; with an ``rng`` the
  train pairs are shuffled and one random test input is shown.

Both pre-fill the assistant turn with :data:`ASSISTANT_PREFIX`, so the model continues with the code fence.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from arc_sandbox import GridError, Task, as_grid

COLOR_NAMES = ("Black", "Blue", "Red", "Green", "Yellow", "Gray", "Pink", "Orange", "Purple", "Brown")
_COLOR_VALUES = {name: value for value, name in enumerate(COLOR_NAMES)}

SYSTEM_PROMPT = (
    "You are a world-class puzzle solver with exceptional pattern recognition skills and expertise in Python "
    "programming. Your task is to analyze puzzles and provide Python solutions."
)
USER_INTRO = (
    "Given input-output grid pairs as reference examples, carefully observe the patterns to predict the output grid "
    "for new test input. Each pair follows the same transformation rule. Grids are 2D arrays represented as strings, "
    "with cells (colors) separated by spaces and rows by newlines."
)
EXAMPLES_HEADER = "\nHere are the input and output grids for the reference examples:\n"
TEST_HEADER = "Here is the input grid for the test example:\n"
USER_OUTRO = (
    "\nWrite a Python function `transform` that can convert any given input grid to its corresponding output grid "
    "based on the pattern observed in the reference examples."
)
ASSISTANT_PREFIX = (
    "Let's solve this puzzle using Python code with the common library functions. We'll first reason about the "
    "problem and then write the code to solve it. The `transform` function will take the input grid and return the "
    "output grid. Here is the Python code with the comments describing how to solve the problem:\n"
)

PROMPT_VERSIONS = ("barc", "arc25")

# Llama 3.1 style chat template as in BARC's recipes (formats.md §6.6), for tokenizers that ship without one.
LLAMA31_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "<|start_header_id|>{{ message['role'] }}<|end_header_id|>\n\n"
    "{% if message['role'] == 'system' %}Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n{% endif %}"
    "{{ message['content'] | trim }}<|eot_id|>"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)


def grid_to_text(grid: Any) -> str:
    """ARC rows (axis 0) of colour names separated by spaces, joined by newlines; no trailing newline."""
    arr = as_grid(grid)
    return "\n".join(" ".join(COLOR_NAMES[v] for v in row) for row in arr.tolist())


def text_to_grid(text: str) -> np.ndarray:
    """Inverse of :func:`grid_to_text`; raises ``GridError`` naming the bad row or word."""
    rows = []
    for r, line in enumerate(text.strip().split("\n")):
        try:
            rows.append([_COLOR_VALUES[word] for word in line.split()])
        except KeyError as exc:
            raise GridError(f"row {r}: {exc.args[0]!r} is not a colour name ({', '.join(COLOR_NAMES)})") from None
    if len({len(row) for row in rows}) > 1:
        raise GridError(f"rows have different lengths: {[len(row) for row in rows]}")
    return as_grid(rows)


def build_messages(task: Task, version: str = "barc", rng: np.random.Generator | None = None) -> list[dict]:
    """System, user and pre-filled assistant messages for ``task``.

    ``rng`` only matters for ``"arc25"`` (shuffled train pairs, random test input); without one the order is the
    task's, so prompts are reproducible.
    """
    if version not in PROMPT_VERSIONS:
        raise ValueError(f"unknown prompt version {version!r}; choose one of {PROMPT_VERSIONS}")
    if not task.test:
        raise ValueError(f"task {task.id}: no test input to put in the prompt")
    train, test_input = list(task.train), task.test[0].input
    if version == "arc25" and rng is not None:
        train = [train[i] for i in rng.permutation(len(train))]
        test_input = task.test[int(rng.integers(len(task.test)))].input
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": _user_message(train, test_input, version)},
        {"role": "assistant", "content": ASSISTANT_PREFIX},
    ]


def _user_message(train, test_input, version: str) -> str:
    # BARC ends each example with 3 newlines; arc25 with 2, then starts the test part with one.
    parts = [USER_INTRO, EXAMPLES_HEADER]
    for k, pair in enumerate(train, start=1):
        parts.append(f"Example {k}\nInput:\n{grid_to_text(pair.input)}\n\nOutput:\n{grid_to_text(pair.output)}\n\n")
        parts.append("\n" if version == "barc" else "")
    if version == "barc":
        parts.append(f"{TEST_HEADER}Input:\n{grid_to_text(test_input)}\n")
    else:
        parts.append(f"\n{TEST_HEADER}{grid_to_text(test_input)}\n")
    parts.append(USER_OUTRO)
    return "".join(parts)


def render_prompt(task: Task, tokenizer, version: str = "barc", rng: np.random.Generator | None = None) -> str:
    """The chat-template text a model continues: everything up to and including :data:`ASSISTANT_PREFIX`.

    Templates that trim message contents (Llama 3.1's does) lose the prefix's final newline under
    ``continue_final_message``; it is put back so the prompt ends exactly as BARC's training answers read
    before their code fence (``problem:\\n```python``), which keeps the tokenisation the model learned.
    """
    text = tokenizer.apply_chat_template(build_messages(task, version, rng), tokenize=False,
                                         continue_final_message=True)
    stripped = ASSISTANT_PREFIX.rstrip()
    if not text.endswith(ASSISTANT_PREFIX) and text.endswith(stripped):
        text += ASSISTANT_PREFIX[len(stripped):]
    if not text.endswith(ASSISTANT_PREFIX):
        raise ValueError("the tokenizer's chat template does not end the prompt with the assistant prefix; "
                         "set tokenizer.chat_template (e.g. to arc_rl.prompts.LLAMA31_CHAT_TEMPLATE)")
    return text
