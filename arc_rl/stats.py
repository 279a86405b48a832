"""Repetition statistics of completions: the early sign of a GRPO run degenerating into loops.

Computed for a whole step at once because the reward has a budget of a few milliseconds per step: identical
completions (common once a policy starts collapsing) are measured once, and each n-gram size costs one sort
over every distinct completion's tokens together. The work comes in two parts: :func:`pack_tokens` (Python
objects into arrays, holding the GIL) and :func:`measure_repetition` (numpy only, mostly without the GIL), so a
caller can run the second on a thread while its own thread keeps working.
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


@dataclass(frozen=True)
class RepetitionTable:
    """The same statistics for many completions, as arrays with one entry per completion (for step means)."""

    tokens: np.ndarray                     # int
    unique_token_ratio: np.ndarray         # float, 0 for an empty completion
    most_repeated: dict[int, np.ndarray]   # n -> int
    frequency: dict[int, np.ndarray]       # n -> float, 0 without any n-gram

    def row(self, i: int) -> Repetition:
        return Repetition(tokens=int(self.tokens[i]), unique_token_ratio=float(self.unique_token_ratio[i]),
                          most_repeated={n: int(c[i]) for n, c in self.most_repeated.items()},
                          frequency={n: float(f[i]) for n, f in self.frequency.items()})


def repetition_stats(sequences: Sequence[Sequence[Hashable]], ns: Sequence[int] = NGRAM_SIZES) -> list[Repetition]:
    """Statistics for each token sequence (token ids, or any hashable tokens such as words)."""
    table = repetition_table(sequences, ns)
    return [table.row(i) for i in range(len(sequences))]


@dataclass(frozen=True)
class TokenPack:
    """The distinct sequences of a batch, end to end as ids (``flat``), with each one's length, and for each
    sequence of the batch the index of its distinct sequence (``which``)."""

    flat: np.ndarray      # uint64
    lengths: np.ndarray   # int64, one per distinct sequence
    which: np.ndarray     # int64, one per sequence


def repetition_table(sequences: Sequence[Sequence[Hashable]], ns: Sequence[int] = NGRAM_SIZES) -> RepetitionTable:
    """:func:`repetition_stats` as arrays."""
    return measure_repetition(pack_tokens(sequences), ns)


def pack_tokens(sequences: Sequence[Sequence[Hashable]]) -> TokenPack:
    """Token sequences (ids, or any hashable tokens such as words) as arrays; equal sequences are kept once."""
    index: dict[tuple, int] = {}
    which = np.array([index.setdefault(tuple(seq), len(index)) for seq in sequences], dtype=np.int64)
    distinct = list(index)
    lengths = np.fromiter(map(len, distinct), dtype=np.int64, count=len(distinct))
    return TokenPack(flat=_as_ids(distinct, int(lengths.sum())), lengths=lengths, which=which)


def measure_repetition(pack: TokenPack, ns: Sequence[int] = NGRAM_SIZES) -> RepetitionTable:
    """The statistics of every sequence in ``pack``, each distinct one measured once."""
    flat, lengths, k = pack.flat, pack.lengths, len(pack.lengths)
    # Sort keys are int64 (quicker to sort than uint64): the sequence's index above the key's bits.
    owner = np.repeat(np.arange(k, dtype=np.int64), lengths) << _HASH_BITS
    left = np.repeat(np.cumsum(lengths), lengths) - np.arange(len(flat))   # tokens from each position to the end
    unique, _ = _distinct_and_max(flat.view(np.int64), owner, left >= 1, k)
    most = {}
    h = np.zeros(len(flat), dtype=np.uint64)
    with np.errstate(over="ignore"):   # wrapping multiplication is the point of the hash
        for n in range(1, max(ns, default=0) + 1):
            # h[i] hashes the n tokens from i on; positions too close to the end are masked below
            m = max(len(h) - n + 1, 0)
            h[:m] = (h[:m] ^ flat[n - 1:]) * _MULTIPLIER
            if n in ns:
                keys = (h >> np.uint64(64 - _HASH_BITS)).view(np.int64)
                most[n] = _distinct_and_max(keys, owner, left >= n, k)[1]
    with np.errstate(divide="ignore", invalid="ignore"):   # empty sequences and ones shorter than n give 0
        ratio = np.where(lengths > 0, unique / lengths, 0.0)
        frequency = {n: np.where(lengths >= n, most[n] / (lengths - n + 1), 0.0) for n in ns}
    which = pack.which
    return RepetitionTable(tokens=lengths[which], unique_token_ratio=ratio[which],
                           most_repeated={n: most[n][which] for n in ns},
                           frequency={n: frequency[n][which] for n in ns})


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
