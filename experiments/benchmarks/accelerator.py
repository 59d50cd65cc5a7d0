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

SLICE = 32768
SAMPLE_RATE = 16000


def _timed(fn, repeats: int, warmup: int = 1) -> dict:
    import jax
    t0 = time.perf_counter()
    for _ in range(warmup):
        jax.block_until_ready(fn())
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return {"median_s": float(np.median(times)), "min_s": float(min(times)), "times_s": times,
            "first_call_s": first}


def matmul_rooflines(repeats: int = 10, sizes=(4096, 8192)) -> dict:
    """Best square-matmul FLOP/s per precision on the default backend."""
    import jax
    import jax.numpy as jnp
    out = {}
    rng = np.random.default_rng(0)
    for label, dtype, precision in (("float32_default", jnp.float32, None),
                                    ("float32_highest", jnp.float32, jax.lax.Precision.HIGHEST),
                                    ("bfloat16", jnp.bfloat16, None)):
        best = {"flops_per_s": 0.0}
        for n in sizes:
            a = jnp.asarray(rng.standard_normal((n, n), np.float32), dtype)
            f = jax.jit(lambda x, y, p=precision: jnp.dot(x, y, precision=p))
            t = _timed(lambda: f(a, a), repeats)
            fl = 2.0 * n ** 3 / t["min_s"]
            if fl > best["flops_per_s"]:
                best = {"flops_per_s": fl, "n": n}
        out[label] = best
    return out


def _guard(name: str, fn) -> dict:
    try:
        return fn()
    except Exception as e:  # recorded, so the other parts still run
        return {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-3000:]}


def paper_generator(dim: int, clips: int, repeats: int) -> dict:
    import jax

    from maskgan_jax.models import wavegan
    g = wavegan.Generator(dim, SLICE)
    z = wavegan.sample_latent(jax.random.key(0), clips)
    params = g.init(jax.random.key(1), z)
    fn = jax.jit(g.apply)
    t = _timed(lambda: fn(params, z), repeats)
    flops = clips * wavegan.flops_per_clip(dim, SLICE)["generator"]
    return {"dim": dim, "clips": clips, "seconds": t["median_s"], "min_s": t["min_s"],
            "compile_and_first_s": t["first_call_s"], "flops": flops,
            "flops_per_s": flops / t["median_s"], "rtf": clips * SLICE / SAMPLE_RATE / t["median_s"]}


def paper_step(dim: int, batch: int, repeats: int) -> dict:
    import jax
    import jax.numpy as jnp

    from experiments.benchmarks.wavegan import step_flops
    from maskgan_jax import gan
    cfg = gan.GanConfig(dim=dim, slice_len=SLICE, batch_size=batch)
    box = {"state": gan.init_state(cfg), "i": 0}
    step = gan.make_train_step(cfg)
    corpus = jnp.zeros((1,), jnp.float32)

    def once():
        box["i"] += 1
        box["state"], m = step(box["state"], corpus, gan.step_key(box["state"], box["i"]))
        return m
    t = _timed(once, repeats)
    m = jax.device_get(once())
    flops = step_flops(dim, SLICE, batch, cfg.n_critic)
    return {"dim": dim, "batch": batch, "seconds": t["median_s"], "min_s": t["min_s"],
            "compile_and_first_s": t["first_call_s"], "flops": flops, "flops_per_s": flops / t["median_s"],
            "steps_per_hour": 3600.0 / t["median_s"],
            "last_metrics": {k: float(np.asarray(v)) for k, v in m.items() if np.ndim(v) == 0}}


def mel_throughput(clips: int, repeats: int) -> dict:
    import jax

    from maskgan_jax import features
    wave = jax.device_put((0.1 * np.random.default_rng(0).standard_normal((clips, SLICE))).astype(np.float32))
    fn = jax.jit(features.log_mel_spectrogram)
    t = _timed(lambda: fn(wave), repeats)
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
    roof = _guard("matmul", lambda: matmul_rooflines(repeats))
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

    gen = _guard("generator", lambda: paper_generator(paper.dim, paper.batch_size, repeats))
    recs.append(common.record("accelerator", "paper_generator", **device, **with_fraction(gen)))
    step = _guard("step", lambda: paper_step(paper.dim, paper.batch_size, repeats))
    recs.append(common.record("accelerator", "paper_wgan_gp_step", **device, **with_fraction(step)))
    for clips in (64, 2048):
        mel = _guard("mel", lambda c=clips: mel_throughput(c, repeats))
        recs.append(common.record("accelerator", f"mel_{clips}_clips", **device, **mel))
    return recs


SUITES = {"accelerator": accelerator_suite}
