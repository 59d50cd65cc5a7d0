"""The invert adversary's cost and effect: seconds per clip, and the energy it removes from
GAN-masked against white-masked speech at the same level (the control).

The masked clips are synthetic speech (the embedded corpora's source-filter talker) at
-25 dBFS, plus noise 15 dB below it (`levels.mix_at_snr`): one generated clip per recording
from a known latent, or white noise. Reported per kind: the removed energy
10 log10(||mix||^2 / ||residual||^2) (all of the noise is 10 log10(1 + 10^-1.5) = 0.135 dB at
15 dB SNR), the noise reduction with the clean speech known, and the share explained (cos^2).
The white control's reference is what a Z-dimensional linear family explains of anything,
Z/T of its energy.

    python -m experiments.benchmarks.invert [--workdir=MASKGAN_DIR] [--clips=4] [--starts=4] [--steps=200]

A suite for experiments/bench.py once "invert" is in experiments.benchmarks.MODULES.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from experiments.benchmarks import common
from maskgan_jax import invert as inv
from maskgan_jax import levels
from maskgan_jax.data import synthetic_speech as speech
from maskgan_jax.models import wavegan

SNR_DB = 15.0
DIM = 4
SLICE = 32768


def speech_clips(n: int, length: int, seed: int = 0, dbfs: float = -25.0) -> np.ndarray:
    """Synthetic utterances [n, length] at ``dbfs`` RMS (cropped or zero-padded)."""
    rng = np.random.default_rng(seed)
    words = speech.lexicon(rng, 40)
    utts = []
    for i in range(n):
        spk = speech.make_speaker(rng, ("male", "female")[i % 2], "twenties", "")
        phones = tuple(p for _ in range(6) for p in words[int(rng.integers(len(words)))][1])
        utts.append(speech.Utterance(phones, spk, lead_s=0.05, tail_s=0.05))
    out = np.zeros((n, length), np.float32)
    for i, w in enumerate(speech.synthesize(utts, rng)):
        w = np.asarray(w, np.float64)[:length]
        out[i, :len(w)] = w
    rms = np.sqrt(np.mean(out.astype(np.float64) ** 2, axis=-1, keepdims=True))
    return (out * 10 ** (dbfs / 20) / rms).astype(np.float32)


def untrained_generator(dim: int = DIM, slice_len: int = SLICE, seed: int = 0):
    """(generator_fn, params, info) of a freshly initialised WaveGAN generator."""
    gen = wavegan.Generator(dim, slice_len)
    params = jax.jit(gen.init)(jax.random.key(seed), jnp.zeros((1, wavegan.LATENT_DIM)))["params"]
    return inv.wavegan_generator_fn(gen), params, {"generator": "untrained", "dim": dim}


def trained_generator(workdir: str, step: int | None = None):
    """(generator_fn, params, info) of a MaskGAN run's restored generator."""
    from maskgan_jax import gan, gan_load
    config, g_params, got = gan_load.load_generator(workdir, step)
    gen, _ = gan.models(config)
    return inv.wavegan_generator_fn(gen), g_params, {
        "generator": "trained", "workdir": os.path.abspath(workdir), "step": int(got),
        "dim": config.dim}


