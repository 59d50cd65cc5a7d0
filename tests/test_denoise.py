"""Denoising front end: STFT against librosa, noise estimate, SNR gain on a tone in noise."""
import jax
import jax.numpy as jnp
import librosa
import numpy as np
import pytest

from maskgan_jax import denoise as dn

SR = 16000


def test_stft_matches_librosa_and_round_trips():
    x = np.random.default_rng(0).normal(size=(2, 4096)).astype(np.float32)
    spec = np.asarray(dn.stft(jnp.asarray(x), 512, 128))
    ref = librosa.stft(x, n_fft=512, hop_length=128, window="hann", center=True, pad_mode="reflect")
    np.testing.assert_allclose(spec, ref, atol=2e-4 * np.abs(ref).max())
    back = np.asarray(dn.istft(jnp.asarray(spec), 4096, 512, 128))
    np.testing.assert_allclose(back, x, atol=1e-5)


def test_noise_psd_of_white_noise_is_its_expected_bin_power():
    sigma = 0.05
    x = np.random.default_rng(1).normal(scale=sigma, size=(1, 32768)).astype(np.float32)
    spec = dn.stft(jnp.asarray(x))
    psd = np.asarray(dn.estimate_noise_psd(jnp.abs(spec) ** 2))
    expected = sigma ** 2 * float(np.sum(np.asarray(dn.hann_window(512)) ** 2))
    # Interior bins (DC and Nyquist bins are real-valued, with a different distribution).
    assert np.median(psd[0, 5:-5, 0]) == pytest.approx(expected, rel=0.15)


def _tone(gated: bool) -> np.ndarray:
    t = np.arange(32768) / SR
    tone = 0.1 * np.sin(2 * np.pi * 1000.0 * t)
    if gated:  # syllable-like bursts: 100 ms on, 100 ms off
        tone = tone * ((np.floor(t / 0.1) % 2) == 0)
    return tone


@pytest.mark.parametrize("gated", [False, True])
@pytest.mark.parametrize("method,min_gain_db", [("wiener", 4.0), ("subtraction", 1.5)])
def test_denoise_raises_snr_of_tone_in_white_noise(gated, method, min_gain_db):
    clean = _tone(gated)
    noisy = (clean + np.random.default_rng(2).normal(scale=0.1, size=clean.size)).astype(np.float32)
    front = dn.make_front_end(dn.DenoiseConfig(method=method))
    out = np.asarray(front(jnp.asarray(noisy)[None]))[0]
    gain = dn.snr_db(clean, out) - dn.snr_db(clean, noisy)
    assert gain > min_gain_db, f"{method} gained only {gain:.2f} dB"


def test_denoise_is_per_clip_jittable_and_shape_preserving():
    rng = np.random.default_rng(3)
    a = rng.normal(scale=0.1, size=(1, 8192)).astype(np.float32)
    b = rng.normal(scale=0.3, size=(1, 8192)).astype(np.float32)
    cfg = dn.DenoiseConfig()
    both = np.asarray(jax.jit(lambda w: dn.denoise(w, cfg))(jnp.asarray(np.concatenate([a, b]))))
    assert both.shape == (2, 8192)
    alone = np.asarray(dn.denoise(jnp.asarray(a), cfg))
    np.testing.assert_allclose(both[:1], alone, atol=1e-6)
    assert dn.denoise(jnp.asarray(a[0]), cfg).shape == (8192,)


def test_bad_config_is_named():
    with pytest.raises(ValueError, match="method"):
        dn.DenoiseConfig(method="spectral").validate()
    with pytest.raises(ValueError, match="multiple"):
        dn.DenoiseConfig(n_fft=500, hop_length=128).validate()
