"""A tiny random Llama and a word-level tokenizer, built offline, for GRPO and inference tests.

The vocabulary holds the prompt's words plus a few *program tokens*: one token is a whole fenced Python
program (identity, mirror, a crash...). Even an untrained model samples them often, so completions run
in the sandbox and get different rewards, which gives GRPO a real gradient. The GPU benchmark uses the
same builder with a wider, deeper model.
"""
from __future__ import annotations

import json
from pathlib import Path

PROGRAMS = {
    "identity": "def transform(input_grid):\n    return input_grid",
    "mirror": "import numpy as np\ndef transform(input_grid):\n    return np.fliplr(input_grid)",
    "common": "from common import *\nimport numpy as np\ndef transform(input_grid):\n"
              "    objects = find_connected_components(input_grid, monochromatic=True)\n"
              "    return np.flipud(input_grid)",
    "crash": "def transform(input_grid):\n    return 1 / 0",
    "busy": "import numpy as np\ndef transform(input_grid):\n    total = 0\n    for i in range(20000):\n"
            "        total += i\n    return np.rot90(input_grid)",
}
PROGRAM_TOKENS = [f"```python\n{code}\n```" for code in PROGRAMS.values()]

WORDS = ("Black Blue Red Green Yellow Gray Pink Orange Purple Brown Example Input: Output: Here is the input "
         "grid for test example Write a Python function transform that . , : 1 2 3 4 5 6 7 8 9").split()
SPECIALS = ["<pad>", "<unk>", "<|begin_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>"]


def build_tokenizer(filler: int = 0):
    """``filler``: extra plain tokens ``w0``, ``w1``, ... so that the vocabulary can match a real model's size
    (the GPU benchmark's 8B configuration); a random model then writes them as text."""
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from arc_rl.prompts import LLAMA31_CHAT_TEMPLATE

    vocab = {token: i for i, token in enumerate(SPECIALS + sorted(set(WORDS)) + [f"w{i}" for i in range(filler)])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.add_tokens([AddedToken(p, normalized=False, special=False) for p in PROGRAM_TOKENS])
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>",
                                      pad_token="<pad>", unk_token="<unk>", padding_side="left")
    wrapped.add_special_tokens({"additional_special_tokens": ["<|start_header_id|>", "<|end_header_id|>"]})
    wrapped.chat_template = LLAMA31_CHAT_TEMPLATE
    return wrapped


def build_model(tokenizer, hidden_size: int = 64, layers: int = 2, heads: int = 4, kv_heads: int = 2,
                intermediate_size: int | None = None, seed: int = 0):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden_size,
                         intermediate_size=intermediate_size or 2 * hidden_size, num_hidden_layers=layers,
                         num_attention_heads=heads, num_key_value_heads=kv_heads, max_position_embeddings=4096,
                         tie_word_embeddings=False, pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    model = LlamaForCausalLM(config)
    for name in ("pad_token_id", "bos_token_id", "eos_token_id"):
        setattr(model.generation_config, name, getattr(tokenizer, name))
    return model


def save_tiny_model(directory: str | Path, **model_kwargs) -> Path:
    """Tokenizer and random model saved together, loadable with ``from_pretrained(directory)``."""
    directory = Path(directory)
    tokenizer = build_tokenizer()
    build_model(tokenizer, **model_kwargs).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def write_tasks(path: str | Path, n: int = 4) -> Path:
    """ARC JSON with ``n`` small mirror tasks (output = input flipped left-right), test outputs inline."""
    tasks = {}
    for t in range(n):
        pairs = []
        for k in range(3):
            grid = [[(t + k + r * 3 + c) % 10 for c in range(3)] for r in range(2 + k % 2)]
            pairs.append({"input": grid, "output": [row[::-1] for row in grid]})
        tasks[f"{t:08x}"] = {"train": pairs[:2], "test": pairs[2:]}
    path = Path(path)
    path.write_text(json.dumps(tasks))
    return path
