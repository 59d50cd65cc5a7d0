"""Masking noise: the sources (reference, MaskGAN, a folder of audio) and the one noise-and-mix path.

A source is a pure function ``(arrays, keys_B) -> noise [B, T]`` plus the arrays it reads.
`noise_program` wraps a source into one cached, jitted ``(key, index_B) -> noise [B, T]``:
each example's noise comes from its own key, derived from the run's key and the example's
index in the store (`keys.per_example`), so it does not depend on the batch it lands in or
on the device count. The attack steps take that noise and the SNR as inputs and mix with
`levels.mix_at_snr_jax`; the study's randomness stage and example clips draw from the same
programs, so every part of the study hears the same noise for the same clip.

Levels follow the recording model of `levels`: speech keeps its level and the noise is
added at SNR = speech SPL - noise SPL.
"""
from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from maskgan_jax import audio, corpus_noise, gan, gan_load, keys, levels, noise as ref_noise
from maskgan_jax.vocab import CORPUS_NOISES, NOISE_KINDS_WITH_PATH, REFERENCE_NOISES, SAMPLE_RATE

REFERENCE = {"white": ref_noise.white, "pink": ref_noise.pink, "brown": ref_noise.brown}
assert tuple(REFERENCE) == REFERENCE_NOISES
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aif", ".aiff")


@dataclasses.dataclass(frozen=True)
class NoiseSpec:
    """Parsed ``--noise``: kind none|white|pink|brown|speech_shaped|babble|gan|dir|masker and,
    for gan/dir/masker, a folder."""
    kind: str
    path: str = ""

    @property
    def name(self) -> str:
        """The flag's spelling (what result records carry)."""
        return f"{self.kind}:{self.path}" if self.path else self.kind


def parse_noise(value: str) -> NoiseSpec:
    """Parses none | white | pink | brown | speech_shaped | babble | gan:DIR | dir:DIR | masker:DIR
    (ValueError naming --noise)."""
    value = (value or "").strip()
    if value in ("none", *REFERENCE_NOISES, *CORPUS_NOISES):
        return NoiseSpec(value)
    for kind in NOISE_KINDS_WITH_PATH:
        if value.startswith(kind + ":"):
            path = value[len(kind) + 1:]
            if not path:
                raise ValueError(f"--noise={value!r}: {kind}: needs a folder, e.g. {kind}:/path/to/dir")
            return NoiseSpec(kind, path)
    raise ValueError(f"--noise={value!r}: expected none, {', '.join(REFERENCE_NOISES + CORPUS_NOISES)}, "
                     "gan:DIR, dir:DIR or masker:DIR")


def check_spec(value: str) -> NoiseSpec:
    """Parses a noise spec and checks that its folder is there (ValueError naming --noise and the fix)."""
    spec = parse_noise(value)
    if spec.kind == "gan" and not os.path.isfile(os.path.join(spec.path, gan.CONFIG_FILE)):
        raise ValueError(f"--noise=gan:{spec.path}: no trained MaskGAN there ({gan.CONFIG_FILE} missing); "
                         "train one with `python -m experiments.train_maskgan --workdir=DIR` or name its workdir")
    if spec.kind == "masker" and not os.path.isfile(os.path.join(spec.path, "config.json")):
        raise ValueError(f"--noise=masker:{spec.path}: no trained masker there (config.json missing); "
                         "train one with `python -m experiments.train_masker --workdir=DIR`")
    if spec.kind == "dir" and not os.path.isdir(spec.path):
        raise ValueError(f"--noise=dir:{spec.path}: no such folder; name a folder of noise recordings")
    return spec


def check_levels(noise_spl: float, speech_spl: float, allow_above_comfort: bool) -> float:
    """Validates the levels and returns the SNR (ValueError naming --noise_spl)."""
    if not np.isfinite(noise_spl) or not np.isfinite(speech_spl):
        raise ValueError(f"--noise_spl={noise_spl} and --speech_spl={speech_spl} must be finite")
    if noise_spl > levels.COMFORT_LIMIT_SPL and not allow_above_comfort:
        raise ValueError(f"--noise_spl={noise_spl:g} dB SPL exceeds the {levels.COMFORT_LIMIT_SPL:g} dB "
                         "SPL comfort limit; pass --allow_above_comfort for a research sweep")
    return float(speech_spl - noise_spl)


