"""Cluster-bootstrap intervals against brute force, exact enumeration, scipy, and simulated coverage."""
import itertools
import math

import numpy as np
import pytest
import scipy.stats

from maskgan_jax import metrics


def _data(seed=0, g=6, k=(2, 7)):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(k[0], k[1], g)
    p = rng.uniform(0.3, 0.9, g)
    right = np.concatenate([rng.random(n) < pk for pk, n in zip(p, sizes)]).astype(int)
    clusters = np.repeat([f"spk{i}" for i in range(g)], sizes)
    return right, clusters


def _expanded_q(g, confidence=0.95):
    alpha = (1 - confidence) / 2
    a2 = scipy.stats.norm.sf(math.sqrt(g / (g - 1)) * scipy.stats.t.ppf(1 - alpha, g - 1))
    return [a2, 1 - a2]


def _brute(stat, columns, clusters, n_boot, seed, q):
    """Slow reference: the same cluster draws, each resample built example by example."""
    names = np.unique(clusters)
    draws = np.random.default_rng(seed).integers(0, names.size, size=(n_boot, names.size))
    members = [np.flatnonzero(clusters == c) for c in names]
    boot = []
    for row in draws:
        rows = np.concatenate([members[i] for i in row])
        v = stat(*(c[rows] for c in columns))
        if np.isfinite(v):
            boot.append(v)
    return stat(*columns), np.quantile(boot, q)


def _acc(right):
    """Mean over attribute columns of each attribute's accuracy over its labelled rows."""
    r = right.reshape(right.shape[0], -1)
    with np.errstate(invalid="ignore"):
        return float(np.mean([np.sum(r[:, j] == 1) / np.sum(r[:, j] >= 0) for j in range(r.shape[1])]))


def test_accuracy_interval_matches_brute_force_with_the_same_seed():
    right, clusters = _data()
    for method, q in (("expanded", _expanded_q(6)), ("percentile", [0.025, 0.975])):
        est = metrics.clustered_bootstrap_ci(right, clusters, n_boot=300, seed=11, method=method)
        value, (lo, hi) = _brute(_acc, [right], clusters, 300, 11, q)
        assert est.value == pytest.approx(right.mean()) == pytest.approx(value)
        assert (est.low, est.high) == pytest.approx((lo, hi), abs=1e-12)
        assert est.n == right.size and est.method == f"cluster-bootstrap-{method}"


def test_multi_attribute_outcomes_with_missing_labels_match_brute_force():
    rng = np.random.default_rng(3)
    right, clusters = _data(seed=3, g=7)
    two = np.stack([right, rng.integers(0, 2, right.size)], axis=1)
    two[rng.random(right.size) < 0.3, 1] = -1            # missing labels of the second attribute
    est = metrics.clustered_bootstrap_ci(two, clusters, n_boot=200, seed=5)
    value, (lo, hi) = _brute(_acc, [two], clusters, 200, 5, _expanded_q(7))
    assert est.value == pytest.approx(value)
    assert (est.low, est.high) == pytest.approx((lo, hi), abs=1e-12)
    assert est.n == int(np.sum(two >= 0))


def test_paired_difference_and_ratios_match_brute_force():
    right, clusters = _data(seed=4, g=8)
    rng = np.random.default_rng(4)
    masked = right * (rng.random(right.size) < 0.7)      # paired: masking only loses examples here
    q = _expanded_q(8)

    est = metrics.clustered_bootstrap_diff(right, masked, clusters, n_boot=250, seed=2)
    value, (lo, hi) = _brute(lambda a, b: a.mean() - b.mean(), [right, masked], clusters, 250, 2, q)
    assert est.value == pytest.approx(value)
    assert (est.low, est.high) == pytest.approx((lo, hi), abs=1e-12)

    def ratio(m, c):
        return m.mean() / c.mean() if c.sum() else np.nan

    spf = metrics.clustered_spf_ci(masked, right, clusters, n_boot=250, seed=2)
    value, (lo, hi) = _brute(ratio, [masked, right], clusters, 250, 2, q)
    assert spf.value == pytest.approx(value)
    assert (spf.low, spf.high) == pytest.approx((lo, hi), abs=1e-12)

    red = metrics.clustered_reduction_ci(right, masked, clusters, n_boot=250, seed=2)
    assert red.value == pytest.approx(1 - value)
    assert (red.low, red.high) == pytest.approx((1 - hi, 1 - lo), abs=1e-12)


