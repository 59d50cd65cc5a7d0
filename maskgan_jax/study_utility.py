"""The study's utility-as-heard stage: STOI, extended STOI and wideband PESQ of masked speech commands.

What a person (or an assistant's front end) beside the masker hears: for the digital
channel, the command mixed with the noise at the SNR; for the room channel, the listener's
signals of `room.room_mix_rms` (the listener's reverberant speech is the reference there).
A seeded sample of command clips is scored per (channel, noise, level) with the same per-clip
noise and room the attacks use at test time (`keys.test_noise`); each figure gets a
cluster-bootstrap interval over speakers. Records go to OUT/utility/commands.jsonl.
"""
from __future__ import annotations

import os
import time

import jax
import numpy as np

from maskgan_jax import attack, attack_loop, audio, intelligibility, keys, masking, metrics, results
from maskgan_jax import room as room_lib
from maskgan_jax.study_config import StudyConfig
from maskgan_jax.study_gan import masker_identity, noise_spec
from maskgan_jax.vocab import UTILITY_TASK

UTILITY_FORMAT = 1


def _heard(cfg: StudyConfig, out_dir: str, clean, rows, noise: str, level: float, channel: str, corpus=None):
    """(listener's clean, listener's masked) float32 [N, T] for one condition."""
    program = masking.noise_program(noise_spec(cfg, out_dir, noise), clean.shape[1], corpus=corpus)
    key = keys.test_noise(cfg.report_seed)
    noise_BxT = program(key, rows)
    if channel == "digital":
        snr = masking.check_levels(level, cfg.speech_spl, cfg.allow_above_comfort)
        mixed, _ = jax.jit(masking.mix)(clean, noise_BxT, np.float32(snr))
        return np.asarray(clean), np.asarray(mixed)
    a = attack.AttackConfig(channel="room", rooms=cfg.rooms, room_seed=cfg.room_seed, noise_spl=level,
                            speech_spl=cfg.speech_spl, allow_above_comfort=cfg.allow_above_comfort)
    room = attack.room_channel(a, clean.shape[1], os.path.join(out_dir, "rooms"))
    hear = attack_loop.Hearing(program, 0.0, False, room)
    batch = hear.with_noise({"index": np.asarray(rows, np.int32)}, key)
    args = hear.args
    heard = jax.jit(lambda c, z, r: room_lib.room_mix_rms(c, z, r, args[1], args[2]))(
        clean, batch["noise"], batch["room"])
    return np.asarray(heard.listener_clean), np.asarray(heard.listener_masked)


def stage_utility(cfg: StudyConfig, out_dir: str, stores: dict, gan_fp: str | None, log) -> bool:
    """Scores the sampled command clips under every noise, level and channel; True when computed."""
    if UTILITY_TASK not in stores or cfg.utility_clips <= 0:
        return False
    st = stores[UTILITY_TASK]
    ident = {"format": UTILITY_FORMAT, "clips": cfg.utility_clips, "levels": list(cfg.utility_levels),
             "noises": list(cfg.noises), "channels": list(cfg.channels), "speech_spl": cfg.speech_spl,
             "rooms": [cfg.rooms, cfg.room_seed], "gan": gan_fp, "seed": cfg.report_seed, "store": st.fingerprint}
    if "optimised" in cfg.noises:
        ident["masker"] = masker_identity(cfg)
    fp = results.fingerprint(ident)
    path = os.path.join(out_dir, "utility", f"{UTILITY_TASK}.jsonl")
    old = results.read_jsonl(path)
    if old and all(r.get("fingerprint") == fp for r in old):
        return False
    t0 = time.perf_counter()
    n = min(cfg.utility_clips, len(st))
    rows = np.sort(keys.randomness_sample(cfg.report_seed).permutation(len(st))[:n])
    clean = audio.int16_to_float(np.asarray(st.audio[rows]))
    groups = np.asarray(st.groups)[rows].astype(str)
    recs = []
    for channel in cfg.channels:
        for noise in cfg.noises:
            for level in cfg.utility_levels:
                ref, deg = _heard(cfg, out_dir, clean, rows, noise, float(level), channel, st)
                scores = intelligibility.intelligibility(ref, deg)
                rec = {"kind": "utility", "task": UTILITY_TASK, "channel": channel, "noise": noise,
                       "noise_spl": float(level), "n": int(n), "failures": len(scores.failures),
                       "fingerprint": fp}
                for m in intelligibility.METRICS:
                    e = metrics.clustered_mean_ci(getattr(scores, m), groups, seed=cfg.report_seed)
                    rec[m] = e.to_dict()
                recs.append(rec)
    results.write_jsonl_atomic(path, recs)
    log(f"[study] utility as heard: {len(recs)} conditions of {n} command clips in {time.perf_counter() - t0:.1f} s")
    return True
