"""Exact medians in O(n) (no full sort) and numpy-identical means, as numba kernels.

The median follows ``np.median`` to the bit: the middle value for odd n and
``(a + b) / 2`` in float64 of the two middle values for even n.

* int16: the sampled band below when ties leave it narrow, else one histogram pass
  (65536 bins) and a scan of the bins; short clips use a histogram with a high-byte
  index so that only touched bins are scanned and cleared.
* floats, in memory: a small strided sample gives a narrow value band that holds the
  middle ranks with overwhelming probability; one vectorised pass counts the values below
  and above the band and gathers the few inside it; linear buckets and a quickselect
  over those find the middle values. If the band misses (strongly correlated data), a
  band eight times wider is tried, then radix selection (kernels/_radix.py), so the answer
  never depends on the sample, only the time does, and the worst case stays O(n).
* floats, streamed: see kernels/_stream.py (radix selection, 16 bits a pass).
"""
from __future__ import annotations

import math

import numba as nb
import numpy as np

from kernels._radix import partition_around, radix_select

I16_BINS = 65536
_SAMPLE_CHUNKS = 256
_SAMPLE_CHUNK = 256
_BAND_Z = 4.0


# ---------------------------------------------------------------- int16 histograms

@nb.njit(cache=True, nogil=True)
def hist_i16(x, counts):
    """Adds the values of int16 ``x`` to ``counts`` (int64[65536], bin = value + 32768)."""
    # int32 bins in chunks of 2**30 values: half the cache footprint of int64 bins, which
    # is what a histogram of wide-ranging samples is bound by. Four interleaved
    # sub-histograms: runs of equal values (quiet audio) would otherwise chain every
    # increment on the previous one's store (2.4x faster on such data, same on wide data).
    h = np.zeros((4, I16_BINS), np.int32)
    step = 1 << 30
    for s in range(0, x.size, step):
        e = min(x.size, s + step)
        m = e - (e - s) % 4
        for i in range(s, m, 4):
            h[0, np.int64(x[i]) + 32768] += 1
            h[1, np.int64(x[i + 1]) + 32768] += 1
            h[2, np.int64(x[i + 2]) + 32768] += 1
            h[3, np.int64(x[i + 3]) + 32768] += 1
        for i in range(m, e):
            h[0, np.int64(x[i]) + 32768] += 1
        for b in range(I16_BINS):
            counts[b] += np.int64(h[0, b]) + h[1, b] + h[2, b] + h[3, b]
            h[0, b] = 0
            h[1, b] = 0
            h[2, b] = 0
            h[3, b] = 0


@nb.njit(cache=True, nogil=True)
def kth_pair_from_hist(counts, k):
    """The k-th and (k+1)-th smallest values (0-based) from an int16 histogram."""
    c = np.int64(0)
    a = -1
    for b in range(I16_BINS):
        c += counts[b]
        if a < 0 and c > k:
            a = b
        if c > k + 1:
            return a - 32768, b - 32768
    return a - 32768, a - 32768


@nb.njit(cache=True, nogil=True)
def median_i16(x):
    """np.median of an int16 array (float64): the sampled band of median_float when ties
    leave it narrow (a vectorised pass), else one histogram pass (random increments)."""
    n = x.size
    if n >= 1 << 20:
        k1 = (n - 1) // 2
        lo, hi, _, frac = _sample_band(x, k1, _SAMPLE_CHUNKS, _SAMPLE_CHUNK, _BAND_Z)
        if frac <= 0.04:
            buf = np.empty(int(min(n, 2.0 * frac * n + 4096)), np.float64)
            clo, chi, nin = _band_pass(x, lo, hi, buf)
            if nin <= buf.size and clo <= k1 and k1 + 1 < clo + nin:
                a, b = _pair_select(buf[:nin], k1 - clo, np.float64(lo), np.float64(hi))
                if n % 2 == 1:
                    return a
                return (a + b) / 2.0
    counts = np.zeros(I16_BINS, np.int64)
    hist_i16(x, counts)
    return median_from_hist(counts, n)


