"""Hand-made maskers built from the corpus an attack runs on: speech-shaped noise and babble.

Both are the classic baselines of speech masking, beside white, pink and brown noise:

* ``speech_shaped`` — Gaussian noise whose power spectrum is the long-term average spectrum
  (LTAS) of the corpus's training clips. The LTAS is the mean Hann-windowed periodogram
  (``LTAS_NFFT``-point frames, half overlap: Welch's estimate with ``scipy.signal.welch``'s
  defaults but averaged over every frame of every clip) of up to ``LTAS_CLIPS`` training clips
  taken evenly through the corpus. A clip's noise is white Gaussian noise filtered in the
  frequency domain by the square root of the LTAS (linearly interpolated to the clip's FFT
  bins, DC removed), at unit RMS per clip.
* ``babble`` — ``BABBLE_TALKERS`` overlapping talkers: clips of the corpus's training split,
  each at unit RMS, each circularly shifted by its own random offset, summed and brought to
  unit RMS. The talkers of an example are drawn (keyed by the example) from other groups
  (speakers, actors, artists) than the example's own, so the babble never repeats the talker
  it masks; a corpus of one group draws from all of it.

"Training clips" are the rows of the corpus's ``train`` split when it has one, else every row
(the embedded corpora and K-fold attacks: the noise is then built from the whole corpus, as a
masking device tuned to a population would be). On a music corpus (FMA) both are built from
the music: a "corpus-shaped" noise and a mix of six tracks.

The mix sets the absolute level, as for every other noise (`masking.mix`).
"""
from __future__ import annotations

import hashlib

import jax
import jax.numpy as jnp
import numpy as np

from maskgan_jax import noise
from maskgan_jax.vocab import INT16_SCALE

CORPUS_NOISES = ("speech_shaped", "babble")
LTAS_NFFT = 1024
LTAS_CLIPS = 512
BABBLE_TALKERS = 6
BABBLE_POOL = 256


