"""Repetition statistics of completions: the early sign of a GRPO run degenerating into loops.

Computed for a whole step at once because the reward has a budget of a few milliseconds per step: identical
completions (common once a policy starts collapsing) are measured once, and each n-gram size costs one sort
over every distinct completion's tokens together.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import chain
from typing import Hashable, Sequence

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


def repetition_stats(sequences: Sequence[Sequence[Hashable]], ns: Sequence[int] = NGRAM_SIZES) -> list[Repetition]:
    """Statistics for each token sequence (token ids, or any hashable tokens such as words).

    Equal sequences get the same (immutable) :class:`Repetition` object.
    """
    index: dict[tuple, int] = {}
    which = [index.setdefault(tuple(seq), len(index)) for seq in sequences]   # hashes each sequence once
    measured = _measure(list(index), ns)
    return [measured[i] for i in which]


def _measure(sequences: Sequence[Sequence[Hashable]], ns: Sequence[int]) -> list[Repetition]:
    lengths = np.fromiter(map(len, sequences), dtype=np.int64, count=len(sequences))
    flat = _as_ids(sequences, int(lengths.sum()))
    # Sort keys are int64 (quicker to sort than uint64): the sequence's index above the key's bits.
    owner = np.repeat(np.arange(len(sequences), dtype=np.int64), lengths) << _HASH_BITS
    left = np.repeat(np.cumsum(lengths), lengths) - np.arange(len(flat))   # tokens from each position to the end
    unique, _ = _distinct_and_max(flat.view(np.int64), owner, left >= 1, len(lengths))
    most = {}
    h = np.zeros(len(flat), dtype=np.uint64)
    with np.errstate(over="ignore"):   # wrapping multiplication is the point of the hash
        for n in range(1, max(ns, default=0) + 1):
            # h[i] hashes the n tokens from i on; positions too close to the end are masked below
            m = max(len(h) - n + 1, 0)
            h[:m] = (h[:m] ^ flat[n - 1:]) * _MULTIPLIER
            if n in ns:
                keys = (h >> np.uint64(64 - _HASH_BITS)).view(np.int64)
                most[n] = _distinct_and_max(keys, owner, left >= n, len(lengths))[1].tolist()
    out = []
    for i, (length, distinct) in enumerate(zip(lengths.tolist(), unique.tolist())):
        counts = {n: most[n][i] for n in ns}
        out.append(Repetition(tokens=length, unique_token_ratio=distinct / length if length else 0.0,
                              most_repeated=counts,
                              frequency={n: counts[n] / (length - n + 1) if length >= n else 0.0 for n in ns}))
    return out


def _as_ids(sequences: Sequence[Sequence[Hashable]], total: int) -> np.ndarray:
    """Every sequence's tokens, end to end, as non-negative ids below 2**40 in a uint64 array."""
    first = next((seq[0] for seq in sequences if len(seq)), 0)
    items = chain.from_iterable(sequences)
    if not isinstance(first, (int, np.integer)):
        vocab: dict = {}
        items = (vocab.setdefault(t, len(vocab)) for t in items)
    return np.fromiter(items, dtype=np.uint64, count=total)


def _distinct_and_max(keys: np.ndarray, owner: np.ndarray, valid: np.ndarray,
                      k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per sequence: the number of distinct keys and the count of its most repeated key.

    ``owner`` holds each position's sequence index already shifted above the key bits, so one sort groups
    keys by sequence, then by value: equal keys form runs, and a sequence's runs are contiguous.
    """
    distinct, most = np.zeros(k, dtype=np.int64), np.zeros(k, dtype=np.int64)
    keys = (owner | keys)[valid]
    keys.sort()
    if len(keys) == 0:
        return distinct, most
    run_starts = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]]))
    run_lengths = np.diff(np.append(run_starts, len(keys)))
    run_owner = keys[run_starts] >> _HASH_BITS
    owner_starts = np.flatnonzero(np.concatenate([[True], run_owner[1:] != run_owner[:-1]]))
    distinct[:] = np.bincount(run_owner, minlength=k)
    most[run_owner[owner_starts]] = np.maximum.reduceat(run_lengths, owner_starts)
    return distinct, most
