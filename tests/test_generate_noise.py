"""generate_noise: calibrated level, comfort limit, cross-faded streams, and the spectral report."""
import json
import os

import numpy as np
import pytest
import soundfile as sf
from scipy import signal

from experiments.configs.maskgan import get_config
from maskgan_jax import gan, gan_generate, levels, quality


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    # An untrained (step 0) tiny MaskGAN: generating from it needs no training step compiled.
    wd = str(tmp_path_factory.mktemp("maskgan"))
    gan.train(get_config("tiny", steps=0), wd, num_devices=1)
    return wd


def test_stream_is_calibrated_and_reported(workdir, tmp_path):
    out = str(tmp_path / "noise.wav")
    rep = gan_generate.generate_noise(workdir, out, seconds=2.5, spl_db=40.0, seed=1)
    pcm, rate = sf.read(out, dtype="int16")
    assert rate == 16000 and len(pcm) == 40000 and pcm.dtype == np.int16
    x = pcm.astype(np.float64) / 32768.0
    # 40 dB SPL with 0 dBFS = 90 dB SPL -> -50 dBFS RMS (int16 rounding of a quiet signal: 0.1 dB).
    assert 20 * np.log10(np.sqrt(np.mean(x ** 2))) == pytest.approx(-50.0, abs=0.1)
    assert rep["measured_spl_db"] == pytest.approx(40.0, abs=0.1)
    with open(os.path.splitext(out)[0] + ".json") as f:
        saved = json.load(f)
    assert saved["mode"] == "stream" and saved["step"] == 0 and len(saved["octave_bands"]) >= 8
    assert {"spectral_flatness", "target_spectral_flatness", "max_abs_band_deviation_db"} <= set(saved)
    assert 0 < saved["spectral_flatness"] <= 1 and saved["target_spectral_flatness"] > 0.9


def test_clips_and_the_comfort_limit(workdir, tmp_path):
    rep = gan_generate.generate_noise(workdir, str(tmp_path / "clips"), num_clips=3, spl_db=45.0)
    files = sorted(f for f in os.listdir(tmp_path / "clips") if f.endswith(".wav"))
    assert len(files) == 3 and len(rep["files"]) == 3
    for f in files:
        x, _ = sf.read(tmp_path / "clips" / f, dtype="float64")
        assert len(x) == 16384
        assert 20 * np.log10(np.sqrt(np.mean(x ** 2))) + 90 == pytest.approx(45.0, abs=0.1)
    with pytest.raises(ValueError, match="45"):
        gan_generate.generate_noise(workdir, str(tmp_path / "loud.wav"), seconds=1.0, spl_db=50.0)
    assert not os.path.exists(tmp_path / "loud.wav")
    rep = gan_generate.generate_noise(workdir, str(tmp_path / "loud.wav"), seconds=1.0, spl_db=50.0, allow_above_comfort=True)
    assert rep["above_comfort"] and rep["measured_spl_db"] == pytest.approx(50.0, abs=0.1)


def test_crossfade_keeps_the_level_of_independent_noise():
    rng = np.random.default_rng(0)
    clips = rng.standard_normal((6, 4000)).astype(np.float32)
    fade = 800
    out = gan_generate.crossfade_concat(clips, fade)
    assert out.shape == (6 * 4000 - 5 * fade,)
    hop = 4000 - fade
    seams = np.concatenate([out[i * hop + 4000 - fade:(i + 1) * hop + fade - (4000 - fade) + 4000 - fade]
                            for i in range(5)])
    # Equal-power fades of uncorrelated noise: the seams have the same power as the clips.
    assert np.mean(seams ** 2) == pytest.approx(1.0, rel=0.08)
    # Unfaded middles are the clips themselves.
    np.testing.assert_array_equal(out[fade:4000 - fade], clips[0, fade:4000 - fade])


def test_report_against_target_spectra():
    rng = np.random.default_rng(1)
    white = rng.standard_normal((8, 32768))
    target = rng.standard_normal((8, 32768))
    rep = quality.compare_to_target(white, target)
    assert rep["max_abs_band_deviation_db"] < 1.0
    assert rep["spectral_flatness"] == pytest.approx(rep["target_spectral_flatness"], abs=0.02)
    # A 1 kHz low-passed noise: the bands above are far below the white target's.
    b, a = signal.butter(6, 1000, fs=16000)
    low = signal.lfilter(b, a, white, axis=1)
    rep = quality.compare_to_target(low, target)
    by_c = {b["centre_hz"]: b["deviation_db"] for b in rep["octave_bands"]}
    assert by_c[4000.0] < -30 and by_c[250.0] > 5 and rep["spectral_flatness"] < 0.2
    # The Welch spectrum is scipy's; its flatness agrees with scipy's geometric/arithmetic means.
    from scipy import stats
    f, p = quality.welch_psd(low)
    f_ref, p_ref = signal.welch(low, fs=16000, nperseg=1024)
    np.testing.assert_allclose(f, f_ref)
    np.testing.assert_allclose(p, p_ref.mean(axis=0), rtol=1e-7)
    assert quality.spectral_flatness(p) == pytest.approx(stats.gmean(p[1:]) / np.mean(p[1:]), rel=1e-9)
    assert levels.COMFORT_LIMIT_SPL == 45.0
