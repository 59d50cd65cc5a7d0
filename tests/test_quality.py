"""Noise-quality measures against closed forms and outside references (scipy, statsmodels), and the gate's verdicts."""
import json
import math
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from scipy import signal, stats

from maskgan_jax import noise, quality

FS = 16000
N, T = 32, 8192


@pytest.fixture(scope="module")
def white_pair():
    rng = np.random.default_rng(0)
    return 0.1 * rng.standard_normal((N, T)), 0.1 * rng.standard_normal((N, T))


def _tone(n, t, hz=1000.0, seed=1):
    phase = np.random.default_rng(seed).uniform(0, 2 * np.pi, (n, 1))
    return np.sin(2 * np.pi * hz * np.arange(t) / FS + phase)


def test_flatness_of_white_is_one_and_of_a_tone_zero(white_pair):
    white, _ = white_pair
    _, p = quality.welch_psd(white)
    # 32 clips x 15 Welch segments: the PSD estimate's ripple is ~1/sqrt(480), flatness ~ exp(-1/960).
    assert quality.spectral_flatness(p) > 0.995
    _, p_tone = quality.welch_psd(_tone(N, T))
    assert quality.spectral_flatness(p_tone) < 1e-3
    # Closed form: a spectrum with two levels a and b in equal parts has flatness sqrt(ab) / ((a+b)/2).
    two = np.r_[123.0, np.full(100, 1.0), np.full(100, 4.0)]
    assert quality.spectral_flatness(two) == pytest.approx(2.0 / 2.5, rel=1e-12)


def test_welch_psd_has_the_closed_form_levels(white_pair):
    white, _ = white_pair
    f, p = quality.welch_psd(white)
    assert f.shape == (513,) and f[1] == pytest.approx(FS / 1024) and f[-1] == FS / 2
    # One-sided density of white noise of variance s^2: 2 s^2 / fs (DC and Nyquist: s^2 / fs, less
    # at DC, where each segment's mean is removed).
    assert np.mean(p[1:-1]) == pytest.approx(2 * 0.01 / FS, rel=0.01)
    assert p[-1] == pytest.approx(0.01 / FS, rel=0.2)
    # Parseval: a sine of amplitude A has power A^2/2, all of it within a few bins of its frequency.
    amp = 0.3
    tone = amp * _tone(4, T, hz=2000.0)
    f, p = quality.welch_psd(tone)
    near = np.abs(f - 2000.0) <= 4 * f[1]
    assert np.sum(p[near]) * f[1] == pytest.approx(amp ** 2 / 2, rel=1e-3)


def test_octave_deviation_of_a_boosted_band_is_the_closed_form():
    # White noise whose 2 kHz octave (1414-2828 Hz) has exactly twice the power: at equal total
    # power that band is 10 log10(2 / (1 + w)) dB up and the rest 10 log10(1 / (1 + w)) down,
    # w the band's share of the spectrum.
    rng = np.random.default_rng(3)
    x = rng.standard_normal((N, T))
    spec = np.fft.rfft(x, axis=1)
    fr = np.fft.rfftfreq(T, 1 / FS)
    band = (fr >= 2000 / np.sqrt(2)) & (fr < 2000 * np.sqrt(2))
    spec[:, band] *= np.sqrt(2.0)
    boosted = np.fft.irfft(spec, T, axis=1)
    w = band.sum() / (len(fr) - 1)
    rep = quality.octave_deviation(boosted, rng.standard_normal((N, T)))
    by_c = {b["centre_hz"]: b["deviation_db"] for b in rep["octave_bands"]}
    assert sorted(by_c) == [63.0, 125.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0]
    assert by_c[2000.0] == pytest.approx(10 * np.log10(2 / (1 + w)), abs=0.2)
    for c in (125.0, 250.0, 500.0, 8000.0):
        assert by_c[c] == pytest.approx(10 * np.log10(1 / (1 + w)), abs=0.3), c
    # Level does not matter: a louder copy of the target deviates by nothing.
    t = rng.standard_normal((N, T))
    assert quality.octave_deviation(7.0 * t, t)["max_abs_band_deviation_db"] < 1e-9


