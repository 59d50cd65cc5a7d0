"""Wald–Wolfowitz one-sample runs test: single arrays, batches of clips, and streams.

Default conventions are those of ``statsmodels.sandbox.stats.runs.runstest_1samp``:
the values are converted to float64, the indicator is ``x >= cutoff`` (values equal
to the cutoff count as "above"), R is the number of runs of that indicator,
E[R] = 2 n1 n2 / n + 1, Var[R] = 2 n1 n2 (2 n1 n2 - n) / (n^2 (n - 1)), z = (R - E[R]) / sd,
p = 2 P(Z > |z|), and

* below 50 samples the continuity correction of statsmodels applies: R - E[R] loses 0.5
  when it exceeds 0.5, gains 0.5 when it is below 0.5 (so 0 <= R - E[R] < 0.5 moves
  *away* from zero) and becomes 0 at exactly 0.5. ``correction="textbook"`` instead
  shrinks |R - E[R]| by 0.5 towards zero (0 when within 0.5); ``correction=False``
  uses none;
* a single run (every value on one side of the cutoff, e.g. a constant input) gets
  statsmodels' binomial p-value 2 * 2**-(min(n, 1024) - 1) and z = Phi^-1(p / 2).

Defined results where statsmodels has none: n < 2 (after dropping ties) gives z = 0,
p = 1 (no evidence either way); n = 2 with one value on each side has zero variance and
also gives z = 0, p = 1 (statsmodels returns an infinite or NaN z there).

``ties="drop"`` is the textbook / R ``randtests`` convention: values equal to the cutoff
(which is computed from all values) are removed before the runs are counted.

Counts are int64 and n1 * n2 is formed in float64, so nothing overflows for n up to 1e10
and far beyond.

Speed: from ``FUSED_MIN`` samples on, the default test (median cutoff, ties kept) finds
the exact median and counts the runs in one pass over memory (kernels/_runs_median.py);
otherwise, and whenever that pass cannot finish, an O(n) exact median (int16 histogram,
sampled band or radix selection for floats) is followed by a runs pass.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numba as nb
import numpy as np

from numba import types
from numba.extending import overload

from kernels import _median, _runs_median
from kernels._stream import chunks as _chunks, open_source, stream_median, stream_sum
from kernels._special import ndtri, norm_sf

SUPPORTED_DTYPES = (np.dtype(np.int16), np.dtype(np.float32), np.dtype(np.float64))
_CORRECTIONS = {True: 1, "statsmodels": 1, False: 0, None: 0, "none": 0, "textbook": 2}
_TIES = ("keep", "drop")


class WaldWolfowitzResult(NamedTuple):
    """Runs test result: z, two-sided p, number of runs, n1 (>= cutoff), n2 (< cutoff)
    and the cutoff used (fields are arrays for the batched form)."""
    z: float | np.ndarray
    p: float | np.ndarray
    runs: int | np.ndarray
    n1: int | np.ndarray
    n2: int | np.ndarray
    cutoff: float | np.ndarray


# ---------------------------------------------------------------- numba kernels

@nb.njit(cache=True, nogil=True)
def ww_statistic(n1, n2, runs, mode):
    """(z, p) from the counts; mode 0 no correction, 1 statsmodels, 2 textbook."""
    n = n1 + n2
    if n < 2:
        return 0.0, 1.0
    if runs == 1:
        pval = 1.0 / 2.0 ** (min(n, 1024) - 1)
        return ndtri(pval), pval * 2.0
    fn = float(n)
    npn = float(n1) * float(n2)
    rvar = 2.0 * npn * (2.0 * npn - fn) / fn ** 2.0 / (fn - 1.0)
    if not rvar > 0.0:
        return 0.0, 1.0
    rmean = 2.0 * npn / fn + 1.0
    d = runs - rmean
    if n >= 50 or mode == 0:
        z = d
    elif mode == 1:
        if d > 0.5:
            z = d - 0.5
        elif d < 0.5:
            z = d + 0.5
        else:
            z = 0.0
    else:
        if d > 0.5:
            z = d - 0.5
        elif d < -0.5:
            z = d + 0.5
        else:
            z = 0.0
    z /= math.sqrt(rvar)
    return z, 2.0 * norm_sf(abs(z))


@nb.njit(cache=True, nogil=True)
def runs_keep(x, t, prev):
    """Indicator x >= t over x, continuing a previous indicator ``prev`` (-1: none).

    Returns (n1, changes, nan_count, last indicator). Vectorises: no branches inside.
    """
    n = x.size
    if n == 0:
        return np.int64(0), np.int64(0), np.int64(0), prev
    first = np.int64(x[0] >= t)
    n1 = first
    ch = np.int64(0)
    nn = np.int64(x[0] != x[0])
    if prev >= 0:
        ch += first != prev
    for i in range(1, n):
        a = x[i - 1] >= t
        b = x[i] >= t
        n1 += b
        ch += a != b
        nn += x[i] != x[i]
    return n1, ch, nn, np.int64(x[n - 1] >= t)


@nb.njit(cache=True, nogil=True)
def runs_drop(x, t, eq_possible, prev):
    """As runs_keep, but values equal to the cutoff are skipped (eq_possible says whether
    x == t means x == cutoff). Returns (n1, n2, changes, nan_count, last kept indicator)."""
    n1 = np.int64(0)
    n2 = np.int64(0)
    ch = np.int64(0)
    nn = np.int64(0)
    last = prev
    for i in range(x.size):
        v = x[i]
        if v != v:
            nn += 1
            continue
        if eq_possible and v == t:
            continue
        s = np.int64(v >= t)
        if s == 1:
            n1 += 1
        else:
            n2 += 1
        if last >= 0 and s != last:
            ch += 1
        last = s
    return n1, n2, ch, nn, last


def _clip_median(x, fine):
    """(np.median of x, ok) inside numba: histogram for int16, sampled band for floats."""


@overload(_clip_median, jit_options={"cache": True, "nogil": True})
def _clip_median_impl(x, fine):
    if x.dtype == types.int16:
        return lambda x, fine: (_median.median_i16_clip(x, fine), True)
    return lambda x, fine: _median.median_float(x)


def _single_median(x):
    """(np.median of one long array, ok): a full int16 histogram (its bin scan is
    negligible next to n), or the sampled band for floats."""


@overload(_single_median, jit_options={"cache": True, "nogil": True})
def _single_median_impl(x):
    if x.dtype == types.int16:
        return lambda x: (_median.median_i16(x), True)
    return lambda x: _median.median_float(x)


def _clip_mean(x):
    """np.mean of x (as float64) inside numba, bit for bit."""


@overload(_clip_mean, jit_options={"cache": True, "nogil": True})
def _clip_mean_impl(x):
    if x.dtype == types.int16:
        return lambda x: float(_median.int_sum(x)) / x.size
    return lambda x: _median.pairwise_sum(x, 0, x.size) / x.size


def _threshold(x, c):
    """(t, all_below, eq): x >= t  <=>  float64(x) >= c for x's dtype; all_below when no
    value of the dtype reaches c; eq when x == t means x == c."""


@overload(_threshold, jit_options={"cache": True, "nogil": True})
def _threshold_impl(x, c):
    if x.dtype == types.int16:
        def impl(x, c):
            t = math.ceil(c)
            if t > 32767.0:
                return np.int16(32767), True, False
            if t < -32768.0:
                t = -32768.0
            return np.int16(t), False, float(t) == c
        return impl
    if x.dtype == types.float32:
        def impl(x, c):
            t = np.float32(c)
            if np.float64(t) < c:
                t = np.nextafter(t, np.float32(np.inf))
            return t, False, np.float64(t) == c
        return impl
    return lambda x, c: (np.float64(c), False, True)


@nb.njit(cache=True, nogil=True)
def _score_one(x, cutoff_kind, cutoff_value, mode, drop, fine):
    # One clip: (z, p, runs, n1, n2, cutoff, ok). cutoff_kind 0 median, 1 mean, 2 value.
    if cutoff_kind == 0:
        c, ok = _clip_median(x, fine)
        if not ok:
            return 0.0, 1.0, np.int64(0), np.int64(0), np.int64(0), c, False
    elif cutoff_kind == 1:
        c = _clip_mean(x)
    else:
        c = cutoff_value
    n = x.size
    t, all_below, eq = _threshold(x, c)
    if all_below:
        z, p = ww_statistic(np.int64(0), np.int64(n), np.int64(1), mode)
        return z, p, np.int64(1), np.int64(0), np.int64(n), c, True
    if drop:
        n1, n2, ch, nn, last = runs_drop(x, t, eq, np.int64(-1))
    else:
        n1, ch, nn, last = runs_keep(x, t, np.int64(-1))
        n2 = n - n1 - nn
    if nn > 0:
        return 0.0, 1.0, np.int64(0), np.int64(0), np.int64(0), c, False
    r = ch + 1 if n1 + n2 > 0 else np.int64(0)
    z, p = ww_statistic(n1, n2, r, mode)
    return z, p, r, n1, n2, c, True


@nb.njit(cache=True, nogil=True)
def _threshold_of(x, c):
    return _threshold(x, c)


# From this length on, the median and the runs come from one pass (kernels/_runs_median.py).
FUSED_MIN = 1 << 20


@nb.njit(cache=True, nogil=True)
def _fused_median_runs(x):
    # (status, median, n1, runs): status 1 done, 0 fall back, -1 NaN in x.
    n = x.size
    lo, hi, nan, frac, cap = _runs_median.sample_band(x)
    if nan:
        return -1, 0.0, np.int64(0), np.int64(0)
    if frac > _runs_median.MAX_BAND_FRACTION:
        return 0, 0.0, np.int64(0), np.int64(0)
    vals = np.empty(cap, x.dtype)
    left = np.empty(cap, x.dtype)
    right = np.empty(cap, x.dtype)
    clo, _, nin, ch, nn = _runs_median.band_runs_pass(x, lo, hi, vals, left, right)
    if nn:
        return -1, 0.0, np.int64(0), np.int64(0)
    k1 = (n - 1) // 2
    if nin > cap or clo > k1 or n // 2 >= clo + nin:
        return 0, 0.0, np.int64(0), np.int64(0)
    a, b = _runs_median.band_pair(vals[:nin], k1 - clo, lo, hi)
    c = a if n % 2 == 1 else (a + b) / 2.0
    t, _, _ = _threshold(x, c)
    d, below_t = _runs_median.correct_changes(vals[:nin], left[:nin], right[:nin], lo, hi, t)
    return 1, c, n - clo - below_t, ch + d + 1


@nb.njit(cache=True, nogil=True)
def _score_single(x, cutoff_kind, cutoff_value, mode, drop):
    fine = np.zeros(1, np.int32)
    if cutoff_kind == 0 and not drop and x.size >= FUSED_MIN:
        status, c, n1, r = _fused_median_runs(x)
        if status < 0:
            return 0.0, 1.0, np.int64(0), np.int64(0), np.int64(0), c, False
        if status == 1:
            n2 = x.size - n1
            z, p = ww_statistic(n1, n2, r, mode)
            return z, p, r, n1, n2, c, True
    if cutoff_kind == 0:
        c, ok = _single_median(x)
        if not ok:
            return 0.0, 1.0, np.int64(0), np.int64(0), np.int64(0), c, False
        return _score_one(x, 2, c, mode, drop, fine)
    return _score_one(x, cutoff_kind, cutoff_value, mode, drop, fine)


@nb.njit(cache=True, nogil=True, parallel=True)
def _score_batch(x, cutoff_kind, cutoff_value, mode, drop, nwork, z, p, r, n1, n2, cut, ok):
    nclips = x.shape[0]
    for w in nb.prange(nwork):
        fine = np.zeros(_median.CLIP_SCRATCH, np.int32)
        for c in range(w * nclips // nwork, (w + 1) * nclips // nwork):
            res = _score_one(x[c], cutoff_kind, cutoff_value, mode, drop, fine)
            z[c], p[c], r[c], n1[c], n2[c], cut[c], ok[c] = res


# ---------------------------------------------------------------- argument checks

def check_input(x: np.ndarray, what: str, ndim: int | None = None) -> None:
    """The randomness tests' argument check: a supported dtype, ``ndim`` dims (if given), no empty axis."""
    if x.dtype not in SUPPORTED_DTYPES:
        raise ValueError(f"{what}: dtype {x.dtype} is not supported; use int16 PCM, float32 "
                         f"or float64 (convert first, e.g. x.astype(np.float64))")
    if ndim is not None and x.ndim != ndim:
        shape = "1-D array" if ndim == 1 else "[clips, samples] array"
        raise ValueError(f"{what}: expected a {shape}, got shape {x.shape}")
    if 0 in x.shape:
        raise ValueError(f"{what}: empty input of shape {x.shape}")


