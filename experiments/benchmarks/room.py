"""Room channel: on-device FFT convolution and room_mix against scipy.signal.fftconvolve, and the RIR bank's build time.

Convolution: a batch of clips (default 64 x 32768 samples) filtered by one response each
(8000 taps, 0.5 s at 16 kHz), causal ('full' cut to the clip). Ours is the jitted
``room.fft_convolve`` on the default device; the peer is ``scipy.signal.fftconvolve``
on the same float32 batch, as called (one thread) and with scipy.fft's workers set to the
CPU count. ``room_mix`` (four convolutions plus the levels) is timed against the four
fftconvolve calls it replaces. Contenders alternate, medians are reported.

RIR bank: ``room.build_rir_bank`` for 64 rooms of the default config, no cache, all
worker processes; then the cached read.
"""
from __future__ import annotations

import os
import time

import numpy as np

from experiments.benchmarks import common


def _load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def _timed(fn):
    def run():
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0
    return run


def convolution(batch: int = 64, length: int = 32768, taps: int = 8000, rounds: int = 7) -> list[dict]:
    """fft_convolve and room_mix vs scipy.signal.fftconvolve on the same batch (records)."""
    import jax
    import scipy.fft
    import scipy.signal

    from maskgan_jax import room

    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal((batch, length))).astype(np.float32)
    noise = rng.standard_normal((batch, length)).astype(np.float32)
    decay = np.exp(-np.arange(taps) / (0.05 * 16000)).astype(np.float32)
    hs = [(rng.standard_normal((batch, taps)) * decay).astype(np.float32) for _ in range(4)]
    xd, nd = jax.device_put(x), jax.device_put(noise)
    paths = room.Paths(*(jax.device_put(h) for h in hs))
    cores = os.cpu_count() or 1

    def scipy_conv(a, h):
        return scipy.signal.fftconvolve(a, h, axes=-1)[:, :length]

    def scipy_all(w):
        with scipy.fft.set_workers(w):
            scipy_conv(x, hs[0])

    def scipy_mix(w):
        with scipy.fft.set_workers(w):
            for a, h in ((x, hs[0]), (x, hs[1]), (noise, hs[2]), (noise, hs[3])):
                scipy_conv(a, h)

    got = np.asarray(room.fft_convolve(xd, paths.talker_mic))
    want = scipy_conv(x.astype(np.float64), hs[0].astype(np.float64))
    err = float(np.max(np.abs(got - want)) / np.max(np.abs(want)))
    jax.block_until_ready(room.room_mix(xd, nd, paths))
    contenders = {
        "ours": _timed(lambda: room.fft_convolve(xd, paths.talker_mic).block_until_ready()),
        "scipy": _timed(lambda: scipy_all(1)),
        "scipy_workers": _timed(lambda: scipy_all(cores)),
        "room_mix": _timed(lambda: jax.block_until_ready(room.room_mix(xd, nd, paths))),
        "scipy_4conv": _timed(lambda: scipy_mix(1)),
        "scipy_4conv_workers": _timed(lambda: scipy_mix(cores)),
    }
    for f in contenders.values():  # warm-up (compilation, scipy's plan cache)
        f()
    res = common.alternate(contenders, rounds)
    med = {k: v["median_s"] for k, v in res.items()}
    shape = {"batch": batch, "length": length, "taps": taps, "fft_size": room.fft_size(length + taps - 1),
             "device": str(jax.devices()[0].device_kind), "cpu_count": cores, "rounds": rounds,
             "loadavg": _load()}
    return [
        common.record("room", "fft_convolve_vs_scipy", **shape, seconds=med["ours"],
                      scipy_seconds=med["scipy"], scipy_workers_seconds=med["scipy_workers"],
                      speedup=med["scipy"] / med["ours"], speedup_vs_scipy_workers=med["scipy_workers"] / med["ours"],
                      goal_speedup=1.0, max_rel_error=err,
                      clips_per_s=batch / med["ours"], times_s=res["ours"]["times_s"],
                      scipy_times_s=res["scipy"]["times_s"], scipy_workers_times_s=res["scipy_workers"]["times_s"]),
        common.record("room", "room_mix_vs_scipy_4conv", **shape, seconds=med["room_mix"],
                      scipy_seconds=med["scipy_4conv"], scipy_workers_seconds=med["scipy_4conv_workers"],
                      speedup=med["scipy_4conv"] / med["room_mix"],
                      speedup_vs_scipy_workers=med["scipy_4conv_workers"] / med["room_mix"],
                      clips_per_s=batch / med["room_mix"],
                      rtf=med["room_mix"] / (batch * length / 16000.0), times_s=res["room_mix"]["times_s"]),
    ]


def bank_build(n_rooms: int = 64, config=None, workers: int | None = None) -> dict:
    """Seconds to simulate a bank of ``n_rooms`` rooms (no cache), and to read it back cached."""
    import tempfile

    from maskgan_jax import host_workers, room
    config = config or room.RoomConfig()
    workers = host_workers.default_workers(n_rooms) if workers is None else workers
    with tempfile.TemporaryDirectory(prefix="bench-rirbank-") as tmp:
        t0 = time.perf_counter()
        bank = room.build_rir_bank(config, seed=0, n_rooms=n_rooms, cache_dir=tmp, workers=workers)
        build = time.perf_counter() - t0
        t0 = time.perf_counter()
        room.build_rir_bank(config, seed=0, n_rooms=n_rooms, cache_dir=tmp)
        read = time.perf_counter() - t0
        size = os.path.getsize(room.cache_path(tmp, config, 0, n_rooms))
    err = np.abs(bank.rt60_measured / bank.rt60[:, None] - 1.0)
    return common.record("room", "rir_bank_build", n_rooms=n_rooms, workers=workers, seconds=build,
                         seconds_per_room=build / n_rooms, cached_read_seconds=read, cache_bytes=size,
                         rir_length=config.rir_length, max_order_median=float(np.median(bank.max_order)),
                         rt60_rel_error_median=float(np.nanmedian(err)), rt60_rel_error_max=float(np.nanmax(err)),
                         absorption_corrections=float(np.mean(bank.absorption != bank.absorption_sabine)),
                         loadavg=_load())


def room_suite(ctx: common.Context) -> list[dict]:
    """Room convolution vs scipy (64 x 32768, 8000 taps) and the RIR bank's build time (64 rooms)."""
    if ctx.quick:
        return convolution(batch=8, rounds=2) + [bank_build(n_rooms=2)]
    return convolution(rounds=max(7, ctx.repeats)) + [bank_build()]


SUITES = {"room": room_suite}
