"""MaskGAN speed: generator forward and the full WGAN-GP step, side by side with the torch peer.

Model FLOPs are counted from the layer table (2 per multiply-add, `wavegan.flops_per_clip`)
with the usual accounting backward = 2 x forward: one critic update costs
G + 2 D (real, fake) + 4 D (their backward) + 6 D (gradient penalty: forward, input
gradient, and its parameter gradient), one generator update 3 G + 2 D; a step is 5 critic
updates + 1 generator update. Rounds alternate JAX and the peer; medians are reported.
"""
from __future__ import annotations

import sys
import time

import jax
import jax.numpy as jnp

from experiments.benchmarks import common
from maskgan_jax import gan
from maskgan_jax.models import wavegan

SAMPLE_RATE = 16000
SLICE = 32768
BATCH = 16          # the peer's WGAN-GP batch
GEN_CLIPS = 64      # the peer's generator batch
DIMS = (8, 16)


def step_flops(dim: int, slice_len: int, batch: int, n_critic: int = 5) -> float:
    """Model FLOPs of one WGAN-GP step (n_critic critic updates + one generator update)."""
    f = wavegan.flops_per_clip(dim, slice_len)
    g, d = f["generator"], f["critic"]
    return float(batch * (n_critic * (g + 12 * d) + 3 * g + 2 * d))


def _jax_generator(dim: int, clips: int):
    """A function timing one generator forward over ``clips`` latents (compiled here)."""
    g = wavegan.Generator(dim, SLICE)
    z = wavegan.sample_latent(jax.random.key(0), clips)
    params = g.init(jax.random.key(1), z)
    fn = jax.jit(g.apply)
    fn(params, z).block_until_ready()

    def once() -> float:
        t0 = time.perf_counter()
        fn(params, z).block_until_ready()
        return time.perf_counter() - t0
    return once


def _jax_step(dim: int, batch: int):
    """A function timing one WGAN-GP step (compiled here); the last step's metrics stay in its ``box``."""
    cfg = gan.GanConfig(dim=dim, slice_len=SLICE, batch_size=batch)
    box = {"state": gan.init_state(cfg), "i": 0, "metrics": None}
    step = gan.make_train_step(cfg)
    corpus = jnp.zeros((1,), jnp.float32)

    def once() -> float:
        box["i"] += 1
        key = gan.step_key(box["state"], box["i"])
        t0 = time.perf_counter()
        box["state"], box["metrics"] = step(box["state"], corpus, key)
        jax.block_until_ready(box["metrics"])
        return time.perf_counter() - t0
    once()  # compile
    once.box = box
    return once


