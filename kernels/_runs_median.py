"""The whole median-cutoff runs count in one pass over memory.

Two samples give a narrow band [lo, hi] that holds the middle ranks with overwhelming
probability: a small strided one a first band, then a large one (up to 2**20 values,
scanned against that band) a band about 0.4 % of the values wide. One pass then counts
the values below the band, counts the changes of the provisional indicator ``x >= lo``
and gathers the few values inside the band together with their two neighbours. The
exact median comes from the gathered values; the final threshold t lies in the band, so
only band values can change their indicator, and the run count is corrected from the
gathered neighbours alone (no second pass). The samples decide only the speed, never
the result: when the band misses the middle ranks, or ties crowd it, the caller falls
back to an exact O(n) median (histogram or radix passes) and a separate runs pass.
"""
from __future__ import annotations

import math

import numba as nb
import numpy as np
from numba.cpython.unsafe.numbers import trailing_zeros

from kernels import _median

# Values per chunk of the main pass: the chunk and its flag bytes stay in L1, and 255
# words of 0/1 bytes add up without a byte overflowing.
_CHUNK = 2040
_BYTES = np.uint64(0x00FF00FF00FF00FF)
_SHORTS = np.uint64(0x0001000100010001)
# First stage: 512 samples of 32 neighbours, short enough to select in L1, spread widely
# enough that correlated audio still gives a representative sample.
SAMPLE_CHUNKS = 512
SAMPLE_CHUNK = 32
# Half-width of a band in standard deviations of a sample rank.
BAND_Z = 4.0
# Second stage: 1024 blocks of up to 1024 values (at most an eighth of the input).
STAGE2_BLOCKS = 1024
STAGE2_BLOCK = 1024
# Above this fraction of band values (ties at the median) the gather costs more than the
# fallback's extra pass.
MAX_BAND_FRACTION = 0.05


@nb.njit(cache=True, nogil=True)
def _chunk_counts(y, lo, hi, flags):
    # (#y >= lo, #lo <= y <= hi, NaN count, changes of y >= lo inside y); flags[j] marks
    # the band values. The loops index a slice from 0, which lets LLVM drop the
    # negative-index checks and vectorise.
    cge = 0
    cin = 0
    cnn = 0
    cch = 0
    for j in range(y.size):
        v = y[j]
        f = (v >= lo) & (v <= hi)
        flags[j] = f
        cge += v >= lo
        cin += f
        cnn += v != v
    for j in range(1, y.size):
        cch += (y[j - 1] >= lo) != (y[j] >= lo)
    return cge, cin, cnn, cch