# ----------------------------------------------------------------------------- sources

@dataclasses.dataclass
class NoiseSource:
    """``fn(arrays, keys_B) -> float32 [B, T]`` with the arrays it reads, and a description;
    ``fn(arrays, keys_B, index_B)`` when ``uses_index`` (babble: the example's own group)."""
    spec: NoiseSpec
    fn: Callable[..., jax.Array]
    arrays: Any
    info: dict
    uses_index: bool = False


def _reference(spec: NoiseSpec, length: int) -> NoiseSource:
    make = REFERENCE[spec.kind]
    return NoiseSource(spec, lambda arrays, keys_B: jax.vmap(lambda k: make(k, (length,)))(keys_B),
                       (), {"kind": spec.kind})


def _gan(spec: NoiseSpec, length: int) -> NoiseSource:
    if not os.path.isdir(spec.path):
        raise ValueError(f"--noise=gan:{spec.path}: no such MaskGAN workdir")
    sample_fn, info = gan_load.load_noise_sampler(spec.path)
    out = jax.eval_shape(lambda k: sample_fn(k, 1), jax.random.key(0))
    slice_len = int(out.shape[-1])
    # A generator with shorter slices fills the clip with consecutive independent slices.
    per_clip = -(-length // slice_len)

    def fn(arrays, keys_B):
        out = jax.vmap(lambda k: sample_fn(k, per_clip).reshape(-1))(keys_B)
        return out[:, :length].astype(jnp.float32)

    return NoiseSource(spec, fn, (), {"kind": "gan", "workdir": spec.path, "slice_len": slice_len,
                                      "slices_per_clip": per_clip, **dict(info or {})})


def load_noise_bank(folder: str, length: int, sample_rate: int = SAMPLE_RATE) -> tuple[np.ndarray, dict]:
    """All readable noise files of a folder, each at unit RMS, end to end (at least ``length``)."""
    if not os.path.isdir(folder):
        raise ValueError(f"--noise=dir:{folder}: no such folder")
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith(AUDIO_EXTENSIONS))
    parts, broken = [], []
    for n in names:
        path = os.path.join(folder, n)
        try:
            w = audio.load_audio(path, sample_rate)
        except audio.AudioError as e:
            broken.append((path, str(e)))
            continue
        rms = float(np.sqrt(np.mean(np.square(w, dtype=np.float64))))
        if rms <= 0.0:
            broken.append((path, "silent"))
            continue
        # Calibrated to a common level so that every segment is mixed at the same SNR
        # whichever file it comes from (the mix sets the absolute level).
        parts.append((w / rms).astype(np.float32))
    if not parts:
        raise ValueError(f"--noise=dir:{folder}: no readable, non-silent audio files "
                         f"({len(names)} candidates, {len(broken)} broken)")
    bank = np.concatenate(parts)
    if bank.size < length:
        bank = np.tile(bank, -(-length // bank.size))
    info = {"kind": "dir", "folder": folder, "files": len(parts), "broken": broken,
            "seconds": bank.size / sample_rate}
    if broken:
        logging.warning("noise folder %s: %d broken file(s) skipped: %s", folder, len(broken),
                        "; ".join(f"{p} ({r})" for p, r in broken[:5]))
    return bank, info


def _folder(spec: NoiseSpec, length: int, sample_rate: int) -> NoiseSource:
    bank, info = load_noise_bank(spec.path, length, sample_rate)

    def fn(arrays, keys_B):
        (bank_L,) = arrays
        hi = bank_L.shape[0] - length + 1

        def one(k):
            start = jax.random.randint(k, (), 0, hi)
            return jax.lax.dynamic_slice(bank_L, (start,), (length,))

        return jax.vmap(one)(keys_B)

    return NoiseSource(spec, fn, (jnp.asarray(bank),), info)


def _corpus(spec: NoiseSpec, length: int, corpus) -> NoiseSource:
    if corpus is None:
        raise ValueError(f"--noise={spec.kind} is built from the corpus the attack runs on; no corpus was given")
    if spec.kind == "speech_shaped":
        fn, arrays, info = corpus_noise.speech_shaped_source(corpus, length)
        return NoiseSource(spec, fn, arrays, info)
    fn, arrays, info = corpus_noise.babble_source(corpus, length)
    return NoiseSource(spec, fn, arrays, info, uses_index=True)


def _masker(spec: NoiseSpec, length: int) -> NoiseSource:
    from maskgan_jax import masker   # masker imports this module (mixing, levels)
    fn, arrays, info = masker.load_source(spec.path, length)
    return NoiseSource(spec, fn, arrays, info)


def make_source(spec: NoiseSpec | str, length: int, sample_rate: int = SAMPLE_RATE,
                corpus=None) -> NoiseSource | None:
    """The noise source for a spec (None for 'none'); speech_shaped and babble need ``corpus``
    (a store or `ArrayData`: the corpus the attack runs on, `corpus_noise`)."""
    spec = parse_noise(spec) if isinstance(spec, str) else spec
    if spec.kind == "none":
        return None
    if spec.kind in REFERENCE:
        return _reference(spec, length)
    if spec.kind in CORPUS_NOISES:
        return _corpus(spec, length, corpus)
    if spec.kind == "gan":
        return _gan(spec, length)
    if spec.kind == "masker":
        return _masker(spec, length)
    return _folder(spec, length, sample_rate)


# ----------------------------------------------------------------------------- programs

class NoiseProgram:
    """A source compiled once: ``program(key, index_B) -> noise [B, T]`` (float32, as generated)."""

    def __init__(self, source: NoiseSource):
        self.source = source
        self.info = source.info
        if source.uses_index:
            self._fn = jax.jit(lambda arrays, key, index_B: source.fn(arrays, keys.per_example(key, index_B), index_B))
        else:
            self._fn = jax.jit(lambda arrays, key, index_B: source.fn(arrays, keys.per_example(key, index_B)))

    def __call__(self, key: jax.Array, index_B) -> jax.Array:
        return self._fn(self.source.arrays, key, jnp.asarray(index_B, jnp.int32))

    def host(self, key: jax.Array, index_B) -> np.ndarray:
        """The noise as a float32 numpy array [B, T]."""
        return np.asarray(self(key, index_B), np.float32)


class _CorpusRef:
    """A corpus in the program cache's key: equal when `corpus_noise.corpus_key` is."""

    def __init__(self, corpus):
        self.corpus, self.key = corpus, corpus_noise.corpus_key(corpus)

    def __hash__(self):
        return hash(self.key)

    def __eq__(self, other):
        return isinstance(other, _CorpusRef) and other.key == self.key


def noise_program(spec: str, length: int, sample_rate: int = SAMPLE_RATE, corpus=None) -> NoiseProgram | None:
    """The cached program of a noise spec (None for 'none'); `clear_programs` after retraining a GAN.
    ``corpus`` is what speech_shaped and babble are built from (ignored by every other noise)."""
    needs = corpus is not None and parse_noise(spec).kind in CORPUS_NOISES
    return _program(spec, length, sample_rate, _CorpusRef(corpus) if needs else None)


@functools.lru_cache(maxsize=32)
def _program(spec: str, length: int, sample_rate: int, ref: _CorpusRef | None) -> NoiseProgram | None:
    source = make_source(spec, length, sample_rate, ref.corpus if ref is not None else None)
    return None if source is None else NoiseProgram(source)


def clear_programs() -> None:
    """Forgets cached programs (a GAN workdir was trained further in this process)."""
    _program.cache_clear()


def mix(clean_BxT: jax.Array, noise_BxT: jax.Array, snr_db) -> tuple[jax.Array, jax.Array]:
    """The one mix: ``levels.mix_at_snr_jax`` (clean keeps its level; returns (mix, clipped counts))."""
    return levels.mix_at_snr_jax(clean_BxT, noise_BxT, snr_db)
