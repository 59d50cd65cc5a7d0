"""librosa-compatible mel filterbank and a jittable, batched (log-)mel spectrogram.

The reference is ``librosa.feature.melspectrogram`` with its defaults: periodic Hann
window, ``center=True`` with zero padding, power 2, Slaney mel scale and Slaney norm.

How it is fast on CPU (experiments/benchmarks/mel.py measures it against librosa): on the
CPU backend, for power-of-two n_fft, the transform is the numba kernel
`kernels.stft_mel` called from the jitted program (``impl="host"``): framing, window, a
lane-vectorised real FFT, power and the banded mel projection in one cache-resident pass
over groups of frames, on all host cores. XLA:CPU's own FFT ran ~1.6x slower per core
than pocketfft here and was most of the cost of the pure-XLA transform.

The pure-XLA transform (``impl="xla"``: accelerators, other n_fft, and every derivative)
stacks frames from shifted slices of the signal cut into blocks of gcd(n_fft, hop)
samples (no gather); on CPU the frames go through XLA's real FFT a chunk at a time inside
a loop, so frames, spectrum and power stay in cache; the mel projection is done as a few
banded matmuls over the bins each group of filters touches, not one dense matmul that is
98% zeros. A float32 DFT-as-matmul was measured too: 2-8x slower than the FFT on this CPU.
On accelerators the transform runs in one pass.
"""
from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental.custom_partitioning import custom_partitioning
from jax.sharding import NamedSharding, PartitionSpec as P

from kernels import stft_mel
from maskgan_jax import audio

_HIGHEST = jax.lax.Precision.HIGHEST
# librosa's Slaney mel scale: linear below 1 kHz, logarithmic above.
_F_SP = 200.0 / 3.0
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = math.log(6.4) / 27.0
# Above this many shifted views per frame, a gather cuts the frames more cheaply.
_MAX_VIEWS = 64
# Frames (over the whole batch) that one CPU loop step transforms: 2 MiB of float32
# frames at n_fft=1024, so a step's intermediates stay in cache.
_CPU_FRAMES_PER_CHUNK = 512
IMPLS = ("xla", "host")


def hz_to_mel(freqs):
    """Hz to Slaney mels (librosa ``hz_to_mel(htk=False)``)."""
    f = np.asarray(freqs, dtype=np.float64)
    mels = f / _F_SP
    log_part = _MIN_LOG_MEL + np.log(np.maximum(f, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP
    return np.where(f >= _MIN_LOG_HZ, log_part, mels)


def mel_to_hz(mels):
    """Slaney mels to Hz (librosa ``mel_to_hz(htk=False)``)."""
    m = np.asarray(mels, dtype=np.float64)
    freqs = _F_SP * m
    log_part = _MIN_LOG_HZ * np.exp(_LOGSTEP * (np.maximum(m, _MIN_LOG_MEL) - _MIN_LOG_MEL))
    return np.where(m >= _MIN_LOG_MEL, log_part, freqs)


def _check_args(sample_rate, n_fft, n_mels, fmin, fmax):
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    if n_fft < 2:
        raise ValueError(f"n_fft must be at least 2, got {n_fft}")
    if n_mels < 1:
        raise ValueError(f"n_mels must be at least 1, got {n_mels}")
    fmax = float(sample_rate) / 2 if fmax is None else float(fmax)
    if not 0.0 <= fmin < fmax:
        raise ValueError(f"need 0 <= fmin < fmax, got fmin={fmin}, fmax={fmax}")
    return fmax


def mel_filterbank(sample_rate: float = 16000, n_fft: int = 1024, n_mels: int = 128,
                   fmin: float = 0.0, fmax: float | None = None,
                   dtype=np.float32) -> np.ndarray:
    """Slaney-scale, Slaney-normed mel filterbank [n_mels, 1 + n_fft // 2] (librosa.filters.mel)."""
    fmax = _check_args(sample_rate, n_fft, n_mels, fmin, fmax)
    fftfreqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sample_rate)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2:] - mel_f[:-2]))[:, None]
    return weights.astype(dtype)


