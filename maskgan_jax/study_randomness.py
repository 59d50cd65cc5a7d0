"""The study's randomness stage: Wald–Wolfowitz and Cox–Stuart scores of clean, masked and noise audio.

Per task, a seeded sample of clips is scored clean and mixed with every noise at every level
(the same per-clip noise the attacks hear: `masking` programs keyed like the test noise);
the noises alone are scored at the reference level. Scores are on int16 PCM (`kernels`).
Each task's records carry a fingerprint and are recomputed only when it changes.
"""
from __future__ import annotations

import os
import time

import jax
import jax.numpy as jnp
import numpy as np

import kernels
from maskgan_jax import audio, keys, levels, masking, metrics, results
from maskgan_jax.study_config import StudyConfig
from maskgan_jax.study_gan import masker_identity, noise_spec
from maskgan_jax.study_noises import example_corpus, noise_clips, reference_level

# Bump when the randomness records gain or change fields, so cached ones are recomputed.
RANDOMNESS_FORMAT = 2
_mix = jax.jit(masking.mix)


def score_int16(x_CxT: np.ndarray) -> dict:
    """Per-clip Wald–Wolfowitz and Cox–Stuart p-values of int16 clips [C, T] (kernels/)."""
    s = kernels.score_clips(np.ascontiguousarray(x_CxT, dtype=np.int16))
    return {"ww_p": np.asarray(s["ww_p"], np.float64), "cs_p": np.asarray(s["cs_p"], np.float64),
            "ww_z": np.asarray(s["ww_z"], np.float64)}


def _to_int16(wave) -> np.ndarray:
    return audio.float_to_int16(np.clip(np.asarray(wave), -1.0, 1.0))[0]


def _record(task, source, noise, level, ps: dict, extra: dict) -> dict:
    rec = {"kind": "randomness", "task": task, "source": source, "noise": noise, "noise_spl": level,
           "n": int(ps["ww_p"].size)}
    for test in ("ww", "cs"):
        s = metrics.randomness_summary(ps[f"{test}_p"])
        rec.update({f"{test}_mean_p": s["mean_p"], f"{test}_ci95": s["ci95"],
                    f"{test}_frac_below": s["frac_below_alpha"]})
    if "ww_z" in ps:
        # p-values of audio saturate at 0; |z| still orders how far from random a set is.
        rec["ww_mean_abs_z"] = float(np.mean(np.abs(ps["ww_z"])))
    rec.update(extra)
    return rec


def _cached(path: str, fp: str) -> list[dict] | None:
    old = results.read_jsonl(path)
    return old if old and all(r.get("fingerprint") == fp for r in old) else None


def _score_task(cfg: StudyConfig, out_dir: str, task: str, st, fp: str) -> list[dict]:
    n = min(cfg.randomness_clips, len(st))
    idx = np.sort(keys.randomness_sample(cfg.report_seed).permutation(len(st))[:n])
    pcm = np.asarray(st.audio[idx])
    recs = [_record(task, "clean", "none", None, score_int16(pcm), {"fingerprint": fp})]
    clean = jnp.asarray(audio.int16_to_float(pcm))
    for noise in cfg.noises:
        # Drawn once per noise and mixed at every level by one compiled mix.
        program = masking.noise_program(noise_spec(cfg, out_dir, noise), pcm.shape[1], corpus=st)
        noise_BxT = program(keys.test_noise(cfg.report_seed), idx)
        for lv in cfg.levels:
            snr = masking.check_levels(lv, cfg.speech_spl, cfg.allow_above_comfort)
            mixed, _ = _mix(clean, noise_BxT, np.float32(snr))
            recs.append(_record(task, "masked", noise, float(lv), score_int16(_to_int16(mixed)),
                                {"fingerprint": fp}))
    return recs


def stage_randomness(cfg: StudyConfig, out_dir: str, stores: dict, gan_fp: str | None, log) -> bool:
    """Randomness of clean, masked (every noise and level) audio per dataset, and of the noises
    (OUT/randomness/*.jsonl); True when a set was scored."""
    computed = False
    ident = {"format": RANDOMNESS_FORMAT, "clips": cfg.randomness_clips, "noise_clips": cfg.noise_clips,
             "levels": list(cfg.levels), "noises": list(cfg.noises), "speech_spl": cfg.speech_spl,
             "gan": gan_fp, "seed": cfg.report_seed}
    if "optimised" in cfg.noises:
        ident["masker"] = masker_identity(cfg)
    for task in cfg.tasks:
        st = stores[task]
        fp = results.fingerprint({**ident, "store": st.fingerprint})
        path = os.path.join(out_dir, "randomness", f"{task}.jsonl")
        recs = _cached(path, fp)
        if recs is None:
            t0 = time.perf_counter()
            recs = _score_task(cfg, out_dir, task, st, fp)
            results.write_jsonl_atomic(path, recs)
            computed = True
            log(f"[study] randomness of {task}: {len(recs)} sets of {recs[0]['n']} clips in "
                f"{time.perf_counter() - t0:.1f} s")
    # The noises alone, at the reference level (what the masking device plays).
    ref = reference_level(cfg)
    fp = results.fingerprint({**ident, "clip_samples": cfg.clip_samples})
    path = os.path.join(out_dir, "randomness", "noises.jsonl")
    recs = _cached(path, fp)
    if recs is None:
        recs = []
        for noise in cfg.noises:
            clips = noise_clips(cfg, out_dir, noise, cfg.noise_clips, keys.noise_randomness(cfg.report_seed),
                                 example_corpus(stores))
            scaled = np.stack([np.asarray(levels.scale_to_spl(c, ref, allow_above_comfort=True)) for c in clips])
            recs.append(_record("", "noise", noise, float(ref), score_int16(_to_int16(scaled)),
                                {"fingerprint": fp}))
        results.write_jsonl_atomic(path, recs)
        computed = True
    return computed
