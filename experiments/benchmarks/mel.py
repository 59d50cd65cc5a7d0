"""Mel spectrogram: the jitted JAX transform against librosa on the same batch, side by side.

Figures (one record each, librosa's figure and the ratio beside it): throughput in clips/s
and samples/s, real-time factor (processing seconds per second of audio, lower is
better), and process CPU seconds per batch (all threads; less sensitive than wall time
to other load on a shared machine). The default transform (the host kernel on one CPU
device), the pure-XLA transform (``impl="xla"``, suffix ``_xla``) and a naive jitted
version (gather framing, one rfft, dense mel matmul; suffix ``_naive``) are timed in the
same rounds. Contenders alternate in blocks (one untimed call, then BLOCK timed calls)
after a warm-up; medians over all timed calls are reported.
"""
from __future__ import annotations

import resource
import statistics
import time

import numpy as np

from experiments.benchmarks import common

SAMPLE_RATE = 16000
N_FFT, HOP, N_MELS = 1024, 256, 128
BLOCK = 3  # timed calls per contender per round, after one untimed call


def _cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _naive_mel(sample_rate, n_fft, hop, n_mels):
    """Gather framing + rfft + dense mel matmul: the straightforward jitted version."""
    import jax
    import jax.numpy as jnp
    import librosa

    window = jnp.asarray((0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32))
    mel = jnp.asarray(librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels))

    def fn(x):
        xp = jnp.pad(x, ((0, 0), (n_fft // 2, n_fft // 2)))
        num_frames = 1 + (xp.shape[-1] - n_fft) // hop
        idx = np.arange(num_frames)[:, None] * hop + np.arange(n_fft)[None, :]
        spec = jnp.fft.rfft(xp[:, idx] * window, axis=-1)
        power = jnp.real(spec) ** 2 + jnp.imag(spec) ** 2
        return jnp.einsum("mk,bfk->bmf", mel, power, precision=jax.lax.Precision.HIGHEST)

    return jax.jit(fn)


def mel_suite(ctx: common.Context) -> list[dict]:
    """JAX mel spectrogram vs librosa.feature.melspectrogram on 64 clips x 32768 samples."""
    import jax
    import librosa

    from maskgan_jax import features

    batch, length = (16, 32768) if ctx.quick else (64, 32768)
    rounds = 2 if ctx.quick else max(ctx.repeats, 5)
    wave = (0.1 * np.random.default_rng(0).standard_normal((batch, length))).astype(np.float32)
    wave_dev = jax.device_put(wave)

    jax_fn = jax.jit(lambda x: features.mel_spectrogram(x, SAMPLE_RATE, N_FFT, HOP, N_MELS))
    xla_fn = jax.jit(lambda x: features.mel_spectrogram(x, SAMPLE_RATE, N_FFT, HOP, N_MELS, impl="xla"))
    naive_fn = _naive_mel(SAMPLE_RATE, N_FFT, HOP, N_MELS)
    fns = {"jax": jax_fn, "jax_xla": xla_fn, "jax_naive": naive_fn}

    def run_librosa():
        return librosa.feature.melspectrogram(y=wave, sr=SAMPLE_RATE, n_fft=N_FFT,
                                              hop_length=HOP, n_mels=N_MELS)

    contenders = {
        "jax": lambda: jax_fn(wave_dev).block_until_ready(),
        "librosa": run_librosa,
        "jax_xla": lambda: xla_fn(wave_dev).block_until_ready(),
        "jax_naive": lambda: naive_fn(wave_dev).block_until_ready(),
    }
    # Warm-up (compilation, librosa's filterbank cache), and the accuracy check.
    ref = run_librosa()
    errors = {}
    for name, fn in fns.items():
        for _ in range(max(ctx.warmup, 1)):
            contenders[name]()
        got = np.asarray(fn(wave_dev))
        errors[name] = float((np.abs(got - ref).max(axis=(1, 2)) / ref.max(axis=(1, 2))).max())

    wall = {k: [] for k in contenders}
    cpu = {k: [] for k in contenders}
    for _ in range(rounds):
        for name, fn in contenders.items():
            # Blocks, not single calls, alternate: one untimed call first, so that worker
            # threads the previous contender left spinning (OpenBLAS's, after librosa's
            # filterbank product) or asleep are not charged to this one.
            fn()
            for _ in range(BLOCK):
                c0, t0 = _cpu_seconds(), time.perf_counter()
                fn()
                wall[name].append(time.perf_counter() - t0)
                cpu[name].append(_cpu_seconds() - c0)
    med = {k: statistics.median(v) for k, v in wall.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    audio_s = batch * length / SAMPLE_RATE
    setup = {"batch": batch, "samples": length, "sample_rate": SAMPLE_RATE, "n_fft": N_FFT,
             "hop_length": HOP, "n_mels": N_MELS, "rounds": rounds, "peer": "librosa",
             "librosa": librosa.__version__, "wall_s": wall, "cpu_s": cpu}

    def fig(name, unit, value, peer, higher_is_better, **extra):
        ratio = value / peer if higher_is_better else peer / value
        return common.record("mel", name, unit=unit, value=value, peer_value=peer,
                             ratio=ratio, ratio_meaning="JAX speed-up over librosa",
                             **extra, **setup)

    records = []
    impls = {"jax": features.default_impl(N_FFT), "jax_xla": "xla", "jax_naive": "naive"}
    for who in fns:
        suffix = "" if who == "jax" else who[3:]
        # max_err: largest |JAX - librosa| over the batch, relative to each clip's maximum.
        extra = {"contender": who, "impl": impls[who], "max_err": errors[who]}
        records += [
            fig(f"throughput_clips{suffix}", "clips/s", batch / med[who], batch / med["librosa"], True, **extra),
            fig(f"throughput_samples{suffix}", "samples/s", batch * length / med[who],
                batch * length / med["librosa"], True, **extra),
            fig(f"real_time_factor{suffix}", "s per s of audio", med[who] / audio_s,
                med["librosa"] / audio_s, False, **extra),
            fig(f"cpu_seconds_per_batch{suffix}", "CPU s", med_cpu[who], med_cpu["librosa"], False, **extra),
        ]
    return records


SUITES = {"mel": mel_suite}