def _parse(cutoff, correction, ties) -> tuple[int, float, int, bool]:
    if isinstance(cutoff, str):
        if cutoff not in ("median", "mean"):
            raise ValueError(f"cutoff must be 'median', 'mean' or a number, got {cutoff!r}")
        kind, value = (0 if cutoff == "median" else 1), 0.0
    else:
        try:
            value = float(cutoff)
        except (TypeError, ValueError):
            raise ValueError(f"cutoff must be 'median', 'mean' or a number, got {cutoff!r}") from None
        if math.isnan(value):
            raise ValueError("cutoff is NaN")
        kind = 2
    key = correction.lower() if isinstance(correction, str) else correction
    if key not in _CORRECTIONS or isinstance(key, (int, float)) and not isinstance(key, bool):
        raise ValueError(f"correction must be True/'statsmodels', 'textbook' or False, got {correction!r}")
    if ties not in _TIES:
        raise ValueError(f"ties must be 'keep' or 'drop', got {ties!r}")
    return kind, value, _CORRECTIONS[key], ties == "drop"


def wald_wolfowitz(x, cutoff="median", correction=True, ties="keep") -> WaldWolfowitzResult:
    """Wald–Wolfowitz runs test of a 1-D int16/float32/float64 array (statsmodels' conventions)."""
    x = np.asarray(x)
    check_input(x, "wald_wolfowitz", 1)
    kind, value, mode, drop = _parse(cutoff, correction, ties)
    x = np.ascontiguousarray(x)
    z, p, r, n1, n2, c, ok = _score_single(x, kind, value, mode, drop)
    if not ok:
        raise ValueError("wald_wolfowitz: input contains NaN")
    return WaldWolfowitzResult(float(z), float(p), int(r), int(n1), int(n2), float(c))


