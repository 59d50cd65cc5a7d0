"""The trained masker: its noise against scipy.signal.welch, its level by construction, a short training run."""
import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.signal

from maskgan_jax import keys, levels, masker, masking
from maskgan_jax.data.batches import ArrayData

T = 8192


def test_band_matrix_interpolates_and_zero_gains_are_white():
    w = masker.band_matrix(16, T)
    assert w.shape == (T // 2 + 1, 16)
    np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=1e-6)
    g = np.asarray(masker.bin_gain(jnp.zeros(16), jnp.asarray(w)))
    assert g[0] == 0.0 and np.allclose(g[1:], 1.0)
    x = np.asarray(masker.noise_batch(jnp.zeros(16), jnp.asarray(w), jax.random.split(jax.random.key(0), 64), T))
    _, p = scipy.signal.welch(x.astype(np.float64), nperseg=512, axis=-1)
    p = p.mean(axis=0)[4:-1]                                  # one-sided: Nyquist is not doubled
    assert 10 * np.log10(p.max() / p.min()) < 1.0          # flat: white noise


def test_shaped_spectrum_matches_the_gains_within_1db():
    bands = 12
    log_gain = jnp.asarray(np.linspace(-2.0, 1.5, bands) * np.cos(np.arange(bands)), jnp.float32)
    w = jnp.asarray(masker.band_matrix(bands, T))
    x = np.asarray(masker.noise_batch(log_gain, w, jax.random.split(jax.random.key(1), 128), T), np.float64)
    np.testing.assert_allclose(np.sqrt(np.mean(x ** 2, axis=1)), 1.0, rtol=1e-4)   # unit RMS per clip
    f, p = scipy.signal.welch(x, nperseg=512, axis=-1)
    want = np.asarray(masker.bin_gain(log_gain, w)) ** 2            # power per rFFT bin
    want = np.interp(f, np.fft.rfftfreq(T), want)
    got_db, want_db = 10 * np.log10(p.mean(axis=0)), 10 * np.log10(want)
    sel = slice(4, -4)
    err = (got_db - want_db)[sel]
    err -= err.mean()                                             # the level is normalised away
    assert np.abs(err).max() < 1.0, np.abs(err).max()


def _workdir(tmp_path, log_gain):
    cfg = masker.MaskerConfig(bands=log_gain.size)
    d = tmp_path / "m"
    d.mkdir()
    (d / masker.CONFIG_FILE).write_text(json.dumps(cfg.to_json()))
    np.savez(d / masker.PARAMS_FILE, log_gain=log_gain.astype(np.float32))
    return str(d)


def test_masker_spec_mixes_at_the_snr_whatever_its_gains(tmp_path):
    log_gain = np.zeros(masker.MaskerConfig().bands, np.float32)
    log_gain[5] = 8.0                                             # all power in one band
    d = _workdir(tmp_path, log_gain)
    assert masking.check_spec(f"masker:{d}").kind == "masker"
    program = masking.noise_program(f"masker:{d}", T)
    noise = program.host(keys.test_noise(0), np.arange(8))
    np.testing.assert_allclose(np.sqrt(np.mean(noise.astype(np.float64) ** 2, axis=1)), 1.0, rtol=1e-4)
    clean = 0.05 * np.sin(np.arange(T) * 0.01)[None].repeat(8, 0).astype(np.float32)
    mixed, _ = levels.mix_at_snr_jax(clean, noise, 15.0)
    added = np.asarray(mixed, np.float64) - clean
    snr = 10 * np.log10(np.mean(clean.astype(np.float64) ** 2, axis=1) / np.mean(added ** 2, axis=1))
    np.testing.assert_allclose(snr, 15.0, atol=1e-3)
    assert program.info["identity"] == masker.identity(d)
    with pytest.raises(ValueError, match="no trained masker"):
        masking.check_spec(f"masker:{tmp_path / 'nothing'}")
    with pytest.raises(ValueError, match="at most"):
        masker.MaskerConfig(noise_spl=50.0).validate()


