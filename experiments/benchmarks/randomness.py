"""Randomness-test benchmarks: kernels.runs / kernels.cox_stuart against statsmodels and
against numpy's sum over the same array (the memory-bandwidth yardstick), side by side."""
from __future__ import annotations

import os
import statistics
import time

import numpy as np

from experiments.benchmarks import common

_N = 10 ** 7


def _timed(fn, cpu: list | None = None):
    # Wall seconds of one call; with ``cpu``, the calling thread's CPU seconds are appended
    # there too (on a loaded machine a call longer than a scheduler slice is preempted,
    # which inflates its wall time but not its CPU time).
    def run():
        c0 = time.thread_time()
        t0 = time.perf_counter()
        fn()
        wall = time.perf_counter() - t0
        if cpu is not None:
            cpu.append(time.thread_time() - c0)
        return wall
    return run


def _load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def _data(n):
    rng = np.random.default_rng(0)
    x32 = rng.standard_normal(n, dtype=np.float32)
    x16 = np.clip(np.rint(x32 * 3000.0), -32768, 32767).astype(np.int16)
    return x16, x32


def _vs_sum(suite, name, fn, x, rounds):
    import numba
    old = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        fn(x)
        np.sum(x)
        cpu_ours, cpu_ref = [], []
        res = common.alternate({"ours": _timed(lambda: fn(x), cpu_ours),
                                "numpy_sum": _timed(lambda: np.sum(x), cpu_ref)}, rounds)
    finally:
        numba.set_num_threads(old)
    ours, ref = res["ours"]["median_s"], res["numpy_sum"]["median_s"]
    return common.record(suite, name, dtype=str(x.dtype), samples=int(x.size), threads=1,
                         seconds=ours, numpy_sum_seconds=ref, samples_per_s=x.size / ours,
                         numpy_sum_samples_per_s=x.size / ref, ratio_to_numpy_sum=ref / ours,
                         # Best-of ratio: on a loaded machine the longer call loses more to
                         # preemption, so the medians' ratio understates ours.
                         ratio_to_numpy_sum_min=res["numpy_sum"]["min_s"] / res["ours"]["min_s"],
                         # The same from thread CPU time, which preemption does not inflate.
                         ratio_to_numpy_sum_cpu=statistics.median(cpu_ref) / statistics.median(cpu_ours),
                         ratio_to_numpy_sum_cpu_min=min(cpu_ref) / min(cpu_ours),
                         times_s=res["ours"]["times_s"], numpy_sum_times_s=res["numpy_sum"]["times_s"],
                         cpu_times_s=cpu_ours, numpy_sum_cpu_times_s=cpu_ref, loadavg=_load())


def runs(ctx: common.Context) -> list[dict]:
    """(a) wald_wolfowitz vs statsmodels' runstest_1samp on float32; (b) vs numpy sum, one core."""
    from statsmodels.sandbox.stats.runs import runstest_1samp

    from kernels import wald_wolfowitz
    n = 10 ** 6 if ctx.quick else _N
    x16, x32 = _data(n)
    out = []
    wald_wolfowitz(x32)
    rounds = 2 if ctx.quick else max(3, ctx.repeats)
    res = common.alternate({"ours": _timed(lambda: wald_wolfowitz(x32)),
                            "statsmodels": _timed(lambda: runstest_1samp(x32, cutoff="median"))}, rounds)
    ours, sm = res["ours"]["median_s"], res["statsmodels"]["median_s"]
    got, want = wald_wolfowitz(x32), runstest_1samp(x32, cutoff="median")
    out.append(common.record("runs", "vs_statsmodels_float32", samples=n, seconds=ours,
                             statsmodels_seconds=sm, speedup=sm / ours, goal_speedup=30.0,
                             samples_per_s=n / ours, statsmodels_samples_per_s=n / sm,
                             max_abs_diff_z=abs(got.z - want[0]), loadavg=_load()))
    rounds = 3 if ctx.quick else max(15, ctx.repeats)
    for x, goal in ((x16, 0.5), (x32, 0.25)):
        rec = _vs_sum("runs", f"wald_wolfowitz_vs_numpy_sum_{x.dtype}", wald_wolfowitz, x, rounds)
        rec["goal_ratio"] = goal
        out.append(rec)
    return out


def cox_stuart(ctx: common.Context) -> list[dict]:
    """Cox–Stuart vs numpy sum over the same array, one core (goal >= 0.5x)."""
    from kernels import cox_stuart as cs
    n = 10 ** 6 if ctx.quick else _N
    x16, x32 = _data(n)
    rounds = 3 if ctx.quick else max(7, ctx.repeats)
    out = []
    for x in (x16, x32):
        rec = _vs_sum("cox_stuart", f"cox_stuart_vs_numpy_sum_{x.dtype}", cs, x, rounds)
        rec["goal_ratio"] = 0.5
        out.append(rec)
    return out


def runs_batched(ctx: common.Context) -> list[dict]:
    """(c) score_clips on 10,000 clips x 32768 int16 samples, all cores vs one core."""
    import numba

    from kernels import cox_stuart_batch, score_clips, wald_wolfowitz_batch
    clips = 500 if ctx.quick else 10_000
    rng = np.random.default_rng(1)
    x = np.clip(np.rint(rng.standard_normal((clips, 32768), dtype=np.float32) * 3000.0),
                -32768, 32767).astype(np.int16)
    out = []
    cores = numba.config.NUMBA_NUM_THREADS
    score_clips(x[:8])
    for name, fn in (("score_clips", score_clips), ("wald_wolfowitz_batch", wald_wolfowitz_batch),
                     ("cox_stuart_batch", cox_stuart_batch)):
        res = common.alternate({t: _timed(lambda t=t: fn(x, num_threads=t)) for t in sorted({1, cores})},
                               2 if ctx.quick else 3)
        for t, r in res.items():
            out.append(common.record("runs_batched", f"{name}_{t}threads", clips=clips, samples=32768,
                                     threads=t, seconds=r["median_s"],
                                     samples_per_s=x.size / r["median_s"],
                                     clips_per_s=clips / r["median_s"], times_s=r["times_s"],
                                     loadavg=_load()))
    return out


SUITES = {"runs": runs, "cox_stuart": cox_stuart, "runs_batched": runs_batched}
