"""numba-compiled host kernel: the power mel spectrogram in one pass over the frames.

`maskgan_jax.features` runs this on the CPU backend (through a callback, so it still works
under jit, vmap and sharding); on accelerators XLA's FFT is used. XLA:CPU's real FFT ran
about 1.6x slower per core than pocketfft here and dominated the transform, so this
kernel does framing, the analysis window, a real FFT, the power and the banded mel
projection per group of frames, with every intermediate in the L1/L2 cache:

* ``LANES`` frames are transformed together, each butterfly operating on a vector of
  lanes (one frame per lane), so the compiler vectorises across frames;
* the real n_fft-point FFT is a complex n_fft/2-point FFT of the even/odd samples packed
  as real/imaginary parts (Stockham radix-2: no bit reversal, ping-pong buffers),
  unpacked with one twiddle per bin;
* the mel projection touches only each filter's non-zero bins.

Frames are ``center=True`` with zero padding (librosa's default): the signal is padded by
n_fft // 2 zeros on each side first (by the caller on device, or here). The window and
the filterbank come from the caller (`plan`). Power-of-two n_fft only (`supported`); the
caller falls back to XLA otherwise. Work is split over host threads by frame groups (the kernel
releases the GIL).
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numba as nb
import numpy as np

# Frames per group: one float32 vector of lanes per butterfly operand (4 AVX2 registers).
LANES = 32
_PIECES_PER_THREAD = 4
_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def supported(n_fft: int) -> bool:
    """Whether the kernel handles this FFT size (a power of two, at least 4)."""
    return n_fft >= 4 and (n_fft & (n_fft - 1)) == 0


class Plan(NamedTuple):
    """Constant tables for one configuration (`plan`), in the order `_groups` takes them."""
    window: np.ndarray      # [n_fft] float32
    twr: np.ndarray         # FFT twiddles of every Stockham stage, real and imaginary parts
    twi: np.ndarray
    pr: np.ndarray          # unpack twiddles e^{-2 pi i k / n_fft}, k = 0 .. n_fft / 2
    pi: np.ndarray
    lo: np.ndarray          # per mel filter: first and one-past-last non-zero bin
    hi: np.ndarray
    off: np.ndarray         # per mel filter: offset of its weights in ``weights``
    weights: np.ndarray     # the non-zero filterbank weights, filter after filter


def plan(window: np.ndarray, mel_NxK: np.ndarray) -> Plan:
    """The kernel's tables for an analysis window [n_fft] and a filterbank [n_mels, n_fft // 2 + 1].

    Build it once per configuration (`maskgan_jax.features` caches it) and pass it to
    `mel_power`.
    """
    window = np.ascontiguousarray(window, dtype=np.float32)
    n_fft = window.shape[0]
    if window.ndim != 1 or not supported(n_fft):
        raise ValueError(f"stft_mel handles power-of-two n_fft >= 4, got a window of shape {window.shape}")
    half = n_fft // 2
    mel = np.ascontiguousarray(mel_NxK, dtype=np.float32)
    n_mels = mel.shape[0]
    if mel.shape != (n_mels, half + 1):
        raise ValueError(f"filterbank shape {mel.shape} does not fit n_fft={n_fft}")
    stages, size = [], half
    while size > 1:
        stages.append(np.exp(-2j * np.pi * np.arange(size // 2) / size))
        size //= 2
    tw = np.concatenate(stages) if stages else np.zeros(0, np.complex128)
    post = np.exp(-2j * np.pi * np.arange(half + 1) / n_fft)
    lo = np.zeros(n_mels, np.int64)
    hi = np.zeros(n_mels, np.int64)
    parts, off = [], np.zeros(n_mels + 1, np.int64)
    for m in range(n_mels):
        nz = np.flatnonzero(mel[m])
        if nz.size:
            lo[m], hi[m] = nz[0], nz[-1] + 1
        parts.append(mel[m, lo[m]:hi[m]])
        off[m + 1] = off[m] + hi[m] - lo[m]
    weights = np.concatenate(parts).astype(np.float32) if off[-1] else np.zeros(1, np.float32)
    return Plan(window, tw.real.astype(np.float32), tw.imag.astype(np.float32),
                post.real.astype(np.float32), post.imag.astype(np.float32), lo, hi, off, weights)


@nb.njit(cache=True, nogil=True, fastmath=True, boundscheck=False)
def _groups(xp, hop, num_frames, g0, g1, window, twr, twi, pr, pi, lo, hi, off, weights, out):
    """Mel power of frame groups g0..g1-1 (flat frame ids over clips) into out [B, n_mels, frames].

    ``xp`` [B, Lp] is the zero-padded signal: frame f is xp[b, f*hop : f*hop + n_fft].
    Buffers are indexed through per-lane-vector slices: a loop index from range() is
    known to be non-negative, so no wraparound code stops the loop from vectorising.
    """
    batch, length = xp.shape
    n_fft = window.shape[0]
    half = n_fft // 2
    n_mels = lo.shape[0]
    total = batch * num_frames
    V = LANES
    ar = np.empty(half * V, np.float32)
    ai = np.empty(half * V, np.float32)
    br = np.empty(half * V, np.float32)
    bi = np.empty(half * V, np.float32)
    pw = np.empty((half + 1) * V, np.float32)
    lane_b = np.empty(V, np.int64)
    lane_f = np.empty(V, np.int64)
    lane_base = np.empty(V, np.int64)
    xf = xp.ravel()
    of = out.ravel()
    melbuf = np.empty(n_mels * V, np.float32)
    for g in range(g0, g1):
        # 1. Frames times the window, even samples -> real part, odd -> imaginary part,
        #    lane-interleaved: element m of lane v at m * V + v.
        nv = min(V, total - g * V)
        for v in range(V):
            fid = min(g * V + v, total - 1)
            b = fid // num_frames
            lane_b[v] = b
            lane_f[v] = fid - b * num_frames
            lane_base[v] = b * length + lane_f[v] * hop
        for m in range(half):
            w0 = window[2 * m]
            w1 = window[2 * m + 1]
            a_r = ar[m * V:m * V + V]
            a_i = ai[m * V:m * V + V]
            for v in range(V):
                j = lane_base[v] + 2 * m
                a_r[v] = xf[j] * w0
                a_i[v] = xf[j + 1] * w1
        # 2. Complex FFT of size half, Stockham radix-2 (result ends in sr/si).
        sr, si, dr, di = ar, ai, br, bi
        n = half
        s = 1
        t0 = 0
        while n > 1:
            m2 = n // 2
            for p in range(m2):
                wr = twr[t0 + p]
                wi = twi[t0 + p]
                for q in range(s):
                    i0 = (q + s * p) * V
                    i1 = (q + s * (p + m2)) * V
                    o0 = (q + s * 2 * p) * V
                    o1 = o0 + s * V
                    a_r = sr[i0:i0 + V]
                    a_i = si[i0:i0 + V]
                    b_r = sr[i1:i1 + V]
                    b_i = si[i1:i1 + V]
                    c_r = dr[o0:o0 + V]
                    c_i = di[o0:o0 + V]
                    d_r = dr[o1:o1 + V]
                    d_i = di[o1:o1 + V]
                    for v in range(V):
                        xr = a_r[v]
                        xi = a_i[v]
                        yr = b_r[v]
                        yi = b_i[v]
                        c_r[v] = xr + yr
                        c_i[v] = xi + yi
                        er = xr - yr
                        ei = xi - yi
                        d_r[v] = er * wr - ei * wi
                        d_i[v] = er * wi + ei * wr
            t0 += m2
            n = m2
            s *= 2
            sr, dr = dr, sr
            si, di = di, si
        # 3. Unpack the real FFT and take the power: X[k] = E[k] + e^{-2 pi i k / n_fft} O[k].
        for k in range(half + 1):
            k1 = k if k < half else 0
            k2 = (half - k) % half
            c = pr[k]
            d = pi[k]
            z_r = sr[k1 * V:k1 * V + V]
            z_i = si[k1 * V:k1 * V + V]
            y_r = sr[k2 * V:k2 * V + V]
            y_i = si[k2 * V:k2 * V + V]
            p_k = pw[k * V:k * V + V]
            for v in range(V):
                zr = z_r[v]
                zi = z_i[v]
                cr = y_r[v]
                ci = -y_i[v]
                er = 0.5 * (zr + cr)
                ei = 0.5 * (zi + ci)
                orr = 0.5 * (zi - ci)
                oi = -0.5 * (zr - cr)
                xr = er + c * orr - d * oi
                xi = ei + c * oi + d * orr
                p_k[v] = xr * xr + xi * xi
        # 4. Banded mel projection, then written to [clip, mel, frame].
        for m in range(n_mels):
            acc = melbuf[m * V:m * V + V]
            for v in range(V):
                acc[v] = 0.0
            base = off[m] - lo[m]
            for k in range(lo[m], hi[m]):
                w = weights[base + k]
                p_k = pw[k * V:k * V + V]
                for v in range(V):
                    acc[v] += w * p_k[v]
        for v in range(nv):
            o = lane_b[v] * n_mels * num_frames + lane_f[v]
            for m in range(n_mels):
                of[o + m * num_frames] = melbuf[m * V + v]


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=_threads(), thread_name_prefix="stft_mel")
        return _POOL


def _threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def mel_power(x_BxT: np.ndarray, hop: int, tables: Plan, threads: int | None = None,
              padded: bool = False) -> np.ndarray:
    """Power mel spectrogram [B, n_mels, frames] of float32 audio [B, T] (librosa's center=True framing).

    ``tables`` comes from `plan` (window and filterbank); there are ``1 + T // hop``
    frames. ``padded=True`` says ``x_BxT`` already carries the n_fft // 2 zeros on each
    side (T counts them). Splits the frame groups over ``threads`` host threads (default:
    the CPUs this process may use).
    """
    x = np.asarray(x_BxT)
    if x.ndim != 2 or x.shape[1] < 1:
        raise ValueError(f"mel_power needs audio [B, T] with T >= 1, got shape {x.shape}")
    if hop < 1:
        raise ValueError(f"hop must be positive, got {hop}")
    pad = tables.window.shape[0] // 2
    if padded:
        xp = np.ascontiguousarray(x, dtype=np.float32)
        if xp.shape[1] <= 2 * pad:
            raise ValueError(f"padded audio needs more than {2 * pad} samples, got {xp.shape[1]}")
    else:
        xp = np.zeros((x.shape[0], x.shape[1] + 2 * pad), np.float32)
        xp[:, pad:pad + x.shape[1]] = x
    batch = xp.shape[0]
    num_frames = 1 + (xp.shape[1] - 2 * pad) // hop
    out = np.empty((batch, tables.lo.shape[0], num_frames), np.float32)
    if batch == 0:
        return out
    groups = -(-batch * num_frames // LANES)
    threads = min(threads or _threads(), groups)
    if threads <= 1:
        _groups(xp, int(hop), num_frames, 0, groups, *tables, out)
        return out
    # More pieces than threads: a thread that is descheduled for a while (other load)
    # leaves its remaining pieces to the others instead of holding up the whole call.
    pieces = min(groups, threads * _PIECES_PER_THREAD)
    cuts = np.linspace(0, groups, pieces + 1).astype(np.int64)
    pool = _pool()
    futures = [pool.submit(_groups, xp, int(hop), num_frames, int(cuts[i]), int(cuts[i + 1]), *tables, out)
               for i in range(pieces)]
    for f in futures:
        f.result()
    return out