def test_percentile_interval_matches_the_enumerated_bootstrap_distribution():
    # Four clusters: all 4^4 ordered resamples are equally likely, so the exact bootstrap
    # distribution is known; the Monte Carlo quantiles must fall within a sliver of it.
    right = np.array([1, 1, 0, 1, 0, 0, 1, 1, 1, 0, 1])
    clusters = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 3])
    r = [right[clusters == c] for c in range(4)]
    exact = np.sort([np.concatenate([r[i] for i in draw]).mean()
                     for draw in itertools.product(range(4), repeat=4)])
    est = metrics.clustered_bootstrap_ci(right, clusters, n_boot=40000, seed=0, method="percentile")
    assert np.quantile(exact, 0.02) <= est.low <= np.quantile(exact, 0.03)
    assert np.quantile(exact, 0.97) <= est.high <= np.quantile(exact, 0.98)


@pytest.mark.parametrize("method,scipy_method", [("percentile", "percentile"), ("bca", "BCa")])
def test_singleton_clusters_match_scipy_bootstrap(method, scipy_method):
    # One example per cluster: the cluster bootstrap is the ordinary bootstrap of a mean.
    rng = np.random.default_rng(7)
    right = (rng.random(60) < 0.8).astype(int)
    est = metrics.clustered_bootstrap_ci(right, np.arange(60), n_boot=20000, seed=1, method=method)
    ref = scipy.stats.bootstrap((right,), np.mean, n_resamples=20000, method=scipy_method,
                                rng=np.random.default_rng(2)).confidence_interval
    assert est.low == pytest.approx(ref.low, abs=0.02)
    assert est.high == pytest.approx(ref.high, abs=0.02)


def test_intervals_stay_inside_the_unit_interval():
    right = np.ones(20, int)
    right[3] = 0
    clusters = np.repeat(np.arange(4), 5)
    for method in metrics.CLUSTER_METHODS:
        est = metrics.clustered_bootstrap_ci(right, clusters, n_boot=500, method=method)
        assert 0.0 <= est.low <= est.value <= est.high <= 1.0
    est = metrics.clustered_bootstrap_ci(np.ones(10, int), np.arange(10) // 2)
    assert (est.value, est.low, est.high) == (1.0, 1.0, 1.0)
    one = metrics.clustered_bootstrap_ci([1, 0, 1], ["a", "a", "a"])
    assert one.value == pytest.approx(2 / 3) and math.isnan(one.low) and math.isnan(one.high)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="outcomes must be"):
        metrics.clustered_bootstrap_ci([1, 2], [0, 1])
    with pytest.raises(ValueError, match="cluster ids"):
        metrics.clustered_bootstrap_ci([1, 0, 1], [0, 1])
    with pytest.raises(ValueError, match="differ in shape"):
        metrics.clustered_bootstrap_diff([1, 0], [1, 0, 1], [0, 1])
    with pytest.raises(ValueError, match="method"):
        metrics.clustered_bootstrap_ci([1, 0], [0, 1], method="t")
    with pytest.raises(ValueError, match="denominator"):
        metrics.clustered_spf_ci([1, 0], [0, 0], [0, 1])


def _study(rng, g, mu=0.7, icc=0.15, mean_size=8):
    """One simulated attack's pooled test outcomes: cluster accuracies from a Beta (mean mu)."""
    a, b = mu * (1 - icc) / icc, (1 - mu) * (1 - icc) / icc
    p = rng.beta(a, b, g)
    sizes = 1 + rng.poisson(mean_size - 1, g)
    right = np.concatenate([rng.random(n) < pk for pk, n in zip(p, sizes)]).astype(int)
    return right, np.repeat(np.arange(g), sizes)


@pytest.mark.parametrize("g", [8, 24])
def test_coverage_on_simulated_clustered_studies(g):
    # 400 studies: the binomial standard error of the coverage is ~1.1 points.
    rng = np.random.default_rng(100 + g)
    hits = hits_diff = 0
    for s in range(400):
        right, clusters = _study(rng, g)
        est = metrics.clustered_bootstrap_ci(right, clusters, n_boot=1000, seed=s)
        hits += est.low <= 0.7 <= est.high
        masked = right * (rng.random(right.size) < 0.7)   # true paired difference 0.3 * 0.7
        d = metrics.clustered_bootstrap_diff(right, masked, clusters, n_boot=1000, seed=s)
        hits_diff += d.low <= 0.21 <= d.high
    assert 0.91 <= hits / 400 <= 0.985, f"coverage of the accuracy interval with {g} clusters: {hits / 400}"
    assert 0.91 <= hits_diff / 400 <= 0.985, f"coverage of the paired difference with {g} clusters: {hits_diff / 400}"
