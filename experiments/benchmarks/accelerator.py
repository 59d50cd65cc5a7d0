"""The `paper` MaskGAN config (d = 64, 32768 samples, batch 64) and the mel front end on an accelerator.

On an accelerator the figures are: the dense-matmul roofline of this run at the model's
own precision (float32 at the backend's default precision, which on NVIDIA GPUs lets XLA
use TF32 tensor cores; HIGHEST and bfloat16 beside it for context), the generator forward
and the full WGAN-GP step of the `paper` config with model FLOP/s and their fraction of
that roofline, the generator's real-time factor, and the on-device mel spectrogram's
throughput. Each part is measured on its own, so one that fails (say, out of memory) is
recorded as an error and the others still run.

On CPU the suite records that it was skipped: a d = 64 step takes minutes here, and the
CPU figures are the `wavegan_*` suites'.
"""
from __future__ import annotations

import time
import traceback

import numpy as np

from experiments.benchmarks import common
from experiments.benchmarks import wavegan as wavegan_bench

SLICE = wavegan_bench.SLICE
SAMPLE_RATE = wavegan_bench.SAMPLE_RATE


def matmul_rooflines(repeats: int = 10, sizes=(4096, 8192)) -> dict:
    """Best square-matmul FLOP/s per precision on the default backend."""
    import jax
    return {label: common.measure_matmul_peak(sizes=sizes, dtype=dtype, precision=precision, repeats=repeats)
            for label, dtype, precision in (("float32_default", "float32", None),
                                            ("float32_highest", "float32", jax.lax.Precision.HIGHEST),
                                            ("bfloat16", "bfloat16", None))}


def _guard(fn) -> dict:
    try:
        return fn()
    except Exception as e:  # recorded, so the other parts still run
        return {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-3000:]}


def _repeat(once, repeats: int) -> dict:
    """Median and min of ``once()``, a function that times one call itself (experiments.benchmarks.wavegan)."""
    times = [once() for _ in range(repeats)]
    return {"seconds": float(np.median(times)), "min_s": float(min(times))}


def paper_generator(dim: int, clips: int, repeats: int) -> dict:
    from maskgan_jax.models import wavegan
    t0 = time.perf_counter()
    once = wavegan_bench._jax_generator(dim, clips)
    setup = time.perf_counter() - t0
    t = _repeat(once, repeats)
    flops = clips * wavegan.flops_per_clip(dim, SLICE)["generator"]
    return {"dim": dim, "clips": clips, **t, "setup_and_compile_s": setup, "flops": flops,
            "flops_per_s": flops / t["seconds"], "rtf": clips * SLICE / SAMPLE_RATE / t["seconds"]}


def paper_step(dim: int, batch: int, repeats: int) -> dict:
    import jax
    t0 = time.perf_counter()
    once = wavegan_bench._jax_step(dim, batch)
    setup = time.perf_counter() - t0
    t = _repeat(once, repeats)
    m = jax.device_get(once.box["metrics"])
    flops = wavegan_bench.step_flops(dim, SLICE, batch)
    return {"dim": dim, "batch": batch, **t, "setup_and_compile_s": setup, "flops": flops,
            "flops_per_s": flops / t["seconds"], "steps_per_hour": 3600.0 / t["seconds"],
            "last_metrics": {k: float(np.asarray(v)) for k, v in m.items() if np.ndim(v) == 0}}


def mel_throughput(clips: int, repeats: int) -> dict:
    import jax

    from maskgan_jax import features
    wave = jax.device_put((0.1 * np.random.default_rng(0).standard_normal((clips, SLICE))).astype(np.float32))
    fn = jax.jit(features.log_mel_spectrogram)
    t = common.time_call(lambda: fn(wave).block_until_ready(), repeats)
    return {"clips": clips, "samples": SLICE, "seconds": t["median_s"], "clips_per_s": clips / t["median_s"],
            "rtf": t["median_s"] / (clips * SLICE / SAMPLE_RATE)}


def accelerator_suite(ctx: common.Context) -> list[dict]:
    """The `paper` config's generator and WGAN-GP step, and mel throughput, on the default backend."""
    import jax
    if jax.default_backend() == "cpu":
        return [common.record("accelerator", "skipped", reason="no accelerator: jax.default_backend() is cpu")]
    from experiments.configs.maskgan import get_config
    paper = get_config("paper")
    repeats = 3 if ctx.quick else max(ctx.repeats, 5)
    device = {"device_kind": jax.devices()[0].device_kind, "device_count": jax.device_count(),
              "jax": jax.__version__}
    roof = _guard(lambda: matmul_rooflines(repeats))
    peak = roof.get("float32_default", {}).get("flops_per_s")
    recs = [common.record("accelerator", "matmul_roofline", **device, **roof)]

    def with_fraction(rec):
        if peak and "flops_per_s" in rec:
            rec["fraction_of_matmul_peak"] = rec["flops_per_s"] / peak
            rec["matmul_peak_flops_per_s"] = peak
            bf16 = roof.get("bfloat16", {}).get("flops_per_s")
            if bf16:
                rec["fraction_of_bf16_peak"] = rec["flops_per_s"] / bf16
        return rec

    gen = _guard(lambda: paper_generator(paper.dim, paper.batch_size, repeats))
    recs.append(common.record("accelerator", "paper_generator", **device, **with_fraction(gen)))
    step = _guard(lambda: paper_step(paper.dim, paper.batch_size, repeats))
    recs.append(common.record("accelerator", "paper_wgan_gp_step", **device, **with_fraction(step)))
    for clips in (64, 2048):
        mel = _guard(lambda c=clips: mel_throughput(c, repeats))
        recs.append(common.record("accelerator", f"mel_{clips}_clips", **device, **mel))
    return recs


SUITES = {"accelerator": accelerator_suite}
