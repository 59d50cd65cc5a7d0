"""Cox–Stuart trend test: single arrays, batches of clips, and streams.

x[i] is paired with x[i + c], c = ceil(n / 2), for i < n - c (the middle value of an odd n
is unused); tied pairs are dropped. The statistic is the number of pairs that increase,
S ~ Binomial(m, 1/2) under no trend, m = number of untied pairs. The p-value is that of
``scipy.stats.binomtest(S, m, 0.5, alternative)`` (two-sided: outcomes at most as likely
as S, scipy's 1e-7 relative tolerance included), computed by summing the binomial pmf
(Loader's saddle-point terms) from the tail inwards: exact up to rounding for any m, with
O(sqrt(m)) terms. Defined result where scipy has none: m = 0 (n < 2 or every pair tied)
gives statistic 0, p = 1.
"""
from __future__ import annotations

from typing import NamedTuple

import numba as nb
import numpy as np

from kernels._special import binom_test_half
from kernels.runs import _threads, check_input, open_source

_ALTERNATIVES = {"two-sided": 0, "increasing": 1, "greater": 1, "decreasing": 2, "less": 2}


class CoxStuartResult(NamedTuple):
    """Cox–Stuart result: increasing pairs (statistic), untied pairs, p-value (arrays when batched)."""
    statistic: int | np.ndarray
    n_pairs: int | np.ndarray
    p: float | np.ndarray


@nb.njit(cache=True, nogil=True)
def sign_counts(a, b):
    """(#b > a, #b < a, NaN count) over aligned halves a, b. Vectorises."""
    plus = np.int64(0)
    minus = np.int64(0)
    nn = np.int64(0)
    for i in range(a.size):
        u = a[i]
        v = b[i]
        plus += v > u
        minus += v < u
        nn += (u != u) | (v != v)
    return plus, minus, nn


@nb.njit(cache=True, nogil=True)
def _one(x, alternative):
    n = x.size
    c = (n + 1) // 2
    m = n - c
    plus, minus, nn = sign_counts(x[:m], x[c:])
    if n % 2 == 1:
        nn += x[c - 1] != x[c - 1]
    pairs = plus + minus
    return plus, pairs, binom_test_half(plus, pairs, alternative), nn == 0


@nb.njit(cache=True, nogil=True, parallel=True)
def _batch(x, alternative, stat, pairs, p, ok):
    for i in nb.prange(x.shape[0]):
        stat[i], pairs[i], p[i], ok[i] = _one(x[i], alternative)


def _alt(alternative) -> int:
    if alternative not in _ALTERNATIVES:
        raise ValueError(f"alternative must be one of {sorted(_ALTERNATIVES)}, got {alternative!r}")
    return _ALTERNATIVES[alternative]


def cox_stuart(x, alternative="two-sided") -> CoxStuartResult:
    """Cox–Stuart trend test of a 1-D int16/float32/float64 array."""
    x = np.ascontiguousarray(np.asarray(x))
    check_input(x, "cox_stuart", 1)
    s, m, p, ok = _one(x, _alt(alternative))
    if not ok:
        raise ValueError("cox_stuart: input contains NaN")
    return CoxStuartResult(int(s), int(m), float(p))


def cox_stuart_batch(x_CxT, alternative="two-sided", num_threads: int | None = None) -> CoxStuartResult:
    """Cox–Stuart test of every row of a [clips, samples] array, in parallel over clips."""
    x = np.ascontiguousarray(np.asarray(x_CxT))
    check_input(x, "cox_stuart_batch", 2)
    c = x.shape[0]
    stat, pairs = np.empty(c, np.int64), np.empty(c, np.int64)
    p, ok = np.empty(c), np.empty(c, np.bool_)
    with _threads(num_threads):
        _batch(x, _alt(alternative), stat, pairs, p, ok)
    if not ok.all():
        raise ValueError(f"cox_stuart_batch: NaN in clip(s) {np.flatnonzero(~ok)[:10].tolist()}")
    return CoxStuartResult(stat, pairs, p)


def cox_stuart_stream(source, alternative="two-sided", dtype=None,
                      chunk_size: int = 1 << 22) -> CoxStuartResult:
    """Cox–Stuart test over a file or memmap in chunks (one pass); equals the in-memory result."""
    arr = open_source(source, dtype)
    check_input(arr, "cox_stuart_stream", 1)
    alt = _alt(alternative)
    n = arr.shape[0]
    c = (n + 1) // 2
    m = n - c
    chunk = max(1, int(chunk_size))
    plus = minus = nn = 0
    for s in range(0, m, chunk):
        e = min(m, s + chunk)
        a = np.ascontiguousarray(arr[s:e])
        b = np.ascontiguousarray(arr[c + s:c + e])
        dp, dm, dn = sign_counts(a, b)
        plus, minus, nn = plus + int(dp), minus + int(dm), nn + int(dn)
    if n % 2 == 1 and np.isnan(arr[c - 1]):
        nn += 1
    if nn:
        raise ValueError("cox_stuart_stream: input contains NaN")
    pairs = plus + minus
    return CoxStuartResult(plus, pairs, float(binom_test_half(np.int64(plus), np.int64(pairs), alt)))