def measure(generator_fn, params, clips: int = 4, length: int = SLICE, config: inv.InvertConfig = inv.InvertConfig(),
            repeats: int = 2, seed: int = 0) -> dict:
    """Seconds per clip and removed energy for GAN-masked and white-masked speech."""
    clean = speech_clips(clips, length, seed)
    slice_len = inv.slice_len_of(generator_fn, params, wavegan.LATENT_DIM)
    per_clip = -(-length // slice_len)
    z = wavegan.sample_latent(jax.random.key(seed + 1), clips * per_clip)
    gan_noise = np.asarray(jax.jit(generator_fn)(params, z)).reshape(clips, -1)[:, :length]
    white = np.random.default_rng(seed + 2).standard_normal((clips, length)).astype(np.float32)
    mixes = {"gan": levels.mix_at_snr(clean, gan_noise, SNR_DB).wave,
             "white": levels.mix_at_snr(clean, white, SNR_DB).wave}
    keys = jax.random.split(jax.random.key(seed + 3), clips)
    t0 = time.perf_counter()
    jax.block_until_ready(inv.invert(generator_fn, params, mixes["gan"], config, keys=keys))
    compile_s = time.perf_counter() - t0
    out = {"clips": clips, "length": length, "slice_len": slice_len, "snr_db": SNR_DB, "starts": config.starts,
           "steps": config.steps, "learning_rate": config.learning_rate, "gain": config.gain,
           "first_call_s": compile_s, "all_noise_db": 10 * math.log10(1 + 10 ** (-SNR_DB / 10)),
           "linear_family_white_db": -10 * math.log10(1 - wavegan.LATENT_DIM * per_clip / length),
           "gan_rms_dbfs": float(np.mean(levels.rms_dbfs(gan_noise)))}
    times = []
    for _ in range(repeats):
        for kind, mix in mixes.items():
            t0 = time.perf_counter()
            res = jax.block_until_ready(inv.invert(generator_fn, params, mix, config, keys=keys))
            times.append(time.perf_counter() - t0)
            removed = np.asarray(res.removed_db_B, np.float64)
            nr = inv.noise_reduction_db(clean, mix, res.residual_BxT)
            out[kind] = {"removed_db": removed.tolist(), "removed_db_mean": float(removed.mean()),
                         "noise_reduction_db": nr.tolist(), "noise_reduction_db_mean": float(nr.mean()),
                         "fit_mean": float(np.mean(np.asarray(res.fit_BxN)))}
    # The share the true latents explain: a search that reaches it found the truth's basin; above it,
    # the family also absorbs speech (the attacker's objective cannot tell the two apart).
    out["gan"].update(_true_latent(clean, mixes["gan"], gan_noise))
    out["seconds_per_clip"] = float(np.median(times)) / clips
    # Other work on a shared machine stretches the times; the load says how much to trust them.
    out["load_average_1m"] = os.getloadavg()[0]
    out["times_s"] = times
    return out


def _true_latent(clean_BxT, mix_BxT, noise_BxT) -> dict:
    """What the true latents give with the least-squares gain: the share explained and the noise reduction."""
    m = np.asarray(mix_BxT, np.float64)
    g = np.asarray(noise_BxT, np.float64)
    gm, gg = np.sum(m * g, -1), np.sum(g * g, -1)
    residual = m - (gm / gg)[:, None] * g
    return {"fit_true_latent_mean": float(np.mean(gm ** 2 / gg / np.sum(m * m, -1))),
            "noise_reduction_db_true_latent_mean": float(np.mean(inv.noise_reduction_db(clean_BxT, m, residual)))}


def invert_suite(ctx: common.Context) -> list[dict]:
    """The invert adversary on an untrained d=4 WaveGAN (32768 samples): time per clip, GAN vs white."""
    cfg = inv.InvertConfig(starts=2 if ctx.quick else 4, steps=20 if ctx.quick else 200)
    fn, params, info = untrained_generator()
    m = measure(fn, params, clips=2 if ctx.quick else 4, config=cfg, repeats=1 if ctx.quick else 2)
    return [common.record("invert", f"invert_d{DIM}_{cfg.starts}x{cfg.steps}", **info, **m)]


SUITES = {"invert": invert_suite}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", default=None, help="a MaskGAN workdir (default: an untrained d=4 generator)")
    p.add_argument("--clips", type=int, default=4)
    p.add_argument("--starts", type=int, default=4)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--learning_rate", type=float, default=inv.InvertConfig.learning_rate)
    p.add_argument("--gain", default="lstsq", choices=inv.GAINS)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    fn, params, info = trained_generator(a.workdir) if a.workdir else untrained_generator(seed=a.seed)
    cfg = inv.InvertConfig(starts=a.starts, steps=a.steps, learning_rate=a.learning_rate, gain=a.gain)
    m = measure(fn, params, clips=a.clips, config=cfg, repeats=a.repeats, seed=a.seed)
    print(json.dumps(common.record("invert", "invert", **info, **m, machine=common.machine())))


if __name__ == "__main__":
    main()