def test_clip_correlation_closed_forms(white_pair):
    white, _ = white_pair
    # Independent clips: r ~ N(0, 1/T), so E|r| = sqrt(2 / (pi T)).
    assert quality.clip_correlation(white) == pytest.approx(math.sqrt(2 / (math.pi * T)), rel=0.15)
    # A shared component with a fraction rho of the power: every pair correlates at rho.
    rng = np.random.default_rng(4)
    rho = 0.3
    mixed = np.sqrt(rho) * rng.standard_normal((1, T)) + np.sqrt(1 - rho) * rng.standard_normal((N, T))
    assert quality.clip_correlation(mixed) == pytest.approx(rho, abs=0.02)
    assert quality.clip_correlation(np.repeat(white[:1], 4, axis=0)) == pytest.approx(1.0)
    # Brute force over pairs with numpy's corrcoef.
    c = np.corrcoef(white[:5])
    assert quality.clip_correlation(white[:5]) == pytest.approx(np.mean(np.abs(c[np.triu_indices(5, 1)])), rel=1e-9)


def test_spectral_correlation_sees_shifted_copies(white_pair):
    white, _ = white_pair
    # Circularly shifted copies differ as waveforms but share their periodogram exactly.
    shifted = np.stack([np.roll(white[0], 517 * i) for i in range(8)])
    assert quality.clip_correlation(shifted) < 0.05
    assert quality.spectral_correlation(shifted) == pytest.approx(1.0, abs=1e-9)
    # Independent white clips: log periodogram values are independent across frequency.
    assert quality.spectral_correlation(white) < 3 * math.sqrt(2 / (math.pi * (T // 2)))


def test_ks_distance_equals_scipy():
    rng = np.random.default_rng(5)
    a = rng.standard_normal(3000)
    b = 1.1 * rng.standard_normal(2500) + 0.05
    assert quality.ks_distance(a, b) == pytest.approx(stats.ks_2samp(a, b).statistic, abs=1e-12)
    # With ties (integer values).
    ai, bi = rng.integers(0, 20, 500), rng.integers(2, 22, 700)
    assert quality.ks_distance(ai, bi) == pytest.approx(stats.ks_2samp(ai, bi).statistic, abs=1e-12)
    assert quality.ks_distance([1, 2, 3], [4, 5]) == 1.0


def test_auc_equals_a_brute_force_pair_count():
    rng = np.random.default_rng(6)
    pos, neg = rng.integers(0, 10, 37).astype(float), rng.integers(0, 8, 23).astype(float)  # many ties
    pairs = [(1.0 if p > n else 0.5 if p == n else 0.0) for p in pos for n in neg]
    assert quality.auc(pos, neg) == pytest.approx(np.mean(pairs), abs=1e-12)
    assert quality.auc([2, 3], [0, 1]) == 1.0 and quality.auc([0], [1]) == 0.0


def test_delong_interval_covers_the_binormal_auc():
    # Scores N(d, 1) vs N(0, 1): AUC = Phi(d / sqrt 2). A 95 % interval should cover it ~95 % of the time.
    rng = np.random.default_rng(7)
    d, reps, n = 1.0, 400, 40
    true = stats.norm.cdf(d / np.sqrt(2))
    hits = 0
    for _ in range(reps):
        p, q = rng.standard_normal(n) + d, rng.standard_normal(n)
        lo, hi = quality.auc_interval([quality.auc(p, q)], [quality.delong_variance(p, q)])
        hits += lo <= true <= hi
    assert 0.90 <= hits / reps <= 0.98


def test_randomness_rates_match_statsmodels_runs_test():
    from statsmodels.sandbox.stats.runs import runstest_1samp
    from maskgan_jax.audio import float_to_int16
    rng = np.random.default_rng(8)
    # Half white, half smoothed (strongly correlated: far fewer runs than chance).
    x = 0.1 * rng.standard_normal((8, 4096))
    x[4:] = signal.lfilter([1.0], [1.0, -0.9], x[4:], axis=1) * 0.3
    pcm = float_to_int16(x)[0]
    want = np.mean([runstest_1samp(c.astype(float), cutoff="median", correction=True)[1] < 0.05 for c in pcm])
    got = quality.randomness_rates(x)
    assert got["runs"] == want and got["runs"] >= 0.5 and got["clips"] == 8


def test_two_sample_auc_is_chance_for_the_same_noise_and_high_for_another(white_pair):
    white, target = white_pair
    same = quality.two_sample_auc(white, target, seed=0)
    lo, hi = same["ci95"]
    assert lo <= 0.5 <= hi and abs(same["auc"] - 0.5) < 0.2
    assert same["clip_ci95"][0] <= 0.5 <= same["clip_ci95"][1]
    # Laplacian noise: the same flat spectrum and level, another amplitude distribution.
    lap = np.random.default_rng(9).laplace(size=(N, T))
    other = quality.two_sample_auc(lap, target, seed=0)
    assert other["auc"] > 0.9 and other["ci95"][0] > 0.6


def test_gate_passes_white_noise_and_is_json(white_pair):
    white, target = white_pair
    rep = quality.gate(white, target, seed=0)
    assert rep["passed"], quality.format_gate(rep)
    assert set(rep["measures"]) == {"flatness", "octave_deviation", "clip_correlation", "spectral_correlation",
                                    "ks", "runs", "cox_stuart", "two_sample_auc"}
    for v in rep["measures"].values():
        assert {"value", "target", "threshold", "pass"} <= set(v)
    json.loads(json.dumps(rep))


def test_gate_fails_pink_and_a_tone(white_pair):
    _, target = white_pair
    pink = np.asarray(noise.pink(jax.random.key(1), (N, T)))
    rep = quality.gate(pink, target, classifier=False)
    assert not rep["passed"] and {"flatness", "octave_deviation"} <= set(rep["failed"])
    rep = quality.gate(_tone(N, T), target, classifier=False)
    assert not rep["passed"] and {"flatness", "octave_deviation", "clip_correlation", "ks"} <= set(rep["failed"])


def test_gate_fails_a_repeated_clip_on_diversity_only(white_pair):
    white, target = white_pair
    # One white clip (twice as long, for a steady spectrum estimate) repeated: every single
    # clip is typical white noise, only the diversity measures can tell.
    rng = np.random.default_rng(10)
    one = 0.1 * rng.standard_normal((1, 4 * T))
    rep = quality.gate(np.repeat(one, N, axis=0), 0.1 * rng.standard_normal((N, 4 * T)), classifier=False)
    assert set(rep["failed"]) == {"clip_correlation", "spectral_correlation"}, quality.format_gate(rep)


def test_quick_measures_and_worsening_warnings(white_pair):
    white, target = white_pair
    q = quality.quick_measures(white, target)
    assert q["flatness"] > 0.99 and q["octave_max_db"] < 0.5 and q["ks"] < 0.01
    json.dumps(q)
    worse = dict(q, flatness=q["flatness"] - 0.2, clip_corr=q["clip_corr"] + 0.5)
    msgs = quality.worsened(q, worse)
    assert len(msgs) == 2 and "flatness" in msgs[0] and "clip_corr" in msgs[1]
    assert quality.worsened(None, q) == [] and quality.worsened(q, q) == []


def test_binary_writes_the_gate_of_a_reference_noise(tmp_path):
    # In a process of its own: the binaries' absl flags (e.g. --noise) are global to a process.
    out = tmp_path / "pink.json"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    run = subprocess.run([sys.executable, "-m", "experiments.noise_quality", "--noise=pink", "--num_clips=8",
                          "--slice_len=16384", "--noclassifier", f"--out={out}"], cwd=root, capture_output=True,
                         text=True, timeout=300, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert run.returncode == 0, run.stderr[-2000:]
    rep = json.loads(out.read_text())
    assert rep["kind"] == "noise_quality" and rep["target"] == "white" and rep["clips"] == [8, 8]
    assert not rep["passed"] and "flatness" in rep["failed"] and "two_sample_auc" not in rep["measures"]
