"""levels.py against hand-computed levels and gains, numpy and jitted JAX forms."""
import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from maskgan_jax import levels


def _sine(n=16000, freq=250.0, amp=1.0, rate=16000):
    return (amp * np.sin(2 * np.pi * freq * np.arange(n) / rate)).astype(np.float32)


def _snr_db(clean, mix):
    c = np.asarray(clean, np.float64)
    d = np.asarray(mix, np.float64) - c
    return 10 * np.log10(np.mean(c * c, -1) / np.mean(d * d, -1))


def test_rms_dbfs_hand_values():
    # a full-scale sine has RMS 1/sqrt(2): -3.0103 dBFS; a 0.1-amplitude one 20 dB lower
    assert levels.rms_dbfs(_sine()) == pytest.approx(-3.0103, abs=1e-3)
    assert levels.rms_dbfs(_sine(amp=0.1)) == pytest.approx(-23.0103, abs=1e-3)
    assert levels.rms_dbfs(np.full(100, 0.5, np.float32)) == pytest.approx(-6.0206, abs=1e-4)
    batch = np.stack([_sine(), _sine(amp=0.5)])
    np.testing.assert_allclose(levels.rms_dbfs(batch), [-3.0103, -9.0309], atol=1e-3)
    assert levels.rms_dbfs(np.zeros(100, np.float32)) == levels.DBFS_FLOOR == -200.0
    with pytest.raises(TypeError, match="int16"):
        levels.rms_dbfs(np.zeros(10, np.int16))


def test_playback_calibration():
    assert levels.dbfs_to_spl(-45.0) == 45.0
    assert levels.spl_to_dbfs(45.0) == -45.0
    assert levels.spl_to_dbfs(45.0, fullscale_spl=100.0) == -55.0
    assert levels.dbfs_to_spl(-3.0, fullscale_spl=94.0) == 91.0


def test_scale_to_spl_and_comfort_limit():
    noise = np.random.default_rng(0).standard_normal((3, 8000)).astype(np.float32)
    out = levels.scale_to_spl(noise, 45.0)
    assert out.dtype == np.float32
    np.testing.assert_allclose(levels.rms_dbfs(out), -45.0, atol=1e-4)
    np.testing.assert_allclose(levels.rms_dbfs(levels.scale_to_spl(noise, 40.0, 100.0)),
                               -60.0, atol=1e-4)
    # per-clip levels
    np.testing.assert_allclose(levels.rms_dbfs(levels.scale_to_spl(noise, [30.0, 35.0, 45.0])),
                               [-60.0, -55.0, -45.0], atol=1e-4)
    with pytest.raises(ValueError, match="comfort limit"):
        levels.scale_to_spl(noise, 45.5)
    loud = levels.scale_to_spl(noise, 70.0, allow_above_comfort=True)
    np.testing.assert_allclose(levels.rms_dbfs(loud), -20.0, atol=1e-4)
    assert not np.isnan(levels.scale_to_spl(np.zeros(10, np.float32), 45.0)).any()


def test_noise_gain_hand_value():
    clean = _sine()                                   # power 0.5
    noise = np.where(np.arange(16000) % 2, 1.0, -1.0).astype(np.float32)  # power 1
    assert levels.noise_gain(clean, noise, 20.0) == pytest.approx(np.sqrt(0.5) * 0.1, rel=1e-6)


def test_mix_at_snr_measured_snr_and_clean_level_kept():
    rng = np.random.default_rng(1)
    clean = (0.1 * _sine(freq=330.0) + 0.02 * rng.standard_normal(16000)).astype(np.float32)
    noise = rng.standard_normal(16000).astype(np.float32)
    for snr in (-5.0, 0.0, 15.0, 30.0):
        mix, n_clipped = levels.mix_at_snr(clean, noise, snr)
        assert n_clipped == 0 and mix.dtype == np.float32
        assert _snr_db(clean, mix) == pytest.approx(snr, abs=0.01)
        # the clean part is untouched: what is added is a scaled copy of the noise
        gain = np.sqrt(np.mean(np.square(clean, dtype=np.float64))
                       / np.mean(np.square(noise, dtype=np.float64))) * 10 ** (-snr / 20)
        np.testing.assert_allclose(mix, clean + gain * noise.astype(np.float64), atol=2e-7)


def test_mix_at_spl_uses_speech_minus_noise_level():
    rng = np.random.default_rng(2)
    clean = (0.05 * rng.standard_normal(8000)).astype(np.float32)
    noise = rng.standard_normal(8000).astype(np.float32)
    mix, _ = levels.mix_at_spl(clean, noise)
    assert _snr_db(clean, mix) == pytest.approx(15.0, abs=0.01)
    mix, _ = levels.mix_at_spl(clean, noise, speech_spl=65.0, noise_spl=35.0)
    assert _snr_db(clean, mix) == pytest.approx(30.0, abs=0.01)
    with pytest.raises(ValueError, match="noise_spl=50 dB SPL exceeds"):
        levels.mix_at_spl(clean, noise, noise_spl=50.0)
    mix, _ = levels.mix_at_spl(clean, noise, noise_spl=55.0, allow_above_comfort=True)
    assert _snr_db(clean, mix) == pytest.approx(5.0, abs=0.01)


