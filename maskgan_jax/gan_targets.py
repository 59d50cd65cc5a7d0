"""The noise a MaskGAN learns to imitate: white, pink or brown (`maskgan_jax.noise`), drawn on
device, or random crops of a folder of noise files, each clip at the config's ``target_rms``."""
from __future__ import annotations

import logging
import os

import jax
import jax.numpy as jnp
import numpy as np

from maskgan_jax import audio, noise
from maskgan_jax.vocab import SAMPLE_RATE

log = logging.getLogger("maskgan_jax.gan")

TARGETS = ("white", "pink", "brown")


def load_corpus(path: str, slice_len: int) -> np.ndarray:
    """All audio files of a folder, mono 16 kHz, concatenated into one float32 array (at least one slice)."""
    if not os.path.isdir(path):
        raise ValueError(f"target folder {path!r} does not exist")
    waves, broken = [], []
    for name in sorted(os.listdir(path)):
        full = os.path.join(path, name)
        if not os.path.isfile(full) or name.startswith(".") or name.endswith((".json", ".jsonl", ".txt")):
            continue
        try:
            waves.append(np.asarray(audio.load_audio(full, SAMPLE_RATE), np.float32))
        except audio.AudioError as e:
            broken.append(f"{full}: {e}")
    for b in broken:
        log.warning("skipped unreadable target file %s", b)
    if not waves or sum(len(w) for w in waves) < slice_len:
        raise ValueError(f"target folder {path!r} holds less than one slice ({slice_len} samples) of readable audio")
    return np.concatenate(waves)


def _normalize_rms(x_BxT: jax.Array, rms: float) -> jax.Array:
    cur = jnp.sqrt(jnp.mean(jnp.square(x_BxT), axis=1, keepdims=True))
    return jnp.clip(x_BxT * (rms / jnp.maximum(cur, 1e-8)), -1.0, 1.0)


def sample_target(config, key: jax.Array, batch: int, corpus: jax.Array | None = None) -> jax.Array:
    """A batch of target noise [batch, slice_len] at ``target_rms`` (jittable)."""
    shape = (batch, config.slice_len)
    if config.target in TARGETS:
        x = getattr(noise, config.target)(key, shape)
    else:
        if corpus is None:
            raise ValueError(f"target={config.target} needs the loaded corpus (load_corpus)")
        starts = jax.random.randint(key, (batch,), 0, corpus.shape[0] - config.slice_len + 1)
        x = jax.vmap(lambda s: jax.lax.dynamic_slice_in_dim(corpus, s, config.slice_len))(starts)
        x = x - jnp.mean(x, axis=1, keepdims=True)
    return _normalize_rms(x.astype(jnp.float32), config.target_rms)
