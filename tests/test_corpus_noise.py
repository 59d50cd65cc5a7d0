"""Speech-shaped noise and babble (corpus_noise) against references: scipy.signal.welch and a numpy babble."""
import jax
import numpy as np
import pytest
import scipy.signal

from maskgan_jax import corpus_noise, keys, masking
from maskgan_jax.data.batches import ArrayData

T = 8192


def _corpus(n_groups=6, per_group=4, seed=0, splits=None):
    """Clips of resonant filtered noise (a smooth, strongly non-flat spectrum), one timbre per group."""
    rng = np.random.default_rng(seed)
    clips, groups = [], []
    for g in range(n_groups):
        f0 = 0.02 + 0.01 * g
        b, a = scipy.signal.iirpeak(f0 * 2, Q=3.0)           # a resonance below 2.5 kHz at 16 kHz
        b2, a2 = scipy.signal.butter(2, 0.3)                   # and a low-pass tilt
        for _ in range(per_group):
            x = scipy.signal.lfilter(b2, a2, scipy.signal.lfilter(b, a, rng.normal(size=T)))
            clips.append(x / np.max(np.abs(x)) * 0.3)
            groups.append(f"spk{g}")
    audio = np.round(np.stack(clips) * 32767).astype(np.int16)
    n = audio.shape[0]
    return ArrayData(audio, {"y": np.zeros(n, np.int32)}, groups, splits or ["train"] * n, {"y": ["a"]}, "toy")


def test_ltas_equals_scipy_welch():
    c = _corpus()
    x = c.audio.astype(np.float64) / 32768.0
    _, ref = scipy.signal.welch(x, nperseg=corpus_noise.LTAS_NFFT, axis=-1)
    np.testing.assert_allclose(corpus_noise.ltas(x), ref.mean(axis=0), rtol=1e-6)


def test_speech_shaped_spectrum_matches_ltas_within_1db():
    c = _corpus()
    program = masking.noise_program("speech_shaped", T, corpus=c)
    noise = program.host(keys.test_noise(0), np.arange(96))
    assert noise.shape == (96, T)
    np.testing.assert_allclose(np.sqrt(np.mean(noise.astype(np.float64) ** 2, axis=1)), 1.0, rtol=1e-4)
    _, got = scipy.signal.welch(noise.astype(np.float64), nperseg=corpus_noise.LTAS_NFFT, axis=-1)
    _, want = scipy.signal.welch(c.audio.astype(np.float64) / 32768.0, nperseg=corpus_noise.LTAS_NFFT, axis=-1)
    got, want = got.mean(axis=0), want.mean(axis=0)
    got_db = 10 * np.log10(got / got.sum())
    want_db = 10 * np.log10(want / want.sum())
    band = want_db > want_db.max() - 30.0                       # the 30 dB below the peak
    band[:3] = False     # DC is removed by design; the Hann window leaks that into the next two bins
    assert band.sum() > 100
    err = np.abs(got_db - want_db)[band]
    assert err.max() < 1.0 and err.mean() < 0.35, (err.max(), err.mean())
    # The noise is far from white: the shape is what is matched, not a flat spectrum.
    assert want_db[band].max() - want_db[band].min() > 20.0


def test_speech_shaped_uses_training_split_only():
    n = 24
    splits = ["train"] * 12 + ["test"] * 12
    c = _corpus(splits=splits)
    rows = corpus_noise.training_rows(c)
    np.testing.assert_array_equal(rows, np.arange(12))
    c2 = ArrayData(c.audio.copy(), c.labels, c.groups, c.splits, c.classes, "toy")
    c2.audio[12:] = 0      # changing test clips changes nothing
    a = masking.make_source("speech_shaped", T, corpus=c).arrays[0]
    b = masking.make_source("speech_shaped", T, corpus=c2).arrays[0]
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert n == c.audio.shape[0]


def test_babble_is_a_sum_of_other_talkers_clips_at_unit_level():
    c = _corpus()
    program = masking.noise_program("babble", T, corpus=c)
    key = keys.test_noise(3)
    idx = np.arange(c.audio.shape[0])
    noise = program.host(key, idx)
    pool, pool_group = corpus_noise.babble_pool(c, T)
    gid = corpus_noise.group_ids(c)
    ks = keys.per_example(key, jax.numpy.asarray(idx, jax.numpy.int32))
    for i in idx:
        rows, offs = corpus_noise.babble_draws(ks[i], gid[i], pool_group, corpus_noise.BABBLE_TALKERS, T)
        rows, offs = np.asarray(rows), np.asarray(offs)
        assert np.all(pool_group[rows] != gid[i])                   # never the masked talker
        ref = sum(np.roll(pool[r].astype(np.float64), -o) for r, o in zip(rows, offs))
        ref /= np.sqrt(np.mean(ref ** 2))
        np.testing.assert_allclose(noise[i], ref, atol=2e-5)
    # Each talker at unit RMS in the pool; different examples get different babble.
    np.testing.assert_allclose(np.sqrt(np.mean(pool.astype(np.float64) ** 2, axis=1)), 1.0, rtol=1e-5)
    assert not np.allclose(noise[0], noise[1])


def test_corpus_noises_need_a_corpus_and_parse():
    assert masking.parse_noise("babble") == masking.NoiseSpec("babble")
    assert masking.parse_noise("speech_shaped").name == "speech_shaped"
    with pytest.raises(ValueError, match="corpus"):
        masking.make_source("babble", T)