@nb.njit(cache=True, nogil=True)
def _chunk_gather(x, s, size, flags, words, vals, left, right, nin):
    # Appends the flagged values of x[s:s + size] and their neighbours in x. The flags
    # are visited eight at a time as 64-bit words, so the scalar work is proportional to
    # the few band values.
    n = x.size
    cap = vals.size
    for w in range(size // 8):
        bits = words[w]
        while bits != 0:
            j = 8 * w + np.int64(trailing_zeros(bits) >> np.uint64(3))
            bits &= bits - np.uint64(1)
            if nin < cap:
                i = s + j
                vals[nin] = x[i]
                left[nin] = x[i - 1] if i > 0 else x[i]
                right[nin] = x[i + 1] if i + 1 < n else x[i]
            nin += 1
    for j in range(size - size % 8, size):
        if flags[j]:
            if nin < cap:
                i = s + j
                vals[nin] = x[i]
                left[nin] = x[i - 1] if i > 0 else x[i]
                right[nin] = x[i + 1] if i + 1 < n else x[i]
            nin += 1
    return nin


@nb.njit(cache=True, nogil=True)
def _byte_flags(y, lo, hi, ge, band, nan):
    # One 0/1 byte per value: y >= lo, lo <= y <= hi, y is NaN. Byte stores vectorise
    # better than widening count adds.
    for j in range(y.size):
        v = y[j]
        ge[j] = v >= lo
        band[j] = (v >= lo) & (v <= hi)
        nan[j] = v != v


@nb.njit(cache=True, nogil=True)
def _word_sum(w):
    # Lane-wise sum of up to 255 words of 0/1 bytes (no byte overflows).
    acc = np.uint64(0)
    for k in range(w.size):
        acc += w[k]
    return acc


@nb.njit(cache=True, nogil=True)
def _word_changes(w, prev):
    # Lane-wise count of neighbouring bytes that differ; ``prev`` is the byte before w[0].
    acc = w[0] ^ ((w[0] << np.uint64(8)) | prev)
    for k in range(1, w.size):
        acc += w[k] ^ ((w[k] << np.uint64(8)) | (w[k - 1] >> np.uint64(56)))
    return acc


@nb.njit(cache=True, nogil=True)
def _byte_total(acc):
    # Sum of the eight bytes of acc (each < 256).
    h = (acc & _BYTES) + ((acc >> np.uint64(8)) & _BYTES)
    return np.int64((h * _SHORTS) >> np.uint64(48))


@nb.njit(cache=True, nogil=True)
def band_runs_pass(x, lo, hi, vals, left, right):
    """One pass: (#x < lo, #x > hi, #lo <= x <= hi, changes of x >= lo, any NaN); band
    values go to vals with their neighbours in left / right (the value itself at the
    ends) until the buffers are full."""
    n = x.size
    ge_lo = np.int64(0)
    nin = np.int64(0)
    nan = False
    ch = np.int64(0)
    ge = np.zeros(_CHUNK, np.uint8)
    band = np.zeros(_CHUNK, np.uint8)
    isnan = np.zeros(_CHUNK, np.uint8)
    gw = ge.view(np.uint64)
    bw = band.view(np.uint64)
    nw = isnan.view(np.uint64)
    m = n - n % _CHUNK
    prev = np.uint64(x[0] >= lo)
    for s in range(0, m, _CHUNK):
        _byte_flags(x[s:s + _CHUNK], lo, hi, ge, band, isnan)
        ge_lo += _byte_total(_word_sum(gw))
        ch += _byte_total(_word_changes(gw, prev))
        prev = gw[gw.size - 1] >> np.uint64(56)
        nan |= _word_sum(nw) != 0
        if _word_sum(bw) != 0:
            nin = _chunk_gather(x, s, _CHUNK, band, bw, vals, left, right, nin)
    if m < n:
        y = x[m:]
        cge, cin, cnn, cch = _chunk_counts(y, lo, hi, band)
        if m > 0:
            ch += (x[m - 1] >= lo) != (y[0] >= lo)
        ge_lo += cge
        nan |= cnn > 0
        ch += cch
        if cin > 0:
            nin = _chunk_gather(x, m, y.size, band, bw, vals, left, right, nin)
    return n - ge_lo, ge_lo - nin, nin, ch, nan


@nb.njit(cache=True, nogil=True)
def correct_changes(vals, left, right, lo, hi, t):
    """Change in the number of indicator changes and the number of band values below t
    when the threshold moves from lo to t (lo <= t <= hi)."""
    d = np.int64(0)
    below = np.int64(0)
    for j in range(vals.size):
        v = vals[j]
        new = v >= t
        below += not new
        a = left[j]
        d += np.int64((a >= t) != new) - np.int64(not (a >= lo))
        b = right[j]
        # A pair of two band values is counted once, from its right member.
        if b < lo or b > hi:
            d += np.int64((b >= t) != new) - np.int64(not (b >= lo))
    return d, below


@nb.njit(cache=True, nogil=True)
def band_pair(vals, k, lo, hi):
    """Ranks k and k + 1 (0-based) of the gathered band values (all in [lo, hi])."""
    buf = np.empty(vals.size, np.float64)
    for j in range(vals.size):
        buf[j] = vals[j]
    return _median._pair_select(buf, k, np.float64(lo), np.float64(hi))


@nb.njit(cache=True, nogil=True)
def sample_band(x):
    """(lo, hi, nan seen, fraction of the sample in the band, buffer capacity): a band of
    x's values that holds its middle ranks with overwhelming probability (x.size >= 2**20).

    Two stages: a small strided sample gives a first band; a large sample (up to 2**20
    values in 1024 blocks) is then scanned against that band, and its few band values give
    a band four times narrower, so the main pass gathers few values.
    """
    n = x.size
    k = (n - 1) // 2
    lo, hi, nan, frac = _median._sample_band(x, k, SAMPLE_CHUNKS, SAMPLE_CHUNK, BAND_Z)
    # Back to x's own type (the bounds are sample values), so comparisons stay narrow.
    bounds = np.empty(2, x.dtype)
    bounds[0] = lo
    bounds[1] = hi
    s1 = SAMPLE_CHUNKS * SAMPLE_CHUNK
    expect = max(BAND_Z / math.sqrt(s1), frac)
    if nan or frac > MAX_BAND_FRACTION:
        return bounds[0], bounds[1], nan, frac, 0
    blocks = STAGE2_BLOCKS
    length = max(64, min(STAGE2_BLOCK, n // (8 * blocks)))
    s2 = blocks * length
    step = (n - length) // (blocks - 1)
    cap2 = int(1.5 * expect * s2 + 4096)
    vals = np.empty(cap2, x.dtype)
    left = np.empty(cap2, x.dtype)
    right = np.empty(cap2, x.dtype)
    flags = np.zeros(STAGE2_BLOCK, np.uint8)
    words = flags.view(np.uint64)
    below = np.int64(0)
    nin = np.int64(0)
    for b in range(blocks):
        st = b * step
        y = x[st:st + length]
        cge, cin, cnn, _ = _chunk_counts(y, bounds[0], bounds[1], flags)
        if cnn > 0:
            return bounds[0], bounds[1], True, frac, 0
        below += length - cge
        if cin > 0:
            nin = _chunk_gather(x, st, length, flags, words, vals, left, right, nin)
    half = BAND_Z * 0.5 * math.sqrt(s2)
    q = (k + 0.5) / n * s2
    r_lo = int(q - half) - below
    r_hi = int(q + half) + 1 - below
    if nin <= cap2 and r_lo >= 0 and r_hi < nin and bounds[1] > bounds[0]:
        # Bounds at linear bucket edges around ranks r_lo and r_hi of the band values: a
        # bucket histogram instead of a selection. Exactness is not needed here, only
        # speed depends on it: the main pass checks that the band holds the middle ranks.
        band = vals[:nin]
        lo1 = np.float64(bounds[0])
        nbk = max(1, nin // 4)
        scale = nbk / (np.float64(bounds[1]) - lo1)
        counts = np.zeros(nbk + 1, np.int64)
        for j in range(nin):
            counts[min(nbk, np.int64((np.float64(band[j]) - lo1) * scale))] += 1
        c = np.int64(0)
        b_lo = -1
        b_hi = nbk
        for b in range(nbk + 1):
            c += counts[b]
            if b_lo < 0 and c > r_lo:
                b_lo = b
            if c > r_hi:
                b_hi = b
                break
        inside = np.int64(0)
        for b in range(b_lo, b_hi + 1):
            inside += counts[b]
        edge_lo = lo1 + b_lo / scale
        edge_hi = lo1 + (b_hi + 1) / scale
        if edge_lo > lo1:
            bounds[0] = edge_lo
        if edge_hi < np.float64(bounds[1]):
            bounds[1] = edge_hi
        expect = max(BAND_Z / math.sqrt(s2), inside / s2)
    cap = int(min(n, 1.5 * expect * n + 4096))
    return bounds[0], bounds[1], False, frac, cap
