"""The ``invert`` adversary in the attack: it knows the MaskGAN generator and subtracts its noise.

For every clip of the corpus the adversary hears the clip masked with its test-time noise
(the same noise per clip as every other adversary, `keys.test_noise`), searches the
generator's latent for the noise that best explains the recording (`invert.invert`),
subtracts it, and works on the residual: it trains, validates and is tested on residuals.
The search costs a few hundred generator passes per clip, so the residuals are computed once
per (corpus, noise, level, generator, seed) and cached as int16 ``.npy`` beside the study's
other caches. The same procedure on white-masked audio is the control: what a latent family
explains of noise it did not make.
"""
from __future__ import annotations

import os
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from maskgan_jax import audio, gan, gan_load, invert, keys, masking, parallel, results
from maskgan_jax.data.batches import ArrayData


def generator_spec(cfg) -> str:
    """The MaskGAN the adversary knows: ``invert_gan`` if given, else the cell's own GAN noise."""
    spec = cfg.invert_gan or (cfg.noise if masking.parse_noise(cfg.noise).kind == "gan" else "")
    if not spec:
        raise ValueError("--adversary=invert needs the generator it knows: a gan:DIR noise or --invert_gan=gan:DIR")
    parsed = masking.parse_noise(spec)
    if parsed.kind != "gan":
        raise ValueError(f"--invert_gan={spec!r}: expected gan:DIR")
    return parsed.path


def residual_data(cfg, data: ArrayData, program: masking.NoiseProgram, snr_db: float, cache_dir: str | None,
                  log: Callable[[str], None] = print, batch: int = 16) -> tuple[ArrayData, dict]:
    """The corpus as the invert adversary hears it (int16 residuals), and what the search removed.

    Returns (ArrayData with the residual audio, {"removed_db": mean over clips, per-clip list, ...}).
    """
    workdir = generator_spec(cfg)
    config, params, step = gan_load.load_generator(workdir)
    gen, _ = gan.models(config)
    fn = invert.wavegan_generator_fn(gen)
    icfg = invert.InvertConfig(starts=cfg.invert_starts, steps=cfg.invert_steps, seed=cfg.seed)
    where = ("workdir", "folder")   # where the noise lives is not what it is (copied caches stay valid)
    ident = {"noise": {k: v for k, v in (program.info or {}).items() if k not in where}, "snr_db": snr_db,
             "generator": {"config": config.to_json(), "step": step},
             "invert": [icfg.starts, icfg.steps, icfg.learning_rate, icfg.gain], "seed": cfg.seed,
             "clips": list(np.asarray(data.audio).shape), "corpus": data.name}
    fp = results.fingerprint(ident)
    path = os.path.join(cache_dir, f"residuals-{fp}.npy") if cache_dir else None
    info_path = path[:-4] + ".json" if path else None
    if path and os.path.exists(path) and os.path.exists(info_path):
        residual = np.load(path, allow_pickle=False)
        info = results.read_jsonl(info_path)[0]
    else:
        t0 = time.perf_counter()
        n = data.audio.shape[0]
        log(f"[invert] searching the generator's latent for {n} clips ({icfg.starts} starts x {icfg.steps} steps)")
        residual = np.empty(data.audio.shape, np.int16)
        removed = np.empty(n, np.float64)
        reduced = np.empty(n, np.float64)
        test_key = keys.test_noise(cfg.seed)
        mix_fn = jax.jit(masking.mix)
        for s in range(0, n, batch):
            rows = np.arange(s, min(n, s + batch))
            clean = audio.int16_to_float(np.asarray(data.audio[rows]))
            mixed, _ = mix_fn(jnp.asarray(clean), program(test_key, rows), np.float32(snr_db))
            out = invert.invert(fn, params, mixed, icfg, keys=keys.per_example(test_key, jnp.asarray(rows)),
                                snr_db=snr_db, latent_dim=config.latent_dim)
            residual[rows] = audio.float_to_int16(np.clip(np.asarray(out.residual_BxT), -1.0, 1.0))[0]
            removed[rows] = np.asarray(out.removed_db_B)
            # What the attacker cannot see but the study can: how much of the noise itself went.
            reduced[rows] = invert.noise_reduction_db(clean, np.asarray(mixed), np.asarray(out.residual_BxT))
        info = {"removed_db": float(np.mean(removed)), "noise_reduction_db": float(np.mean(reduced)),
                "removed_db_per_clip": removed.tolist(),
                "generator": workdir, "generator_step": step, "starts": icfg.starts, "steps": icfg.steps,
                "seconds": time.perf_counter() - t0, "fingerprint": fp}
        log(f"[invert] {n} clips in {info['seconds']:.1f} s; the masking noise reduced by "
            f"{info['noise_reduction_db']:.1f} dB on average")
        if path and parallel.is_main_process():
            os.makedirs(cache_dir, exist_ok=True)
            tmp = f"{path}.{os.getpid()}.tmp.npy"
            np.save(tmp, residual, allow_pickle=False)
            os.replace(tmp, path)
            results.write_jsonl_atomic(info_path, [info])
    out = ArrayData(residual, data.labels, data.groups, data.splits, data.classes, data.name)
    return out, {k: v for k, v in info.items() if k != "removed_db_per_clip"}
