"""Sound levels: dBFS, the playback calibration to dB SPL, scaling, and mixing at an SNR.

Two calibrations are kept apart (DESIGN.md, "Levels"):

* playback: the masking device plays noise; 0 dBFS RMS plays at ``fullscale_spl`` dB SPL
  (default 90), so a 45 dB SPL noise file has an RMS of -45 dBFS;
* recording: the adversary's device keeps speech at its recorded digital level, so a mix
  keeps the clean audio as it is and adds the noise at SNR = speech SPL - noise SPL.

The room channel (``room``) defines each level where it is heard: the speech's 60 dB SPL
1 m from the talker, the masker's level (at most the comfort limit) at the listener's
position, as the RMS of the noise's reverberant signal there; responses have unity gain
for the free-field direct path at 1 m, and the listener's signals are in the playback
calibration. The attacker records the microphone's mix, which the recording's gain
control scales so that its speech component keeps the clean clip's recorded RMS.

Levels are the RMS over the whole clip. Mean squares are floored at ``POWER_FLOOR``
(-200 dBFS), so silence has a level of -200 dBFS instead of -inf and no function here ever
returns NaN: mixing into silent clean audio adds (practically) no noise, since the noise is
set relative to the speech level, and a silent noise is left silent.

Mixes return ``Mix(wave, n_clipped)``: the mix hard-clipped to [-1, 1] (the range of the
recording) and the number of samples that were clipped. The numpy functions also log a
warning when they clip; the jax functions return per-example counts, which the caller
must sum and report. Masking noise louder than ``COMFORT_LIMIT_SPL`` is a ValueError unless
``allow_above_comfort=True``.

The ``*_jax`` functions are jit-traceable, work on batches ``[..., T]`` with per-example
(broadcastable) SNRs, and compute in float32.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

COMFORT_LIMIT_SPL = 45.0
DEFAULT_FULLSCALE_SPL = 90.0
POWER_FLOOR = 1e-20
DBFS_FLOOR = 10.0 * np.log10(POWER_FLOOR)


class Mix(NamedTuple):
    """A mix clipped to [-1, 1] and how many samples were clipped (per example for batches)."""
    wave: np.ndarray
    n_clipped: np.ndarray | int


def _check_float(x, name: str):
    if not np.issubdtype(np.dtype(x.dtype), np.floating):
        raise TypeError(f"{name} must be float audio in [-1, 1], got dtype {x.dtype}; "
                        "convert int16 PCM with audio.int16_to_float first")


def _check_comfort(spl_db, allow_above_comfort: bool, what: str) -> None:
    if isinstance(spl_db, jax.core.Tracer):
        raise TypeError(f"{what} must be a concrete number or array (the comfort limit is "
                        "checked on the host); inside jit use mix_at_snr_jax")
    spl = np.asarray(spl_db, dtype=np.float64)
    if not np.isfinite(spl).all():
        raise ValueError(f"{what} must be finite, got {spl_db}")
    if not allow_above_comfort and (spl > COMFORT_LIMIT_SPL).any():
        raise ValueError(f"{what}={float(spl.max()):g} dB SPL exceeds the "
                         f"{COMFORT_LIMIT_SPL:g} dB SPL comfort limit; pass "
                         "allow_above_comfort=True to allow it for a research sweep")


def _warn_clipped(n_clipped, size: int, what: str) -> None:
    total = int(np.sum(n_clipped))
    if total:
        logging.warning("%s: %d of %d samples clipped to [-1, 1]", what, total, size)


# ---------------------------------------------------------------------------- numpy

def rms_dbfs(wave, axis: int = -1) -> np.ndarray | float:
    """RMS level in dBFS (20*log10 RMS) over ``axis``; silence gives DBFS_FLOOR (-200)."""
    x = np.asarray(wave)
    _check_float(x, "wave")
    ms = np.mean(np.square(x, dtype=np.float64), axis=axis)
    out = 10.0 * np.log10(np.maximum(ms, POWER_FLOOR))
    return float(out) if np.ndim(out) == 0 else out


def dbfs_to_spl(dbfs, fullscale_spl: float = DEFAULT_FULLSCALE_SPL):
    """Playback level in dB SPL of a signal at ``dbfs`` RMS (0 dBFS plays at fullscale_spl)."""
    return dbfs + fullscale_spl


def spl_to_dbfs(spl, fullscale_spl: float = DEFAULT_FULLSCALE_SPL):
    """RMS in dBFS that plays at ``spl`` dB SPL under the playback calibration."""
    return spl - fullscale_spl


def scale_to_spl(wave, spl_db, fullscale_spl: float = DEFAULT_FULLSCALE_SPL,
                 allow_above_comfort: bool = False) -> np.ndarray:
    """Scales float32 audio [..., T] so each clip plays at ``spl_db`` dB SPL (not clipped).

    Samples that end up outside [-1, 1] are logged as a warning (a file writer clips them).
    """
    _check_comfort(spl_db, allow_above_comfort, "spl_db")
    x = np.asarray(wave)
    _check_float(x, "wave")
    x = x.astype(np.float64)
    target = np.asarray(spl_to_dbfs(np.asarray(spl_db, np.float64), fullscale_spl))
    ms = np.maximum(np.mean(np.square(x), axis=-1), POWER_FLOOR)
    gain = 10.0 ** (target / 20.0) / np.sqrt(ms)
    out = (x * np.expand_dims(gain, -1)).astype(np.float32)
    _warn_clipped(np.count_nonzero(np.abs(out) > 1.0), out.size,
                  f"scale_to_spl({float(np.max(spl_db)):g} dB SPL)")
    return out


def noise_gain(clean, noise, snr_db) -> np.ndarray:
    """Gain that puts ``noise`` at ``snr_db`` below ``clean`` (per clip, over the last axis)."""
    c = np.asarray(clean)
    n = np.asarray(noise)
    _check_float(c, "clean")
    _check_float(n, "noise")
    ms_c = np.maximum(np.mean(np.square(c, dtype=np.float64), axis=-1), POWER_FLOOR)
    ms_n = np.maximum(np.mean(np.square(n, dtype=np.float64), axis=-1), POWER_FLOOR)
    return np.sqrt(ms_c / ms_n) * 10.0 ** (-np.asarray(snr_db, np.float64) / 20.0)


def mix_at_snr(clean, noise, snr_db) -> Mix:
    """clean + noise scaled to ``snr_db`` dB below the clean RMS; clean keeps its level.

    Works on [T] or batches [..., T] (noise broadcastable to clean, snr_db to the batch
    shape). Returns Mix(float32 mix clipped to [-1, 1], clipped-sample count(s)).
    """
    c = np.asarray(clean)
    n = np.asarray(noise)
    if c.ndim == 0 or c.shape[-1] == 0:
        raise ValueError(f"clean must be a non-empty [..., T] wave, got shape {c.shape}")
    if np.broadcast_shapes(c.shape, n.shape) != c.shape:
        raise ValueError(f"noise shape {n.shape} does not match clean shape {c.shape}")
    snr = np.asarray(snr_db, np.float64)
    if not np.isfinite(snr).all():
        raise ValueError(f"snr_db must be finite, got {snr_db}")
    g = noise_gain(c, n, snr)
    mix = c.astype(np.float64) + n.astype(np.float64) * np.expand_dims(g, -1)
    n_clipped = np.count_nonzero(np.abs(mix) > 1.0, axis=-1)
    _warn_clipped(n_clipped, mix.size, f"mix_at_snr({float(np.min(snr)):g} dB)")
    wave = np.clip(mix, -1.0, 1.0).astype(np.float32)
    return Mix(wave, int(n_clipped) if np.ndim(n_clipped) == 0 else n_clipped)


def mix_at_spl(clean, noise, speech_spl=60.0, noise_spl=COMFORT_LIMIT_SPL,
               allow_above_comfort: bool = False) -> Mix:
    """Mixes noise into clean audio at SNR = speech_spl - noise_spl (the recording model)."""
    _check_comfort(noise_spl, allow_above_comfort, "noise_spl")
    snr = np.asarray(speech_spl, np.float64) - np.asarray(noise_spl, np.float64)
    return mix_at_snr(clean, noise, snr)


# ------------------------------------------------------------------------------ jax

def rms_dbfs_jax(wave):
    """jit-traceable rms_dbfs over the last axis (float32; silence gives -200 dBFS)."""
    x = jnp.asarray(wave)
    _check_float(x, "wave")
    ms = jnp.mean(jnp.square(x.astype(jnp.float32)), axis=-1)
    return 10.0 * jnp.log10(jnp.maximum(ms, POWER_FLOOR))


def scale_to_spl_jax(wave, spl_db, fullscale_spl: float = DEFAULT_FULLSCALE_SPL,
                     allow_above_comfort: bool = False):
    """jit-traceable scale_to_spl for [..., T]; ``spl_db`` must be concrete (host-checked)."""
    _check_comfort(spl_db, allow_above_comfort, "spl_db")
    x = jnp.asarray(wave)
    _check_float(x, "wave")
    x = x.astype(jnp.float32)
    target = jnp.asarray(np.asarray(spl_db, np.float64) - fullscale_spl, jnp.float32)
    ms = jnp.maximum(jnp.mean(jnp.square(x), axis=-1), POWER_FLOOR)
    gain = 10.0 ** (target / 20.0) / jnp.sqrt(ms)
    return x * gain[..., None]


def mix_at_snr_jax(clean, noise, snr_db):
    """jit-traceable mix_at_snr: clean [..., T] float, noise broadcastable, snr_db per example.

    Returns (mix clipped to [-1, 1], int32 clipped-sample count per example). Everything
    may be traced, so the SNR can differ per example inside a jitted step.
    """
    c = jnp.asarray(clean)
    n = jnp.asarray(noise)
    _check_float(c, "clean")
    _check_float(n, "noise")
    c = c.astype(jnp.float32)
    n = n.astype(jnp.float32)
    snr = jnp.asarray(snr_db, jnp.float32)
    ms_c = jnp.maximum(jnp.mean(jnp.square(c), axis=-1), POWER_FLOOR)
    ms_n = jnp.maximum(jnp.mean(jnp.square(n), axis=-1), POWER_FLOOR)
    gain = jnp.sqrt(ms_c / ms_n) * 10.0 ** (-snr / 20.0)
    mix = c + n * gain[..., None]
    n_clipped = jnp.sum(jnp.abs(mix) > 1.0, axis=-1, dtype=jnp.int32)
    return jnp.clip(mix, -1.0, 1.0), n_clipped


def mix_at_spl_jax(clean, noise, speech_spl=60.0, noise_spl=COMFORT_LIMIT_SPL,
                   allow_above_comfort: bool = False):
    """jit-traceable mix_at_spl; the levels must be concrete (the comfort limit is host-checked)."""
    _check_comfort(noise_spl, allow_above_comfort, "noise_spl")
    snr = np.asarray(speech_spl, np.float64) - np.asarray(noise_spl, np.float64)
    return mix_at_snr_jax(clean, noise, snr.astype(np.float32))