def wald_wolfowitz_batch(x_CxT, cutoff="median", correction=True, ties="keep",
                         num_threads: int | None = None) -> WaldWolfowitzResult:
    """Runs test of every row of a [clips, samples] array, in parallel over clips."""
    x = np.asarray(x_CxT)
    check_input(x, "wald_wolfowitz_batch", 2)
    if x.shape[1] >= 2 ** 31:
        raise ValueError("wald_wolfowitz_batch: clips of 2**31 samples or more; use wald_wolfowitz_stream")
    kind, value, mode, drop = _parse(cutoff, correction, ties)
    x = np.ascontiguousarray(x)
    c = x.shape[0]
    z, p, cut = np.empty(c), np.empty(c), np.empty(c)
    r, n1, n2 = np.empty(c, np.int64), np.empty(c, np.int64), np.empty(c, np.int64)
    ok = np.empty(c, np.bool_)
    with _threads(num_threads):
        nwork = min(c, 4 * nb.get_num_threads())
        _score_batch(x, kind, value, mode, drop, nwork, z, p, r, n1, n2, cut, ok)
    if not ok.all():
        bad = np.flatnonzero(~ok)
        raise ValueError(f"wald_wolfowitz_batch: NaN in clip(s) {bad[:10].tolist()}"
                         f"{' ...' if bad.size > 10 else ''}")
    return WaldWolfowitzResult(z, p, r, n1, n2, cut)


