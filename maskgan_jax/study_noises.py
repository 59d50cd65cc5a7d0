"""The study's noises stage: one example clip of every noise at the reference level, and a clean clip.

The clips (``OUT/noises/*.wav``) are what the masking device would play; the report shows
their spectrograms. They come from the same noise programs as the attacks (`masking`).
"""
from __future__ import annotations

import os

import numpy as np

from maskgan_jax import audio, keys, levels, masking
from maskgan_jax.report_summary import ref_level
from maskgan_jax.study_config import StudyConfig
from maskgan_jax.study_gan import noise_spec
from maskgan_jax.vocab import TASKS


def reference_level(cfg: StudyConfig) -> float:
    """The level the study's example noises are played at (the report's reference level)."""
    return ref_level(sorted(cfg.levels), cfg.reference_level) or cfg.reference_level


def example_corpus(stores: dict):
    """The store the example clips of corpus-built noises (speech_shaped, babble) come from:
    the commands corpus when the study has it, else its first task's."""
    for task in reversed(TASKS):
        if task in stores:
            return stores[task]
    return None


def noise_clips(cfg: StudyConfig, out_dir: str, noise: str, n: int, key, corpus=None) -> np.ndarray:
    """n float32 clips [n, clip_samples] of a study noise (unit-free, as generated); speech_shaped
    and babble are built from ``corpus``."""
    program = masking.noise_program(noise_spec(cfg, out_dir, noise), cfg.clip_samples, corpus=corpus)
    return program.host(key, np.arange(n))


def _save(path: str, wave: np.ndarray) -> None:
    tmp = path + ".tmp.wav"
    audio.save_wav(tmp, wave)
    os.replace(tmp, path)


def stage_noises(cfg: StudyConfig, out_dir: str, stores: dict) -> bool:
    """Example noise files at the reference level (OUT/noises/*.wav) and a clean example clip;
    True when a file was written."""
    folder = os.path.join(out_dir, "noises")
    os.makedirs(folder, exist_ok=True)
    ref = reference_level(cfg)
    computed = False
    for noise in cfg.noises:
        path = os.path.join(folder, f"{noise}_{ref:g}dB.wav")
        if not os.path.exists(path):
            clip = noise_clips(cfg, out_dir, noise, 1, keys.example_clips(cfg.report_seed), example_corpus(stores))[0]
            _save(path, levels.scale_to_spl(clip, ref, allow_above_comfort=cfg.allow_above_comfort))
            computed = True
    for task in (t for t in reversed(TASKS) if t in stores):   # a speech command first, if there is one
        path = os.path.join(folder, f"clean_{task}.wav")
        if not os.path.exists(path):
            _save(path, audio.int16_to_float(np.asarray(stores[task].audio[0])))
            computed = True
        break
    return computed