def _measure(ctx: common.Context, dim: int) -> dict:
    """Alternating rounds of (JAX generator, JAX step, torch peer) at one width; cached per run."""
    cache_key = ("wavegan", dim)
    if cache_key in ctx._cache:
        return ctx._cache[cache_key]
    rounds = 1 if ctx.quick else max(2, min(ctx.repeats, 3))
    gen_once, step_once = _jax_generator(dim, GEN_CLIPS), _jax_step(dim, BATCH)
    peers = []

    def peer_once() -> float:
        r = common.run_peer(ctx, "wavegan_torch.py", ["--dim", str(dim), "--slice_len", str(SLICE),
                                                      "--batch", str(BATCH), "--steps", "1",
                                                      "--gen_clips", str(GEN_CLIPS)])
        if r is None:
            return float("nan")
        peers.append(r)
        return r["wgan_gp_step_s"]

    fns = {"jax_generator": lambda: min(gen_once() for _ in range(3)), "jax_step": step_once,
           "peer": peer_once}
    got = common.alternate(fns, rounds)
    out = {"rounds": rounds, "jax_generator_s": got["jax_generator"]["median_s"],
           "jax_step_s": got["jax_step"]["median_s"]}
    if peers:
        out["peer_step_s"] = sorted(p["wgan_gp_step_s"] for p in peers)[len(peers) // 2]
        out["peer_generator_s"] = sorted(p["generator_s"] for p in peers)[len(peers) // 2]
        out["peer_threads"] = peers[0]["threads"]
        out["peer_torch"] = peers[0]["torch"]
    ctx._cache[cache_key] = out
    return out


def _rtf(clips: int, seconds: float) -> float:
    return clips * SLICE / SAMPLE_RATE / seconds


def generator_suite(ctx: common.Context) -> list[dict]:
    """Generator forward (64 clips of 32768 samples): seconds, FLOP/s, fraction of matmul peak, RTF."""
    peak = ctx.matmul_peak()["flops_per_s"]
    recs = []
    for dim in DIMS:
        m = _measure(ctx, dim)
        flops = GEN_CLIPS * wavegan.flops_per_clip(dim, SLICE)["generator"]
        rec = {"dim": dim, "slice_len": SLICE, "clips": GEN_CLIPS, "seconds": m["jax_generator_s"],
               "flops": flops, "flops_per_s": flops / m["jax_generator_s"],
               "fraction_of_matmul_peak": flops / m["jax_generator_s"] / peak, "matmul_peak_flops_per_s": peak,
               "rtf": _rtf(GEN_CLIPS, m["jax_generator_s"]), "rounds": m["rounds"]}
        if "peer_generator_s" in m:
            rec.update(peer_seconds=m["peer_generator_s"], peer_rtf=_rtf(GEN_CLIPS, m["peer_generator_s"]),
                       peer_flops_per_s=flops / m["peer_generator_s"],
                       speedup_vs_peer=m["peer_generator_s"] / m["jax_generator_s"],
                       peer_threads=m["peer_threads"], peer=f"torch {m['peer_torch']}")
        recs.append(common.record("wavegan_generator", f"generator_d{dim}", **rec))
    # The `cpu` config's generator (its real-time factor is a goal of its own).
    from experiments.configs.maskgan import get_config
    cpu = get_config("cpu")
    once = _jax_generator(cpu.dim, GEN_CLIPS)
    t = common.time_call(lambda: once(), repeats=3 if ctx.quick else ctx.repeats, warmup=0)["median_s"]
    flops = GEN_CLIPS * wavegan.flops_per_clip(cpu.dim, cpu.slice_len)["generator"]
    recs.append(common.record("wavegan_generator", "generator_cpu_config", dim=cpu.dim, slice_len=cpu.slice_len,
                              clips=GEN_CLIPS, seconds=t, flops_per_s=flops / t,
                              fraction_of_matmul_peak=flops / t / peak, rtf=_rtf(GEN_CLIPS, t)))
    return recs


def step_suite(ctx: common.Context) -> list[dict]:
    """One WGAN-GP step (5 critic + 1 generator update, batch 16, 32768 samples) against the peer."""
    peak = ctx.matmul_peak()["flops_per_s"]
    recs = []
    for dim in DIMS:
        m = _measure(ctx, dim)
        flops = step_flops(dim, SLICE, BATCH)
        rec = {"dim": dim, "slice_len": SLICE, "batch": BATCH, "seconds": m["jax_step_s"], "flops": flops,
               "flops_per_s": flops / m["jax_step_s"], "fraction_of_matmul_peak": flops / m["jax_step_s"] / peak,
               "matmul_peak_flops_per_s": peak, "rounds": m["rounds"]}
        if "peer_step_s" in m:
            rec.update(peer_seconds=m["peer_step_s"], peer_flops_per_s=flops / m["peer_step_s"],
                       speedup_vs_peer=m["peer_step_s"] / m["jax_step_s"], peer=f"torch {m['peer_torch']}")
        recs.append(common.record("wavegan_step", f"wgan_gp_step_d{dim}", **rec))
    from experiments.configs.maskgan import get_config
    cpu = get_config("cpu")
    once = _jax_step(cpu.dim, cpu.batch_size)
    t = common.time_call(lambda: once(), repeats=3 if ctx.quick else ctx.repeats, warmup=0)["median_s"]
    flops = step_flops(cpu.dim, cpu.slice_len, cpu.batch_size)
    recs.append(common.record("wavegan_step", "wgan_gp_step_cpu_config", dim=cpu.dim, batch=cpu.batch_size,
                              slice_len=cpu.slice_len, seconds=t, flops_per_s=flops / t,
                              fraction_of_matmul_peak=flops / t / peak, steps_300_minutes=300 * t / 60))
    print(f"[bench] wavegan: cpu config d={cpu.dim}: {t:.3f} s/step", file=sys.stderr)
    return recs


SUITES = {"wavegan_generator": generator_suite, "wavegan_step": step_suite}