# Per-group cost of the banded mel projection, in multiply-adds per frame: a slice and
# a small matmul cost about this much beyond their arithmetic on CPU.
_GROUP_OVERHEAD = 3000


def _mel_groups(mel):
    """Splits the mel rows into contiguous groups, each with the bin range it touches.

    Each triangular filter covers a few bins, so the dense [n_mels, bins] projection is
    mostly zeros (1009 of 65664 weights at the defaults). A dynamic programme picks the
    grouping that minimises the banded multiply-adds plus a per-group overhead (at the
    defaults: 4 groups, 4.4x fewer than the dense product). Returns (row_lo, row_hi,
    bin_lo, bin_hi) tuples; a group of empty filters has bin_lo == bin_hi.
    """
    n = mel.shape[0]
    nz = [np.flatnonzero(row) for row in mel]
    lo = np.array([z[0] if z.size else np.iinfo(np.int64).max for z in nz])
    hi = np.array([z[-1] + 1 if z.size else -1 for z in nz])
    best = np.full(n + 1, np.inf)
    best[0] = 0.0
    start = np.zeros(n + 1, dtype=np.int64)
    for j in range(1, n + 1):
        a, b = np.iinfo(np.int64).max, -1
        for i in range(j - 1, -1, -1):
            a, b = min(a, lo[i]), max(b, hi[i])
            cost = best[i] + (j - i) * max(b - a, 0) + _GROUP_OVERHEAD
            if cost < best[j]:
                best[j], start[j] = cost, i
    groups, j = [], n
    while j > 0:
        i = int(start[j])
        a, b = lo[i:j].min(), hi[i:j].max()
        groups.append((i, j, int(a), int(b)) if b > a else (i, j, 0, 0))
        j = i
    return groups[::-1]


def hann_window(n_fft: int) -> np.ndarray:
    """Periodic Hann window, float32 (librosa's and scipy.signal.get_window('hann')'s)."""
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)


@functools.lru_cache(maxsize=32)
def _filterbank(sample_rate, n_fft, n_mels, fmin, fmax):
    return mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax, dtype=np.float32)


@functools.lru_cache(maxsize=32)
def _transform_consts(sample_rate, n_fft, n_mels, fmin, fmax):
    """The mel groups and one flat float32 vector: the periodic Hann window, then each group's weights."""
    mel = _filterbank(sample_rate, n_fft, n_mels, fmin, fmax)
    groups = tuple(_mel_groups(mel))
    flat = np.concatenate([hann_window(n_fft)] + [mel[i:j, a:b].ravel() for i, j, a, b in groups])
    return groups, flat


@functools.lru_cache(maxsize=32)
def _host_plan(sample_rate, n_fft, n_mels, fmin, fmax) -> stft_mel.Plan:
    """The host kernel's tables for one configuration, built once."""
    return stft_mel.plan(hann_window(n_fft), _filterbank(sample_rate, n_fft, n_mels, fmin, fmax))


def _as_float_audio(wave):
    wave = jnp.asarray(wave)
    if wave.dtype == jnp.int16:
        # int16 PCM travels to the device at half the bytes; scale on device.
        return audio.int16_to_float(wave)
    if not jnp.issubdtype(wave.dtype, jnp.floating):
        raise TypeError(f"mel_spectrogram takes float or int16 audio, got dtype {wave.dtype}")
    return wave.astype(jnp.float32)