def corpus_key(corpus) -> str:
    """What identifies a corpus for caching its noise programs: its store fingerprint when it
    has one, else a hash of its shape, groups, splits and a strided sample of its audio."""
    fp = getattr(corpus, "fingerprint", None)
    if fp:
        return str(fp)
    h = hashlib.sha256(repr((tuple(corpus.audio.shape), list(corpus.groups), list(corpus.splits))).encode())
    step = max(1, corpus.audio.shape[0] // 64)
    h.update(np.ascontiguousarray(np.asarray(corpus.audio[::step])).tobytes())
    return h.hexdigest()


def training_rows(corpus) -> np.ndarray:
    """Rows of the corpus's ``train`` split, or every row when it has none."""
    splits = np.asarray(list(corpus.splits), dtype=str)
    rows = np.flatnonzero(splits == "train")
    return rows if rows.size else np.arange(splits.size)


def _even(rows: np.ndarray, n: int) -> np.ndarray:
    """At most n rows taken evenly through ``rows`` (no key: the same corpus gives the same pick)."""
    if rows.size <= n:
        return rows
    return rows[np.unique(np.linspace(0, rows.size - 1, n).round().astype(np.int64))]


def _float_rows(corpus, rows: np.ndarray) -> np.ndarray:
    return np.asarray(corpus.audio[np.sort(rows)], np.float32) / np.float32(INT16_SCALE)


def ltas(clips_NxT: np.ndarray, n_fft: int = LTAS_NFFT) -> np.ndarray:
    """Long-term average power spectrum [n_fft//2 + 1] of float clips: the mean periodogram of
    Hann-windowed, half-overlapping frames of every clip (one-sided, Welch's density scaling at
    unit sample rate; only its shape matters here)."""
    x = np.asarray(clips_NxT, np.float64)
    if x.ndim != 2 or x.shape[1] < n_fft:
        raise ValueError(f"LTAS needs clips [N, T] with T >= {n_fft}, got {x.shape}")
    hop = n_fft // 2
    win = np.hanning(n_fft + 1)[:-1]          # periodic Hann, scipy.signal.get_window('hann')
    starts = np.arange(0, x.shape[1] - n_fft + 1, hop)
    total = np.zeros(n_fft // 2 + 1)
    for s in starts:
        seg = x[:, s:s + n_fft]
        seg = seg - seg.mean(axis=1, keepdims=True)    # welch's default detrend='constant'
        total += np.sum(np.abs(np.fft.rfft(seg * win, axis=1)) ** 2, axis=0)
    psd = total / (starts.size * x.shape[0] * np.sum(win ** 2))
    psd[1:-1] *= 2.0
    return psd


def shaping_gain(psd: np.ndarray, length: int) -> np.ndarray:
    """Amplitude gain [length//2 + 1] over a clip's rFFT bins: sqrt(LTAS) interpolated, DC zero."""
    f_ltas = np.linspace(0.0, 0.5, psd.size)
    f_clip = np.fft.rfftfreq(length)
    gain = np.sqrt(np.interp(f_clip, f_ltas, np.maximum(psd, 0.0)))
    gain[0] = 0.0
    return gain.astype(np.float32)


def speech_shaped_source(corpus, length: int) -> tuple:
    """(fn(arrays, keys_B) -> [B, T], arrays, info) of the corpus's speech-shaped noise."""
    rows = _even(training_rows(corpus), LTAS_CLIPS)
    psd = ltas(_float_rows(corpus, rows))
    gain = jnp.asarray(shaping_gain(psd, length))

    def fn(arrays, keys_B):
        (g,) = arrays
        return jax.vmap(lambda k: noise.filtered_gaussian(g, k, length))(keys_B)

    info = {"kind": "speech_shaped", "ltas_clips": int(rows.size), "ltas_nfft": LTAS_NFFT,
            "corpus": getattr(corpus, "name", "")}
    return fn, (gain,), info


# ----------------------------------------------------------------------------- babble

def group_ids(corpus) -> np.ndarray:
    """An int id per row for its group (speaker, actor, artist)."""
    _, ids = np.unique(np.asarray(list(corpus.groups), dtype=str), return_inverse=True)
    return ids.astype(np.int32)


def babble_draws(key: jax.Array, own_group: jax.Array, pool_group_P: jax.Array, talkers: int, length: int):
    """(pool rows [talkers], circular offsets [talkers]) of one example's babble: talkers from groups
    other than ``own_group`` (from the whole pool when every pool clip is of that group)."""
    k_rows, k_off = jax.random.split(key)
    other = pool_group_P != own_group
    logits = jnp.where(jnp.any(other) & ~other, -jnp.inf, 0.0)
    rows = jax.random.categorical(k_rows, logits, shape=(talkers,))
    offsets = jax.random.randint(k_off, (talkers,), 0, length)
    return rows, offsets


def babble_noise(pool_PxT: jax.Array, rows: jax.Array, offsets: jax.Array) -> jax.Array:
    """The sum of pool clips ``rows`` (each unit RMS), each rolled left by its offset, at unit RMS."""
    length = pool_PxT.shape[1]

    def talker(r, o):
        clip = pool_PxT[r]
        return jax.lax.dynamic_slice(jnp.concatenate([clip, clip]), (o,), (length,))

    return noise.unit_rms(jnp.sum(jax.vmap(talker)(rows, offsets), axis=0)).astype(jnp.float32)


def babble_pool(corpus, length: int, n: int = BABBLE_POOL) -> tuple[np.ndarray, np.ndarray]:
    """(clips [P, length] at unit RMS, their group ids [P]): non-silent training clips, evenly taken."""
    rows = np.sort(_even(training_rows(corpus), n))
    clips = _float_rows(corpus, rows)
    if clips.shape[1] != length:
        clips = clips[:, :length] if clips.shape[1] > length else \
            np.pad(clips, ((0, 0), (0, length - clips.shape[1])))
    rms = np.sqrt(np.mean(np.square(clips, dtype=np.float64), axis=1))
    keep = rms > 1e-6
    if not keep.any():
        raise ValueError("babble: every training clip of the corpus is silent")
    return (clips[keep] / rms[keep, None]).astype(np.float32), group_ids(corpus)[rows[keep]]


def babble_source(corpus, length: int, talkers: int = BABBLE_TALKERS) -> tuple:
    """(fn(arrays, keys_B, index_B) -> [B, T], arrays, info) of the corpus's babble."""
    pool, pool_group = babble_pool(corpus, length)
    row_group = group_ids(corpus)

    def fn(arrays, keys_B, index_B):
        pool_P, pool_g, row_g = arrays
        own = row_g[jnp.clip(index_B, 0, row_g.shape[0] - 1)]

        def one(k, g):
            rows, offsets = babble_draws(k, g, pool_g, talkers, length)
            return babble_noise(pool_P, rows, offsets)

        return jax.vmap(one)(keys_B, own)

    info = {"kind": "babble", "talkers": talkers, "pool_clips": int(pool.shape[0]),
            "pool_groups": int(np.unique(pool_group).size), "corpus": getattr(corpus, "name", "")}
    return fn, (jnp.asarray(pool), jnp.asarray(pool_group), jnp.asarray(row_group)), info
