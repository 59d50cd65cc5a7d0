"""Helpers of the streaming forms: sources, chunked reads, numpy's pairwise sum and the
exact median by radix passes over the order-preserving integer key of float64 values."""
from __future__ import annotations

import os

import numba as nb
import numpy as np

from kernels import _median
from kernels._radix import key as _key, key_value


@nb.njit(cache=True, nogil=True)
def key_hist(x, shift, prefix_shift, prefix, counts, nan_count):
    """Histogram of 16-bit key digits at ``shift`` for values whose key agrees with
    ``prefix`` above ``prefix_shift`` (prefix_shift 64 means all values). Returns NaN count."""
    nn = nan_count
    for i in range(x.size):
        v = x[i]
        if v != v:
            nn += 1
            continue
        u = _key(v)
        if prefix_shift >= 64 or (u >> np.uint64(prefix_shift)) == prefix:
            counts[np.int64((u >> np.uint64(shift)) & np.uint64(0xFFFF))] += 1
    return nn


@nb.njit(cache=True, nogil=True)
def key_minmax(x, prefix_shift, prefix_lo, prefix_hi, lo_max, hi_min):
    """Largest value with key prefix ``prefix_lo`` and smallest with ``prefix_hi`` (the
    prefixes are the keys shifted right by prefix_shift), folded into lo_max / hi_min."""
    for i in range(x.size):
        v = x[i]
        if v != v:
            continue
        p = _key(v) >> np.uint64(prefix_shift)
        f = np.float64(v)
        if p == prefix_lo and f > lo_max:
            lo_max = f
        if p == prefix_hi and f < hi_min:
            hi_min = f
    return lo_max, hi_min


@nb.njit(cache=True, nogil=True)
def key_gather(x, prefix_shift, prefix, buf, nbuf):
    """Appends the values whose key prefix equals ``prefix`` to buf from index nbuf."""
    for i in range(x.size):
        v = x[i]
        if v != v:
            continue
        if (_key(v) >> np.uint64(prefix_shift)) == prefix:
            buf[nbuf] = np.float64(v)
            nbuf += 1
    return nbuf


def open_source(source, dtype=None) -> np.ndarray:
    """A 1-D array view of a stream source: an array / memmap, a .npy path (memory-mapped),
    or a raw binary file path with ``dtype``."""
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise ValueError(f"{path}: no such file")
        if dtype is None:
            if not path.endswith(".npy"):
                raise ValueError(f"{path}: pass dtype= for a raw binary file (or use a .npy file)")
            try:
                arr = np.load(path, mmap_mode="r", allow_pickle=False)
            except ValueError as e:
                raise ValueError(f"{path}: not a readable .npy array ({e})") from None
        else:
            dt = np.dtype(dtype)
            if os.path.getsize(path) % dt.itemsize:
                raise ValueError(f"{path}: size is not a multiple of {dt} ({dt.itemsize} bytes)")
            arr = np.memmap(path, dtype=dt, mode="r")
        if arr.ndim != 1:
            raise ValueError(f"{path}: expected a 1-D array, got shape {arr.shape}")
        return arr
    arr = np.asarray(source) if not isinstance(source, np.ndarray) else source
    if arr.ndim != 1:
        raise ValueError(f"stream source: expected a 1-D array, got shape {arr.shape}")
    return arr


def chunks(arr, chunk):
    """Contiguous chunks of at most ``chunk`` values of a 1-D array or memmap."""
    for s in range(0, arr.shape[0], chunk):
        yield np.ascontiguousarray(arr[s:s + chunk])


def stream_sum(arr, start, n, chunk) -> float:
    """numpy's pairwise float64 sum of arr[start:start+n], read a chunk at a time."""
    if n <= chunk:
        return _median.pairwise_sum(np.ascontiguousarray(arr[start:start + n]), 0, n)
    n2 = n // 2
    n2 -= n2 % 8
    return stream_sum(arr, start, n2, chunk) + stream_sum(arr, start + n2, n - n2, chunk)


def stream_median(arr, chunk, gather_max: int = 1 << 22) -> float:
    """np.median of a 1-D int16/float array read a chunk at a time: one histogram pass for
    int16; for floats, 16-bit radix passes over the key until the middle ranks' bucket
    holds at most ``gather_max`` values, which one more pass gathers for a selection."""
    n = arr.shape[0]
    if arr.dtype == np.int16:
        counts = np.zeros(_median.I16_BINS, np.int64)
        for part in chunks(arr, chunk):
            _median.hist_i16(part, counts)
        return float(_median.median_from_hist(counts, n))
    k1, k2 = (n - 1) // 2, n // 2
    prefix, pshift = np.uint64(0), 64
    r1, r2 = k1, k2
    for shift in (48, 32, 16, 0):
        counts = np.zeros(65536, np.int64)
        nan = 0
        for part in chunks(arr, chunk):
            nan = key_hist(part, shift, pshift, prefix, counts, nan)
        if nan:
            raise ValueError("stream: input contains NaN")
        cum = np.cumsum(counts)
        d1 = int(np.searchsorted(cum, r1, side="right"))
        d2 = int(np.searchsorted(cum, r2, side="right"))
        below1 = int(cum[d1 - 1]) if d1 else 0
        below2 = int(cum[d2 - 1]) if d2 else 0
        new1 = (prefix << np.uint64(16)) | np.uint64(d1) if pshift < 64 else np.uint64(d1)
        new2 = (prefix << np.uint64(16)) | np.uint64(d2) if pshift < 64 else np.uint64(d2)
        if d1 != d2:
            # Rank k1 is the largest value of its bucket, rank k2 the smallest of the next.
            a, b = -np.inf, np.inf
            for part in chunks(arr, chunk):
                a, b = key_minmax(part, shift, new1, new2, a, b)
            return (a + b) / 2.0
        r1, r2 = r1 - below1, r2 - below2
        prefix, pshift = new1, shift
        if shift == 0:
            v = key_value(prefix)
            return float(v)
        if counts[d1] <= gather_max:
            buf = np.empty(int(counts[d1]), np.float64)
            m = 0
            for part in chunks(arr, chunk):
                m = key_gather(part, pshift, prefix, buf, m)
            a = _median.select_inplace(buf, r1)
            if n % 2 == 1:
                return float(a)
            b = buf[r2:].min() if r2 > r1 else a
            return (float(a) + float(b)) / 2.0
    raise AssertionError("four 16-bit passes resolve every 64-bit key")
