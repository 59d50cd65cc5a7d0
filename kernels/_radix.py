"""Exact order statistics in O(n) worst case: 16-bit radix passes over the order-preserving
uint64 key of float64 values (for int16, float32 and float64 arrays alike)."""
from __future__ import annotations

import numba as nb
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic


@intrinsic
def _f64_to_u64(typingctx, v):
    sig = types.uint64(types.float64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return sig, codegen


@intrinsic
def _u64_to_f64(typingctx, v):
    sig = types.float64(types.uint64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return sig, codegen


_TOP = np.uint64(1) << np.uint64(63)


@nb.njit(cache=True, nogil=True)
def key(v):
    """Order-preserving uint64 key of float64(v): positive -> set the sign bit, negative ->
    invert every bit. Adding 0.0 turns -0.0 into 0.0, so equal values get equal keys."""
    u = _f64_to_u64(np.float64(v) + 0.0)
    if u >> np.uint64(63):
        return ~u
    return u | _TOP


@nb.njit(cache=True, nogil=True)
def key_value(u):
    """The float64 value of an order-preserving key."""
    if u >> np.uint64(63):
        return _u64_to_f64(u & ~_TOP)
    return _u64_to_f64(~u)


@nb.njit(cache=True, nogil=True)
def radix_select(a, k):
    """The k-th smallest (0-based) value of ``a`` (no NaN) as float64, in four passes."""
    counts = np.zeros(65536, np.int64)
    prefix = np.uint64(0)
    r = np.int64(k)
    for level in range(4):
        shift = np.uint64(48 - 16 * level)
        counts[:] = 0
        for i in range(a.size):
            u = key(a[i])
            if level == 0 or (u >> (shift + np.uint64(16))) == prefix:
                counts[np.int64((u >> shift) & np.uint64(0xFFFF))] += 1
        c = np.int64(0)
        d = 0
        for d in range(65536):
            if c + counts[d] > r:
                break
            c += counts[d]
        r -= c
        prefix = (prefix << np.uint64(16)) | np.uint64(d)
    return key_value(prefix)


@nb.njit(cache=True, nogil=True)
def partition_around(a, v):
    """Rearranges ``a`` into values < v, then == v, then > v (Dutch flag, one pass)."""
    lt = 0
    i = 0
    gt = a.size - 1
    while i <= gt:
        if a[i] < v:
            a[lt], a[i] = a[i], a[lt]
            lt += 1
            i += 1
        elif a[i] > v:
            a[gt], a[i] = a[i], a[gt]
            gt -= 1
        else:
            i += 1