@nb.njit(cache=True, nogil=True)
def median_from_hist(counts, n):
    """np.median from an int16 histogram of n values."""
    a, b = kth_pair_from_hist(counts, (n - 1) // 2)
    if n % 2 == 1:
        return float(a)
    return (float(a) + float(b)) / 2.0


CLIP_SCRATCH = I16_BINS + 256


@nb.njit(cache=True, nogil=True)
def median_i16_clip(x, h):
    """np.median of a short int16 clip with reusable zeroed scratch ``h``
    (int32[CLIP_SCRATCH]: a 65536-bin histogram and a 256-bin high-byte histogram), left
    zeroed again. Costs O(n + touched bins), not O(65536), per clip."""
    n = x.size
    for i in range(n):
        b = np.int64(x[i]) + 32768
        h[b] += 1
        h[I16_BINS + (b >> 8)] += 1
    k = (n - 1) // 2
    va = 0
    vb = 0
    got_a = False
    c = 0
    for hb in range(256):
        ch = h[I16_BINS + hb]
        if c + ch <= k:
            c += ch
            continue
        base = hb << 8
        for lb in range(256):
            c += h[base + lb]
            if not got_a and c > k:
                va = base + lb
                got_a = True
            if c > k + 1:
                vb = base + lb
                break
        if c > k + 1:
            break
    if not (c > k + 1):
        vb = va
    for hb in range(256):
        if h[I16_BINS + hb] != 0:
            h[I16_BINS + hb] = 0
            base = hb << 8
            for lb in range(256):
                h[base + lb] = 0
    if n % 2 == 1:
        return float(va - 32768)
    return (float(va - 32768) + float(vb - 32768)) / 2.0


# ---------------------------------------------------------------- selection for floats

@nb.njit(cache=True, nogil=True)
def _insertion_sort(a, lo, hi):
    for i in range(lo + 1, hi + 1):
        v = a[i]
        j = i - 1
        while j >= lo and a[j] > v:
            a[j + 1] = a[j]
            j -= 1
        a[j + 1] = v


@nb.njit(cache=True, nogil=True)
def select_inplace(a, k):
    """Rearranges float ``a`` so a[k] is its k-th smallest, smaller left, larger right.

    Hoare-partition quickselect with median-of-3 pivots; after 4*log2(n) rounds without
    convergence (adversarial input) a radix selection and a three-way partition finish
    the job, so the worst case stays O(n).
    """
    lo = 0
    hi = a.size - 1
    budget = 4 * (int(math.log2(a.size + 1)) + 1)
    while hi - lo > 16:
        if budget == 0:
            part = a[lo:hi + 1]
            v = radix_select(part, k - lo)
            partition_around(part, v)
            return a[k]
        budget -= 1
        mid = lo + (hi - lo) // 2
        if a[mid] < a[lo]:
            a[mid], a[lo] = a[lo], a[mid]
        if a[hi] < a[lo]:
            a[hi], a[lo] = a[lo], a[hi]
        if a[hi] < a[mid]:
            a[hi], a[mid] = a[mid], a[hi]
        p = a[mid]
        i = lo
        j = hi
        while i <= j:
            while a[i] < p:
                i += 1
            while a[j] > p:
                j -= 1
            if i <= j:
                a[i], a[j] = a[j], a[i]
                i += 1
                j -= 1
        if k <= j:
            hi = j
        elif k >= i:
            lo = i
        else:
            return a[k]
    _insertion_sort(a, lo, hi)
    return a[k]


@nb.njit(cache=True, nogil=True)
def _min_from(a, start):
    m = a[start]
    for i in range(start + 1, a.size):
        if a[i] < m:
            m = a[i]
    return m


@nb.njit(cache=True, nogil=True)
def _median_of_buffer(buf, k):
    # Middle pair (ranks k, k+1) of a scratch float64 buffer; destroys its order.
    a = select_inplace(buf, k)
    b = _min_from(buf, k + 1) if k + 1 < buf.size else a
    return a, b


@nb.njit(cache=True, nogil=True)
def median_float_copy(x):
    """np.median of a float array via quickselect on a float64 copy (small clips, fallback)."""
    n = x.size
    buf = np.empty(n, np.float64)
    for i in range(n):
        buf[i] = x[i]
    k = (n - 1) // 2
    a, b = _median_of_buffer(buf, k)
    if n % 2 == 1:
        return a
    return (a + b) / 2.0


@nb.njit(cache=True, nogil=True)
def _band_pass(x, lo, hi, buf):
    # Counts x < lo and x > hi and gathers lo <= x <= hi into buf (until full). Works in
    # L1-sized chunks: a vectorised count, then (only when the chunk has band values) a
    # vectorised flag pass whose flags are scanned eight at a time as uint64 words, so the
    # scalar work is proportional to the few band values. NaN falls in none of the three
    # classes, so the caller sees it as a shortfall of the total.
    n = x.size
    clo = np.int64(0)
    chi = np.int64(0)
    nin = np.int64(0)
    cap = buf.size
    C = 2048
    flags = np.zeros(C, np.uint8)
    words = flags.view(np.uint64)
    nfull = n - n % C
    for s in range(0, nfull, C):
        cl = 0
        ch = 0
        for j in range(C):
            v = x[s + j]
            cl += v < lo
            ch += v > hi
        clo += cl
        chi += ch
        if cl + ch != C:
            for j in range(C):
                v = x[s + j]
                flags[j] = (v >= lo) & (v <= hi)
            for w in range(C // 8):
                if words[w] != 0:
                    for j in range(8 * w, 8 * w + 8):
                        if flags[j]:
                            if nin < cap:
                                buf[nin] = x[s + j]
                            nin += 1
    for i in range(nfull, n):
        v = x[i]
        if v < lo:
            clo += 1
        elif v > hi:
            chi += 1
        elif v >= lo and v <= hi:
            if nin < cap:
                buf[nin] = v
            nin += 1
    return clo, chi, nin


@nb.njit(cache=True, nogil=True)
def _sample_band(x, k, nchunks, chunk, z):
    # Values bracketing rank k of x from a sample of nchunks runs of `chunk` neighbours:
    # the sample ranks k/n*s -+ z standard deviations. Returns (lo, hi, nan_in_sample,
    # fraction of the sample inside [lo, hi]: large when ties crowd the middle).
    n = x.size
    s = nchunks * chunk
    sample = np.empty(s, x.dtype)
    step = (n - chunk) // (nchunks - 1)
    for c in range(nchunks):
        base = c * step
        for j in range(chunk):
            sample[c * chunk + j] = x[base + j]
    for i in range(s):
        if sample[i] != sample[i]:
            return sample[0], sample[0], True, 1.0
    half_width = z * 0.5 * math.sqrt(s)
    q = (k + 0.5) / n * s
    r_lo = max(0, int(q - half_width))
    r_hi = min(s - 1, int(q + half_width) + 1)
    lo = select_inplace(sample, r_lo)
    # Everything right of r_lo is now >= lo, so rank r_hi is found in that part alone.
    hi = select_inplace(sample[r_lo:], r_hi - r_lo)
    inside = 0
    for i in range(s):
        inside += (sample[i] >= lo) & (sample[i] <= hi)
    return lo, hi, False, inside / s


@nb.njit(cache=True, nogil=True)
def _pair_select(buf, k, lo, hi):
    # Ranks k and k+1 of a float64 scratch buffer whose values lie in [lo, hi]. The band
    # is narrow, so the values are close to uniform in it: a linear bucket histogram
    # (order preserving) finds the buckets of the two ranks, and only their few values
    # go to the quickselect. Never wrong, only slower, when the values are not uniform.
    n = buf.size
    if n <= 64 or not hi > lo:
        return _median_of_buffer(buf, k)
    nbk = n // 4
    scale = nbk / (hi - lo)
    counts = np.zeros(nbk + 1, np.int64)
    for i in range(n):
        counts[min(nbk - 1, np.int64((buf[i] - lo) * scale))] += 1
    c = np.int64(0)
    b1 = -1
    b2 = -1
    below = np.int64(0)
    for j in range(nbk):
        if b1 < 0 and c + counts[j] > k:
            b1 = j
            below = c
        c += counts[j]
        if c > k + 1:
            b2 = j
            break
    if b2 < 0:
        b2 = nbk - 1
    m = np.int64(0)
    for j in range(b1, b2 + 1):
        m += counts[j]
    sub = np.empty(m, np.float64)
    m = 0
    for i in range(n):
        j = min(nbk - 1, np.int64((buf[i] - lo) * scale))
        if j >= b1 and j <= b2:
            sub[m] = buf[i]
            m += 1
    return _median_of_buffer(sub, k - below)


@nb.njit(cache=True, nogil=True)
def median_float(x):
    """np.median of a float array in O(n): sampled band, one gathering pass, selection.

    Returns (median, ok); ok is False when x holds NaN (the median is then meaningless).
    """
    n = x.size
    if n < 1 << 16:
        for i in range(n):
            if x[i] != x[i]:
                return np.nan, False
        return median_float_copy(x), True
    k1 = (n - 1) // 2
    k2 = n // 2
    found = False
    a = 0.0
    b = 0.0
    # A narrow band first; a much wider one if the sample was unlucky (strongly
    # correlated neighbours); an exact selection over a copy if both miss.
    for z in (_BAND_Z, 8.0 * _BAND_Z):
        lo, hi, nan, _ = _sample_band(x, k1, _SAMPLE_CHUNKS, _SAMPLE_CHUNK, z)
        if nan:
            return np.nan, False
        s = _SAMPLE_CHUNKS * _SAMPLE_CHUNK
        expect = min(1.0, 2.2 * z * 0.5 * math.sqrt(s) / s) * n
        buf = np.empty(int(min(n, 1.5 * expect + 4096)), np.float64)
        clo, chi, nin = _band_pass(x, lo, hi, buf)
        if clo + chi + nin != n:
            return np.nan, False
        if nin <= buf.size and clo <= k1 and k2 < clo + nin:
            a, b = _pair_select(buf[:nin], k1 - clo, np.float64(lo), np.float64(hi))
            found = True
            break
    if not found:
        # Radix passes: O(n) whatever the data, and no copy.
        a = radix_select(x, k1)
        b = radix_select(x, k2) if k2 != k1 else a
    if n % 2 == 1:
        return a, True
    return (a + b) / 2.0, True


# ---------------------------------------------------------------- numpy's pairwise sum

@nb.njit(cache=True, nogil=True)
def _pairwise_leaf(a, start, n):
    # numpy's leaf: plain loop below 8, else 8 accumulators combined as a tree.
    if n < 8:
        res = 0.0
        for i in range(n):
            res += np.float64(a[start + i])
        return res
    r0 = np.float64(a[start + 0])
    r1 = np.float64(a[start + 1])
    r2 = np.float64(a[start + 2])
    r3 = np.float64(a[start + 3])
    r4 = np.float64(a[start + 4])
    r5 = np.float64(a[start + 5])
    r6 = np.float64(a[start + 6])
    r7 = np.float64(a[start + 7])
    i = 8
    while i < n - (n % 8):
        r0 += np.float64(a[start + i + 0])
        r1 += np.float64(a[start + i + 1])
        r2 += np.float64(a[start + i + 2])
        r3 += np.float64(a[start + i + 3])
        r4 += np.float64(a[start + i + 4])
        r5 += np.float64(a[start + i + 5])
        r6 += np.float64(a[start + i + 6])
        r7 += np.float64(a[start + i + 7])
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += np.float64(a[start + i])
        i += 1
    return res


@nb.njit(cache=True, nogil=True)
def pairwise_sum(a, start, n):
    """numpy's float64 pairwise summation of a[start:start+n], bit for bit (8-way unroll,
    blocks of 128, halves rounded to multiples of 8), of the values converted to float64
    as statsmodels does. An explicit stack replaces numpy's recursion."""
    ts = np.empty(256, np.int64)
    tn = np.empty(256, np.int64)
    tk = np.empty(256, np.int64)
    vals = np.empty(256, np.float64)
    nt = 1
    nv = 0
    ts[0] = start
    tn[0] = n
    tk[0] = 0
    while nt > 0:
        nt -= 1
        s0, m, kind = ts[nt], tn[nt], tk[nt]
        if kind == 1:
            vals[nv - 2] = vals[nv - 2] + vals[nv - 1]
            nv -= 1
        elif m <= 128:
            vals[nv] = _pairwise_leaf(a, s0, m)
            nv += 1
        else:
            m2 = m // 2
            m2 -= m2 % 8
            ts[nt], tn[nt], tk[nt] = 0, 0, 1
            ts[nt + 1], tn[nt + 1], tk[nt + 1] = s0 + m2, m - m2, 0
            ts[nt + 2], tn[nt + 2], tk[nt + 2] = s0, m2, 0
            nt += 3
    return vals[0]


@nb.njit(cache=True, nogil=True)
def int_sum(x):
    """Exact int64 sum of an integer array."""
    s = np.int64(0)
    for i in range(x.size):
        s += np.int64(x[i])
    return s
