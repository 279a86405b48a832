"""Repetition statistics of completions: the early sign of a GRPO run degenerating into loops.

Computed for a whole step at once (one sort per n-gram size over every completion's tokens) because the
reward has a budget of a few milliseconds per step.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import chain
from typing import Sequence

import numpy as np

NGRAM_SIZES = (3, 4)
_HASH_BITS = 40                       # n-gram hash bits kept; the completion's index sits above them
_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)


@dataclass(frozen=True)
class Repetition:
    """One completion. ``most_repeated[n]`` is the count of its most frequent n-gram and ``frequency[n]``
    that count over its number of n-grams (0 when it has none)."""

    tokens: int
    unique_token_ratio: float
    most_repeated: dict[int, int]
    frequency: dict[int, float]


def tokens_of(text: str) -> list[str]:
    """Stand-in tokens when no token ids are known: whitespace-separated words."""
    return text.split()


def repetition_stats(sequences: Sequence[Sequence], ns: Sequence[int] = NGRAM_SIZES) -> list[Repetition]:
    """Statistics for each token sequence (token ids, or any hashable tokens such as words)."""
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
    flat = _as_ids(sequences, int(lengths.sum()))
    owner = np.repeat(np.arange(len(sequences), dtype=np.uint64), lengths) << np.uint64(_HASH_BITS)
    ends = np.cumsum(lengths)
    left = np.repeat(ends, lengths) - np.arange(len(flat))    # tokens from each position to its sequence's end
    unique, _ = _distinct_and_max(flat, owner, left >= 1, len(lengths))
    most = {}
    h = np.zeros(len(flat), dtype=np.uint64)
    with np.errstate(over="ignore"):   # wrapping multiplication is the point of the hash
        for n in range(1, max(ns, default=0) + 1):
            # h[i] hashes the n tokens from i on; positions too close to the end are masked below
            m = max(len(h) - n + 1, 0)
            h[:m] = (h[:m] ^ flat[n - 1:]) * _MULTIPLIER
            if n in ns:
                most[n] = _distinct_and_max(h >> np.uint64(64 - _HASH_BITS), owner, left >= n, len(lengths))[1]
    out = []
    for i, length in enumerate(lengths.tolist()):
        counts = {n: int(most[n][i]) for n in ns}
        out.append(Repetition(tokens=length, unique_token_ratio=float(unique[i] / length) if length else 0.0,
                              most_repeated=counts,
                              frequency={n: counts[n] / (length - n + 1) if length >= n else 0.0 for n in ns}))
    return out


def _as_ids(sequences: Sequence[Sequence], total: int) -> np.ndarray:
    items = list(chain.from_iterable(sequences))
    if items and not isinstance(items[0], (int, np.integer)):
        vocab: dict = {}
        items = [vocab.setdefault(t, len(vocab)) for t in items]
    return np.array(items, dtype=np.uint64).reshape(total)


def _distinct_and_max(keys: np.ndarray, owner: np.ndarray, valid: np.ndarray,
                      k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per sequence: the number of distinct keys and the count of its most repeated key.

    ``owner`` holds each position's sequence index already shifted above the key bits, so one sort groups
    keys by sequence, then by value.
    """
    distinct, most = np.zeros(k, dtype=np.int64), np.zeros(k, dtype=np.int64)
    keys = np.sort(owner[valid] | keys[valid])
    if len(keys) == 0:
        return distinct, most
    run_starts = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]]))
    run_lengths = np.diff(np.append(run_starts, len(keys)))
    run_owner = (keys[run_starts] >> np.uint64(_HASH_BITS)).astype(np.int64)
    distinct[:] = np.bincount(run_owner, minlength=k)
    np.maximum.at(most, run_owner, run_lengths)
    return distinct, most