def _chunk_framer(xp, per, n_fft, hop):
    """A function f0 -> frames f0 .. f0+per-1 [B, per, n_fft], cut from the padded signal xp [B, L].

    The signal is reshaped once into blocks of gcd(n_fft, hop) samples; a frame is
    n_fft/gcd consecutive blocks, so a chunk's frames are a stack of that many
    (strided) dynamic slices of the blocks. Slicing the blocks, not a reshaped slice of
    the signal, keeps XLA's fused copy free of per-element division: it runs several
    times faster than the equivalent gather or slice-then-reshape.
    """
    batch, length = xp.shape
    g = math.gcd(n_fft, hop)
    views, step = n_fft // g, hop // g
    if views > _MAX_VIEWS:
        seg_len = (per - 1) * hop + n_fft
        # Indices from iota, not a numpy constant: custom_partitioning bodies may not
        # capture arrays.
        idx = (jax.lax.broadcasted_iota(jnp.int32, (per, n_fft), 0) * hop
               + jax.lax.broadcasted_iota(jnp.int32, (per, n_fft), 1))

        def frames(f0):
            seg = jax.lax.dynamic_slice_in_dim(xp, f0 * hop, seg_len, axis=1)
            return seg[:, idx]
        return frames

    blocks = xp.reshape(batch, length // g, g)
    span = (per - 1) * step + 1

    def frames(f0):
        start = f0 * step
        parts = [jax.lax.dynamic_slice(blocks, (0, start + k, 0), (batch, span, g))[:, ::step]
                 for k in range(views)]
        return jnp.stack(parts, axis=2).reshape(batch, per, n_fft)
    return frames


def _chunk_frames(batch, num_frames, chunk_frames):
    if chunk_frames is None:
        # On CPU, a loop over chunks of frames keeps every intermediate (frames, spectrum,
        # power) in cache; one pass over the whole batch is bound by memory traffic.
        # Accelerators prefer one big pass.
        if jax.default_backend() != "cpu":
            return num_frames
        chunk_frames = _CPU_FRAMES_PER_CHUNK // max(batch, 1)
        # Equal chunks: the last one then recomputes as few of the frames before it as possible.
        chunk_frames = -(-num_frames // -(-num_frames // max(chunk_frames, 1)))
    return int(min(max(chunk_frames, 1), num_frames))


def _mel_2d(x, consts, cfg):
    """The transform on float32 [B, T] -> [B, n_mels, frames].

    ``consts`` is the flat vector of `_transform_consts` (passed in, not closed over:
    custom_partitioning traces functions that may not capture arrays); cfg is the
    static settings tuple.
    """
    sample_rate, n_fft, hop, n_mels, fmin, fmax, chunk_frames, _ = cfg
    groups, _ = _transform_consts(sample_rate, n_fft, n_mels, fmin, fmax)
    window = consts[:n_fft]
    weights, offset = [], n_fft
    for i, j, a, b in groups:
        weights.append(consts[offset:offset + (j - i) * (b - a)].reshape(j - i, b - a))
        offset += (j - i) * (b - a)
    batch, t = x.shape
    pad = n_fft // 2
    num_frames = 1 + (t + 2 * pad - n_fft) // hop
    per = _chunk_frames(batch, num_frames, chunk_frames)
    num_chunks = -(-num_frames // per)
    # Zero padding: librosa's center=True, pad_mode="constant" (cut to the last frame).
    total = (num_frames - 1) * hop + n_fft
    xp = jnp.pad(x, ((0, 0), (pad, max(total - pad - t, 0))))[:, :total]
    frames = _chunk_framer(xp, per, n_fft, hop)

    def chunk(f0):
        spec = jnp.fft.rfft(frames(f0) * window, axis=-1)
        power = jnp.real(spec) ** 2 + jnp.imag(spec) ** 2
        parts = []
        for (i, j, a, b), w in zip(groups, weights):
            if b > a:
                parts.append(jnp.einsum("bfk,mk->bfm", power[..., a:b], w, precision=_HIGHEST))
            else:
                parts.append(jnp.zeros((batch, per, j - i), power.dtype))
        mel = jnp.concatenate(parts, axis=2) if len(parts) > 1 else parts[0]
        return jnp.swapaxes(mel, 1, 2)  # [B, M, per], transposed while it is in cache

    if num_chunks == 1:
        return chunk(0)

    def body(c, out):
        # The last chunk starts early enough to end at the last frame; the frames it
        # shares with the chunk before are recomputed to the same values.
        f0 = jnp.minimum(c * per, num_frames - per)
        return jax.lax.dynamic_update_slice(out, chunk(f0), (0, 0, f0))

    return jax.lax.fori_loop(0, num_chunks, body, jnp.zeros((batch, n_mels, num_frames), jnp.float32))


def _mel_host(x, cfg):
    """The transform on float32 [B, T] by the host kernel `kernels.stft_mel` (a callback).

    The centre padding is done on device, so the kernel reads every frame from one
    contiguous buffer; the callback returns [B, n_mels, frames].
    """
    sample_rate, n_fft, hop, n_mels, fmin, fmax = cfg[:6]
    batch, t = x.shape
    pad = n_fft // 2
    tables = _host_plan(sample_rate, n_fft, n_mels, fmin, fmax)

    def host(xp):
        return stft_mel.mel_power(np.asarray(xp), hop, tables, padded=True)

    out = jax.ShapeDtypeStruct((batch, n_mels, 1 + t // hop), jnp.float32)
    return jax.pure_callback(host, out, jnp.pad(x, ((0, 0), (pad, pad))))


@functools.lru_cache(maxsize=32)
def _mel_op(cfg):
    """The transform as one op that keeps its batch sharding, batches under vmap, and differentiates.

    XLA's SPMD partitioner replicates FFTs whose batch dims are sharded (all-gathering
    the frames onto every device, openxla/xla#24); custom_partitioning tells it that each
    device can transform its own clips. custom_partitioning has no batching or
    differentiation rules, so a custom_vmap and a custom_jvp (whose tangent uses the
    plain ops) are wrapped around it. With ``impl == "host"`` the forward value comes
    from the host kernel; derivatives always use the XLA ops.
    """
    def impl(x, consts):  # the XLA transform
        return _mel_2d(x, consts, cfg)

    def shardings(mesh, arg_shapes):
        spec = arg_shapes[0].sharding.spec
        batch_axes = spec[0] if len(spec) else None
        return ((NamedSharding(mesh, P(batch_axes, None)), NamedSharding(mesh, P(None))),
                NamedSharding(mesh, P(batch_axes, None, None)))

    def partition(mesh, arg_shapes, result_shape):
        arg_shardings, out_sharding = shardings(mesh, arg_shapes)
        return mesh, impl, out_sharding, arg_shardings

    def infer(mesh, arg_shapes, result_shape):
        return shardings(mesh, arg_shapes)[1]

    if cfg[-1] == "host":
        # The callback is not wrapped in custom_partitioning: a callback inside a
        # custom_partitioning body crashed the process (segfault, jax 0.10.2, 2+ CPU
        # devices). A sharded input is gathered to one device instead, so the default
        # picks the host kernel only where there is one CPU device.
        def sharded(x, consts):
            return _mel_host(x, cfg)
    else:
        sharded = custom_partitioning(impl)
        sharded.def_partition(partition=partition, infer_sharding_from_operands=infer,
                              sharding_rule="b t, k -> b m f", need_replication_factors=("t", "k"))

    @jax.custom_batching.custom_vmap
    def batched(x, consts):
        return sharded(x, consts)

    @batched.def_vmap
    def _vmap_rule(axis_size, in_batched, x, consts):
        # consts is made from numpy inside mel_spectrogram, so only x is ever batched:
        # the vmapped axis folds into the clip axis.
        del in_batched
        out = batched(x.reshape(-1, x.shape[-1]), consts)
        return out.reshape(axis_size, -1, *out.shape[1:]), True

    @jax.custom_jvp
    def op(x, consts):
        return batched(x, consts)

    @op.defjvp
    def _jvp(primals, tangents):
        return batched(*primals), jax.jvp(impl, primals, tangents)[1]

    return op


def default_impl(n_fft: int) -> str:
    """The transform ``impl=None`` picks: "host" on a single CPU device where n_fft allows, else "xla"."""
    single_cpu = jax.default_backend() == "cpu" and jax.local_device_count() == 1
    return "host" if single_cpu and stft_mel.supported(n_fft) else "xla"


def mel_spectrogram(wave_BxT, sample_rate: float = 16000, n_fft: int = 1024,
                    hop_length: int = 256, n_mels: int = 128, fmin: float = 0.0,
                    fmax: float | None = None, chunk_frames: int | None = None,
                    impl: str | None = None):
    """Power mel spectrogram [B, n_mels, frames] of float or int16 audio [B, T] (librosa's defaults)."""
    # Any leading dims are allowed ([T] gives [n_mels, frames]). impl: "host" (the numba
    # kernel kernels.stft_mel, power-of-two n_fft; a sharded batch is gathered to one
    # device first), "xla" (XLA ops only), or None: host on a single CPU device where
    # n_fft allows, else xla. chunk_frames sets how many frames
    # one CPU loop step of the XLA transform takes (None: chosen per backend). Results
    # depend on neither. Works under jit, vmap, grad, and on batches sharded over a mesh
    # (each device transforms its own clips; derivatives use the plain, replicated FFT).
    fmax = _check_args(sample_rate, n_fft, n_mels, fmin, fmax)
    if hop_length < 1:
        raise ValueError(f"hop_length must be positive, got {hop_length}")
    x = _as_float_audio(wave_BxT)
    if x.ndim < 1 or x.shape[-1] < 1:
        raise ValueError(f"mel_spectrogram needs audio shaped [..., T] with T >= 1, got {x.shape}")
    if chunk_frames is not None and chunk_frames < 1:
        raise ValueError(f"chunk_frames must be positive, got {chunk_frames}")
    if impl is None:
        impl = default_impl(n_fft)
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS} or None, got {impl!r}")
    if impl == "host" and not stft_mel.supported(n_fft):
        raise ValueError(f'impl="host" needs a power-of-two n_fft >= 4, got {n_fft}; use impl="xla"')
    cfg = (float(sample_rate), int(n_fft), int(hop_length), int(n_mels), float(fmin), fmax,
           None if chunk_frames is None else int(chunk_frames), impl)
    lead, t = x.shape[:-1], x.shape[-1]
    _, consts = _transform_consts(cfg[0], cfg[1], cfg[3], cfg[4], cfg[5])
    out = _mel_op(cfg)(x.reshape(-1, t), jnp.asarray(consts))
    return out.reshape(*lead, *out.shape[1:])


def log_mel_spectrogram(wave_BxT, sample_rate: float = 16000, n_fft: int = 1024,
                        hop_length: int = 256, n_mels: int = 128, fmin: float = 0.0,
                        fmax: float | None = None, chunk_frames: int | None = None,
                        impl: str | None = None):
    """Log mel spectrogram in dB, 10*log10(max(S, 1e-10)), shaped [B, n_mels, frames]."""
    s = mel_spectrogram(wave_BxT, sample_rate, n_fft, hop_length, n_mels, fmin, fmax,
                        chunk_frames, impl)
    return 10.0 * jnp.log10(jnp.maximum(s, 1e-10))


def floor_db(log_mel_BxMxF, top_db: float | None = 80.0):
    """The log-mel (dB) floored ``top_db`` below each example's maximum (librosa's ``top_db``)."""
    if top_db is None:
        return log_mel_BxMxF
    return jnp.maximum(log_mel_BxMxF, jnp.max(log_mel_BxMxF, axis=(1, 2), keepdims=True) - top_db)


def log_mel_statistics(log_mel_BxMxF, top_db: float | None = 80.0):
    """Summary statistics of a log-mel batch [B, 4M+1]: per band the mean and standard deviation over
    time of the floored log-mel (dB) and of its frame-to-frame differences, and the overall level.

    The probe attacker's features, and the statistics the neural attackers' readout can also see.
    """
    mel = jnp.asarray(log_mel_BxMxF)
    if mel.ndim != 3 or mel.shape[2] < 2:
        raise ValueError(f"log_mel_statistics: expected a log-mel batch [B, mels, frames>=2], got {mel.shape}")
    mel = floor_db(mel, top_db)
    delta = jnp.diff(mel, axis=2)
    level = jnp.mean(mel, axis=(1, 2))[:, None]
    return jnp.concatenate([jnp.mean(mel, axis=2), jnp.std(mel, axis=2),
                            jnp.mean(delta, axis=2), jnp.std(delta, axis=2), level], axis=1)