def _toy(n_classes, seed, n=24, length=8192):
    """Clips whose class is a resonance frequency; half of each clip silent (like a padded word)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n)
    audio = np.zeros((n, length), np.int16)
    for i, c in enumerate(y):
        b, a = scipy.signal.iirpeak(0.05 + 0.1 * c, Q=4.0)
        x = scipy.signal.lfilter(b, a, rng.normal(size=length // 2))
        audio[i, :length // 2] = np.round(x / np.abs(x).max() * 9000)
    return ArrayData(audio, {"y": y.astype(np.int32)}, [f"g{i % 6}" for i in range(n)], ["train"] * n,
                     {"y": [str(k) for k in range(n_classes)]}, "toy")


def test_a_short_training_run_moves_the_masker_and_is_loadable(tmp_path):
    cfg = dataclasses.replace(masker.MaskerConfig(), tasks=("udi",), rounds=3, warmup_rounds=1, batch_size=4,
                              crop=1024, n_mels=16, cnn_channels=(4,), snapshot_every=1, pool_size=2)
    last = masker.train(cfg, str(tmp_path / "w"), log=lambda m: None,
                        stores={"udi": _toy(3, 0), "commands": _toy(2, 1)})
    assert np.isfinite(last["confusion"]) and np.isfinite(last["utility_loss"])
    g = masker.load_params(str(tmp_path / "w"))
    assert g.shape == (cfg.bands,) and np.ptp(g) > 0.0             # it moved away from white noise
    assert masker.read_config(str(tmp_path / "w")) == cfg
    src = masking.make_source(f"masker:{tmp_path / 'w'}", 32768)
    out = src.fn(src.arrays, jax.random.split(jax.random.key(0), 2))
    assert out.shape == (2, 32768)
    assert os.path.isfile(tmp_path / "w" / masker.METRICS_FILE)


def test_study_names_the_baselines_and_the_trained_masker(tmp_path):
    from maskgan_jax import study_config, study_gan
    d = _workdir(tmp_path, np.zeros(masker.MaskerConfig().bands, np.float32))
    from maskgan_jax import attack
    base = study_config.StudyConfig(tasks=("commands",), models=("probe",), attack=(("probe", attack.AttackConfig()),),
                                    adversaries=("adaptive",),
                                    noises=("white", "speech_shaped", "babble", "optimised"))
    with pytest.raises(ValueError, match="masker_workdir"):
        base.validate()
    cfg = dataclasses.replace(base, masker_workdir=d).validate()
    assert study_gan.noise_spec(cfg, str(tmp_path), "optimised") == f"masker:{os.path.abspath(d)}"
    assert study_gan.noise_spec(cfg, str(tmp_path), "babble") == "babble"
    assert study_gan.masker_identity(cfg) == masker.identity(d)
    assert {c.noise for c in cfg.cells()} >= {"speech_shaped", "babble", "optimised"}


@pytest.mark.parametrize("args,needle", [
    (["-m", "experiments.train_masker", "--workdir=/tmp/none", "--noise_spl=50"], "noise_spl=50"),
    (["-m", "experiments.eval_masker", "--masker=/nonexistent/m", "--out=/tmp/x"], "masker:/nonexistent/m"),
    (["-m", "experiments.attack", "--task=udi", "--noise=masker:/nonexistent/m", "--out=/tmp/x.jsonl"],
     "masker:/nonexistent/m"),
])
def test_binaries_refuse_a_bad_masker_in_one_line(args, needle):
    import subprocess
    import sys
    out = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "JAX_PLATFORMS": "cpu"},
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert out.returncode == 2, (out.returncode, out.stderr[-2000:])
    assert "Traceback" not in out.stderr
    assert needle in out.stderr.splitlines()[0]