def test_mix_batch_with_per_example_snr():
    rng = np.random.default_rng(3)
    clean = (0.1 * rng.standard_normal((4, 4000))).astype(np.float32)
    noise = rng.standard_normal((4, 4000)).astype(np.float32)
    snr = np.array([0.0, 5.0, 10.0, 20.0])
    mix, n_clipped = levels.mix_at_snr(clean, noise, snr)
    np.testing.assert_allclose(_snr_db(clean, mix), snr, atol=0.01)
    np.testing.assert_array_equal(n_clipped, [0, 0, 0, 0])
    with pytest.raises(ValueError, match="shape"):
        levels.mix_at_snr(clean, noise[:, :100], 10.0)


def test_clipping_is_counted_and_logged(caplog):
    clean = _sine(n=1600, amp=0.99)
    noise = np.ones(1600, np.float32)
    raw = clean.astype(np.float64) + levels.noise_gain(clean, noise, 0.0) * noise
    expected = int(np.count_nonzero(np.abs(raw) > 1.0))
    assert expected > 100
    with caplog.at_level(logging.WARNING):
        mix, n_clipped = levels.mix_at_snr(clean, noise, 0.0)
    assert n_clipped == expected
    assert np.abs(mix).max() == 1.0
    assert any("clipped" in r.getMessage() for r in caplog.records)


def test_silence_gives_no_nan():
    silent = np.zeros(1000, np.float32)
    noise = np.random.default_rng(4).standard_normal(1000).astype(np.float32)
    mix, n = levels.mix_at_snr(silent, noise, 15.0)
    assert np.isfinite(mix).all() and np.abs(mix).max() < 1e-9 and n == 0
    mix, n = levels.mix_at_snr(_sine(n=1000), silent, 15.0)
    np.testing.assert_array_equal(mix, _sine(n=1000))
    mix, n = jax.jit(levels.mix_at_snr_jax)(jnp.zeros((2, 1000)), np.stack([noise, noise]), 15.0)
    assert np.isfinite(np.asarray(mix)).all() and np.abs(np.asarray(mix)).max() < 1e-9
    assert np.isfinite(np.asarray(jax.jit(levels.rms_dbfs_jax)(jnp.zeros(10)))).all()


def test_jax_mix_matches_numpy_under_jit():
    rng = np.random.default_rng(5)
    clean = (0.2 * rng.standard_normal((6, 2048))).astype(np.float32)
    clean[2] *= 4.0  # clips at low SNR
    noise = rng.standard_normal((6, 2048)).astype(np.float32)
    snr = np.array([0.0, 3.0, -3.0, 12.0, 15.0, 40.0], np.float32)
    mix_j, n_j = jax.jit(levels.mix_at_snr_jax)(clean, noise, snr)
    mix_n, n_n = levels.mix_at_snr(clean, noise, snr)
    np.testing.assert_allclose(np.asarray(mix_j), mix_n, atol=2e-6)
    np.testing.assert_array_equal(np.asarray(n_j), n_n)
    assert n_n[2] > 0
    ok = np.asarray(n_j) == 0
    np.testing.assert_allclose(_snr_db(clean, np.asarray(mix_j))[ok], snr[ok], atol=0.01)
    np.testing.assert_allclose(np.asarray(levels.rms_dbfs_jax(clean)), levels.rms_dbfs(clean),
                               atol=1e-4)


def test_jax_spl_forms():
    rng = np.random.default_rng(6)
    clean = (0.05 * rng.standard_normal((2, 4000))).astype(np.float32)
    noise = rng.standard_normal((2, 4000)).astype(np.float32)
    f = jax.jit(lambda c, n: levels.mix_at_spl_jax(c, n, speech_spl=60.0, noise_spl=45.0))
    mix, _ = f(clean, noise)
    np.testing.assert_allclose(_snr_db(clean, np.asarray(mix)), 15.0, atol=0.01)
    scaled = jax.jit(lambda n: levels.scale_to_spl_jax(n, 45.0))(noise)
    np.testing.assert_allclose(levels.rms_dbfs(np.asarray(scaled)), -45.0, atol=1e-3)
    with pytest.raises(ValueError, match="comfort"):
        levels.mix_at_spl_jax(clean, noise, noise_spl=46.0)
    with pytest.raises(TypeError, match="concrete"):
        jax.jit(lambda c, n, s: levels.mix_at_spl_jax(c, n, noise_spl=s))(clean, noise, 40.0)


def test_jax_mix_sharded_over_devices_matches_one_device():
    from maskgan_jax import parallel
    mesh = parallel.make_mesh(4)
    rng = np.random.default_rng(7)
    clean = (0.1 * rng.standard_normal((8, 1024))).astype(np.float32)
    noise = rng.standard_normal((8, 1024)).astype(np.float32)
    snr = np.linspace(0.0, 21.0, 8).astype(np.float32)
    c, n, s = parallel.shard_batch((clean, noise, snr), mesh)
    mix, clipped = jax.jit(levels.mix_at_snr_jax)(c, n, s)
    ref, ref_clipped = levels.mix_at_snr(clean, noise, snr)
    np.testing.assert_allclose(np.asarray(mix), ref, atol=2e-6)
    np.testing.assert_array_equal(np.asarray(clipped), ref_clipped)
    assert len(mix.sharding.device_set) == 4