class _threads:
    """Sets numba's thread count for a block (None keeps the current one)."""

    def __init__(self, n):
        self.n = n

    def __enter__(self):
        self.old = nb.get_num_threads()
        if self.n is not None:
            nb.set_num_threads(max(1, min(int(self.n), nb.config.NUMBA_NUM_THREADS)))

    def __exit__(self, *exc):
        nb.set_num_threads(self.old)


# ---------------------------------------------------------------- streaming

def wald_wolfowitz_stream(source, cutoff="median", correction=True, ties="keep",
                          dtype=None, chunk_size: int = 1 << 22) -> WaldWolfowitzResult:
    """Runs test over a file or memmap too large for memory, in chunks; equals the in-memory
    result exactly (one pass for the cutoff, one for the runs)."""
    arr = open_source(source, dtype)
    check_input(arr, "wald_wolfowitz_stream")
    n = arr.shape[0]
    kind, value, mode, drop = _parse(cutoff, correction, ties)
    chunk = max(8, int(chunk_size))
    if kind == 0:
        c = stream_median(arr, chunk)
    elif kind == 1:
        if arr.dtype == np.int16:
            c = float(sum(int(_median.int_sum(p)) for p in _chunks(arr, chunk))) / n
        else:
            c = stream_sum(arr, 0, n, chunk) / n
    else:
        c = value
    t, all_below, eq = _threshold_of(np.ascontiguousarray(arr[:1]), float(c))
    if all_below:
        z, p = ww_statistic(np.int64(0), np.int64(n), np.int64(1), mode)
        return WaldWolfowitzResult(float(z), float(p), 1, 0, n, float(c))
    n1 = n2 = ch = nn = 0
    last = np.int64(-1)
    for part in _chunks(arr, chunk):
        if drop:
            a1, a2, ac, an, last = runs_drop(part, t, eq, last)
        else:
            a1, ac, an, last = runs_keep(part, t, last)
            a2 = part.size - a1 - an
        n1, n2, ch, nn = n1 + int(a1), n2 + int(a2), ch + int(ac), nn + int(an)
    if nn:
        raise ValueError("wald_wolfowitz_stream: input contains NaN")
    r = ch + 1 if n1 + n2 > 0 else 0
    z, p = ww_statistic(np.int64(n1), np.int64(n2), np.int64(r), mode)
    return WaldWolfowitzResult(float(z), float(p), int(r), int(n1), int(n2), float(c))
