"""Metrics against hand-computed values, scipy, and coverage on simulated data."""
import math

import numpy as np
import pytest
import scipy.stats

from maskgan_jax import metrics


def test_mean_ci_hand_computed():
    # mean 0.9, sd 0.1, t(0.975, 2) = 4.302652729911275 -> half width 0.2484138...
    est = metrics.mean_ci([0.8, 0.9, 1.0])
    half = 4.302652729911275 * 0.1 / math.sqrt(3)
    assert est.value == pytest.approx(0.9)
    assert est.low == pytest.approx(0.9 - half, rel=1e-9)
    assert est.high == pytest.approx(0.9 + half, rel=1e-9)
    assert est.n == 3


def test_mean_ci_matches_scipy_t_interval():
    x = np.random.default_rng(3).normal(0.7, 0.05, size=12)
    lo, hi = scipy.stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=scipy.stats.sem(x))
    est = metrics.mean_ci(x)
    assert (est.low, est.high) == pytest.approx((lo, hi), rel=1e-9)


def test_single_value_has_no_interval():
    est = metrics.bia([0.7])
    assert est.value == pytest.approx(0.7)
    assert est.ci95 == [None, None]


def test_bad_values_raise():
    with pytest.raises(ValueError, match="no values"):
        metrics.mean_ci([])
    with pytest.raises(ValueError, match="finite"):
        metrics.mean_ci([0.1, float("nan")])
    with pytest.raises(ValueError, match="BIA"):
        metrics.relative_reduction(0.0, 0.1)


def test_reduction_and_spf_hand_computed():
    assert metrics.relative_reduction(0.8, 0.6) == pytest.approx(0.25)
    assert metrics.relative_reduction(0.5, 0.6) == pytest.approx(-0.2)
    assert metrics.spf(0.45, 0.9) == pytest.approx(0.5)


def test_paired_ratio_ci_covers_the_true_ratio():
    """The paired SPF / reduction interval holds its nominal 95 % on simulated fold pairs."""
    rng = np.random.default_rng(4)
    n, trials, true_ratio = 20, 600, 0.6
    hits = 0
    for _ in range(trials):
        clean = rng.uniform(0.7, 0.95, n)
        masked = true_ratio * clean + rng.normal(0.0, 0.05, n)   # E[masked] / E[clean] = 0.6
        est = metrics.spf_ci(masked, clean)
        hits += est.low <= true_ratio <= est.high
        red = metrics.reduction_ci(clean, masked)
        assert red.value == pytest.approx(1 - est.value) and red.low == pytest.approx(1 - est.high)
    assert 0.92 <= hits / trials <= 0.98, hits / trials


def test_unpaired_ratio_bootstrap_is_seeded_and_covers():
    clean = np.random.default_rng(0).normal(0.9, 0.02, 8)
    masked = np.random.default_rng(1).normal(0.45, 0.02, 5)
    a = metrics.reduction_ci(clean, masked, paired=False, seed=7)
    b = metrics.reduction_ci(clean, masked, paired=False, seed=7)
    assert a == b
    assert a.low < a.value < a.high
    assert a.value == pytest.approx(1 - masked.mean() / clean.mean())
    assert 0.40 < a.low and a.high < 0.60


def test_randomness_summary_hand_computed():
    s = metrics.randomness_summary([0.01, 0.5, 0.9, 0.04])
    assert s["mean_p"] == pytest.approx(0.3625)
    assert s["frac_below_alpha"] == pytest.approx(0.5)
    assert s["n"] == 4
    with pytest.raises(ValueError, match="p-values"):
        metrics.randomness_summary([0.2, 1.3])


def test_pearson_and_fisher_ci_match_scipy():
    rng = np.random.default_rng(11)
    x = rng.normal(size=15)
    y = 0.6 * x + rng.normal(scale=0.8, size=15)
    est, p = metrics.pearson_fisher_ci(x, y)
    ref = scipy.stats.pearsonr(x, y)
    ci = ref.confidence_interval(0.95)
    assert est.value == pytest.approx(ref.statistic, rel=1e-12)
    assert p == pytest.approx(ref.pvalue, rel=1e-8)
    assert (est.low, est.high) == pytest.approx((ci.low, ci.high), rel=1e-9)


def test_spearman_matches_scipy_and_rtmr_is_seeded():
    rng = np.random.default_rng(2)
    x = rng.uniform(size=12)
    y = -x + rng.normal(scale=0.3, size=12)
    est, p = metrics.spearman_bootstrap_ci(x, y, seed=0)
    ref = scipy.stats.spearmanr(x, y)
    assert est.value == pytest.approx(ref.statistic, rel=1e-12)
    assert p == pytest.approx(ref.pvalue, rel=1e-8)
    assert est.low <= est.value <= est.high
    r1 = metrics.rtmr(x, y, seed=3, n_boot=300)
    r2 = metrics.rtmr(x, y, seed=3, n_boot=300)
    assert r1 == r2
    assert r1["pearson_r"] < 0 and r1["pearson_ci95"][1] < 0.2


def test_rtmr_too_few_points_has_no_interval():
    r = metrics.rtmr([0.1, 0.2, 0.3], [0.0, 0.5, 0.2])
    assert r["n"] == 3
    assert r["pearson_ci95"] == [None, None]
    assert r["spearman_ci95"] == [None, None]
    assert r["pearson_r"] == pytest.approx(scipy.stats.pearsonr([0.1, 0.2, 0.3], [0.0, 0.5, 0.2])[0])


def test_constant_side_has_no_correlation():
    r = metrics.rtmr([0.4] * 6, [0.1, 0.3, 0.2, 0.5, 0.4, 0.6])
    assert r["pearson_r"] is None and r["spearman_rho"] is None
