"""Room channel: on-device FFT convolution and room_mix against scipy.signal.fftconvolve, and the RIR bank's build time.

Convolution: a batch of clips (default 64 x 32768 samples) filtered by one response each
(8000 taps, 0.5 s at 16 kHz), causal ('full' cut to the clip). Ours is the jitted
``room.fft_convolve`` on the default device (the same three FFTs as the peer), and
``room.fft_filter`` with the responses' spectra computed once (as a bank's are: two
FFTs); the peer is ``scipy.signal.fftconvolve`` on the same float32 batch, as called
(one thread) and with scipy.fft's workers set to the CPU count. ``room_mix`` (four
convolutions plus the levels; with the bank's spectra, and with raw responses) is timed
against the four fftconvolve calls it replaces. Contenders alternate; medians of wall
and of process CPU seconds (user + system, and user alone) are reported, with minor page
faults per call: CPU time is less sensitive to other load, and system time is mostly the
page faults of buffers the allocator handed back to the OS (glibc does so for large
blocks; MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ in the environment keep them).

RIR bank: ``room.build_rir_bank`` for 64 rooms of the default config, no cache, all
worker processes; then the cached read.
"""
from __future__ import annotations

import os
import resource
import statistics
import time

import numpy as np

from experiments.benchmarks import common


def _load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def _usage() -> np.ndarray:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return np.array([r.ru_utime, r.ru_stime, r.ru_minflt], np.float64)


def _timed(fn, usage: list):
    # Wall seconds of one call; the process's [user, system] CPU seconds (all threads) and
    # minor page faults go to ``usage``: on a shared machine a call is preempted, which
    # inflates wall time but not CPU time. System time is mostly page faults: glibc returns
    # large freed buffers to the OS, so each call's fresh buffers fault in again.
    def run():
        u0 = _usage()
        t0 = time.perf_counter()
        fn()
        wall = time.perf_counter() - t0
        usage.append(_usage() - u0)
        return wall
    return run


def convolution(batch: int = 64, length: int = 32768, taps: int = 8000, rounds: int = 7) -> list[dict]:
    """fft_convolve / fft_filter / room_mix vs scipy.signal.fftconvolve on the same batch (records)."""
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
    spectra = jax.block_until_ready(room.response_spectra(paths, length))
    cores = os.cpu_count() or 1

    def scipy_conv(a, h):
        return scipy.signal.fftconvolve(a, h, axes=-1)[:, :length]

    def scipy_one(w):
        with scipy.fft.set_workers(w):
            scipy_conv(x, hs[0])

    def scipy_four(w):
        with scipy.fft.set_workers(w):
            for a, h in ((x, hs[0]), (x, hs[1]), (noise, hs[2]), (noise, hs[3])):
                scipy_conv(a, h)

    want = scipy_conv(x.astype(np.float64), hs[0].astype(np.float64))
    errs = {}
    for name, got in (("ours", room.fft_convolve(xd, paths.talker_mic)),
                      ("ours_spectrum", room.fft_filter(xd, spectra.talker_mic, taps))):
        errs[name] = float(np.max(np.abs(np.asarray(got) - want)) / np.max(np.abs(want)))
    calls = {
        "ours": lambda: room.fft_convolve(xd, paths.talker_mic).block_until_ready(),
        "ours_spectrum": lambda: room.fft_filter(xd, spectra.talker_mic, taps).block_until_ready(),
        "scipy": lambda: scipy_one(1),
        "scipy_workers": lambda: scipy_one(cores),
        "room_mix": lambda: jax.block_until_ready(room.room_mix(xd, nd, spectra)),
        "room_mix_responses": lambda: jax.block_until_ready(room.room_mix(xd, nd, paths)),
        "scipy_4conv": lambda: scipy_four(1),
        "scipy_4conv_workers": lambda: scipy_four(cores),
    }
    for f in calls.values():  # warm-up (compilation, scipy's plan cache)
        f()
    usage = {k: [] for k in calls}
    res = common.alternate({k: _timed(f, usage[k]) for k, f in calls.items()}, rounds)
    med = {k: v["median_s"] for k, v in res.items()}
    mcpu = {k: statistics.median(float(u[0] + u[1]) for u in v) for k, v in usage.items()}
    muser = {k: statistics.median(float(u[0]) for u in v) for k, v in usage.items()}
    mfault = {k: statistics.median(float(u[2]) for u in v) for k, v in usage.items()}
    shape = {"batch": batch, "length": length, "taps": taps, "fft_size": room.fft_size(length + taps - 1),
             "device": str(jax.devices()[0].device_kind), "cpu_count": cores, "rounds": rounds,
             "loadavg": _load()}

    def fig(name, ours, peer, **extra):
        return common.record(
            "room", name, **shape, seconds=med[ours], cpu_seconds=mcpu[ours], user_seconds=muser[ours],
            minor_faults=mfault[ours], scipy_seconds=med[peer], scipy_cpu_seconds=mcpu[peer],
            scipy_user_seconds=muser[peer], scipy_minor_faults=mfault[peer],
            scipy_workers_seconds=med[peer + "_workers"],
            speedup=med[peer] / med[ours], speedup_cpu=mcpu[peer] / mcpu[ours],
            speedup_user=muser[peer] / muser[ours],
            speedup_vs_scipy_workers=med[peer + "_workers"] / med[ours], clips_per_s=batch / med[ours],
            times_s=res[ours]["times_s"], scipy_times_s=res[peer]["times_s"], **extra)

    return [
        fig("fft_convolve_vs_scipy", "ours", "scipy", goal_speedup=1.0, max_rel_error=errs["ours"]),
        fig("fft_filter_spectrum_vs_scipy", "ours_spectrum", "scipy", max_rel_error=errs["ours_spectrum"]),
        fig("room_mix_vs_scipy_4conv", "room_mix", "scipy_4conv",
            rtf=med["room_mix"] / (batch * length / 16000.0)),
        fig("room_mix_responses_vs_scipy_4conv", "room_mix_responses", "scipy_4conv"),
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
