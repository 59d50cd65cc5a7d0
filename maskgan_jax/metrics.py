"""The study's metrics: BIA, MIA, relative reduction, SPF, randomness summaries, RTMR.

Every figure comes with a 95 % interval over its repetitions (folds × seeds): a Student-t
interval for means, a ratio interval for paired ratios, a seeded percentile bootstrap where
no closed form fits, and Fisher's z for a Pearson correlation. Distributions come from
``scipy.stats`` (scipy is installed with jax).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable, Sequence

import numpy as np
from scipy import stats

CONFIDENCE = 0.95


# --------------------------------------------------------------------------- estimates

@dataclasses.dataclass(frozen=True)
class Estimate:
    """A point value with its interval (low/high are NaN when the interval is undefined)."""
    value: float
    low: float
    high: float
    n: int
    method: str

    @property
    def ci95(self) -> list:
        """[low, high] with None for an undefined bound (JSON-safe)."""
        return [_finite_or_none(self.low), _finite_or_none(self.high)]

    def to_dict(self, prefix: str = "") -> dict:
        """JSON-safe fields: value, ci95, n, method (keys prefixed)."""
        return {f"{prefix}value" if prefix else "value": _finite_or_none(self.value),
                f"{prefix}ci95" if prefix else "ci95": self.ci95,
                f"{prefix}n" if prefix else "n": self.n,
                f"{prefix}ci_method" if prefix else "ci_method": self.method}


def _finite_or_none(x):
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _as_1d(values, what: str) -> np.ndarray:
    a = np.asarray(values, dtype=np.float64).reshape(-1)
    if a.size == 0:
        raise ValueError(f"{what}: no values")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{what}: values must be finite, got {a.tolist()}")
    return a


def mean_ci(values: Sequence[float], confidence: float = CONFIDENCE) -> Estimate:
    """Mean with a Student-t interval; a single value has no interval (NaN bounds)."""
    a = _as_1d(values, "mean_ci")
    n = a.size
    m = float(a.mean())
    if n < 2:
        return Estimate(m, math.nan, math.nan, n, "t")
    sd = float(a.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2.0, n - 1)) * sd / math.sqrt(n)
    return Estimate(m, m - half, m + half, n, "t")


# --------------------------------------------------------------------------- the paper's metrics

def bia(clean_accuracies: Sequence[float], confidence: float = CONFIDENCE) -> Estimate:
    """Baseline inference accuracy: the attack's mean accuracy on clean audio over folds × seeds."""
    return mean_ci(clean_accuracies, confidence)


def mia(masked_accuracies: Sequence[float], confidence: float = CONFIDENCE) -> Estimate:
    """Mitigated inference accuracy: the attack's mean accuracy on masked audio over folds × seeds."""
    return mean_ci(masked_accuracies, confidence)


def relative_reduction(bia_value: float, mia_value: float) -> float:
    """(BIA − MIA) / BIA: the fraction of the attack's accuracy the masking removes."""
    if not bia_value > 0:
        raise ValueError(f"relative_reduction: BIA must be > 0, got {bia_value}")
    return (bia_value - mia_value) / bia_value


def spf(masked_command_accuracy: float, clean_command_accuracy: float) -> float:
    """Semantic preservation factor: speech-command accuracy under masking / on clean audio."""
    if not clean_command_accuracy > 0:
        raise ValueError(f"spf: clean command accuracy must be > 0, got {clean_command_accuracy}")
    return masked_command_accuracy / clean_command_accuracy


def ratio_ci(numerators: Sequence[float], denominators: Sequence[float], paired: bool = True,
             confidence: float = CONFIDENCE, n_boot: int = 2000, seed: int = 0) -> Estimate:
    """Interval of mean(num)/mean(den).

    Paired (same folds and seeds): the ratio of means with a delta-method (Fieller-style
    first-order) t-interval from the per-pair values. Unpaired: a seeded bootstrap that
    resamples both groups independently.
    """
    num = _as_1d(numerators, "ratio_ci numerators")
    den = _as_1d(denominators, "ratio_ci denominators")
    if not den.mean() > 0:
        raise ValueError(f"ratio_ci: the denominators' mean must be > 0, got {den.mean()}")
    value = float(num.mean() / den.mean())
    if paired:
        if num.size != den.size:
            raise ValueError(f"ratio_ci: paired groups differ in size ({num.size} vs {den.size})")
        n = num.size
        if n < 2:
            return Estimate(value, math.nan, math.nan, n, "t-delta")
        # Linearised ratio residuals: their mean is 0 and their spread is the ratio's.
        resid = (num - value * den) / den.mean()
        half = float(stats.t.ppf(0.5 + confidence / 2.0, n - 1)) * float(resid.std(ddof=1)) / math.sqrt(n)
        return Estimate(value, value - half, value + half, n, "t-delta")
    if num.size < 2 or den.size < 2:
        return Estimate(value, math.nan, math.nan, min(num.size, den.size), "bootstrap")
    rng = np.random.default_rng(seed)
    bn = num[rng.integers(0, num.size, size=(n_boot, num.size))].mean(axis=1)
    bd = den[rng.integers(0, den.size, size=(n_boot, den.size))].mean(axis=1)
    ok = bd > 0
    ratios = bn[ok] / bd[ok]
    lo, hi = np.quantile(ratios, [(1 - confidence) / 2, (1 + confidence) / 2])
    return Estimate(value, float(lo), float(hi), min(num.size, den.size), "bootstrap")


def reduction_ci(clean_accuracies: Sequence[float], masked_accuracies: Sequence[float],
                 paired: bool = True, confidence: float = CONFIDENCE, n_boot: int = 2000,
                 seed: int = 0) -> Estimate:
    """(BIA − MIA)/BIA with its interval (1 − the MIA/BIA ratio interval)."""
    r = ratio_ci(masked_accuracies, clean_accuracies, paired, confidence, n_boot, seed)
    return Estimate(1.0 - r.value, 1.0 - r.high, 1.0 - r.low, r.n, r.method)


def spf_ci(masked_command_accuracies: Sequence[float], clean_command_accuracies: Sequence[float],
           paired: bool = True, confidence: float = CONFIDENCE, n_boot: int = 2000,
           seed: int = 0) -> Estimate:
    """SPF with its interval (the masked/clean command-accuracy ratio)."""
    return ratio_ci(masked_command_accuracies, clean_command_accuracies, paired, confidence,
                    n_boot, seed)


def randomness_summary(p_values: Sequence[float], alpha: float = 0.05,
                       confidence: float = CONFIDENCE) -> dict:
    """Mean p-value (0–1 scale, t-interval) and the fraction of clips rejected at ``alpha``."""
    p = _as_1d(p_values, "randomness_summary")
    if np.any((p < 0) | (p > 1)):
        raise ValueError("randomness_summary: p-values must lie in [0, 1]")
    est = mean_ci(p, confidence)
    return {"mean_p": est.value, "ci95": est.ci95, "n": est.n,
            "frac_below_alpha": float(np.mean(p < alpha)), "alpha": alpha}


# --------------------------------------------------------------------------- correlation, RTMR

def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson's r (NaN when either side is constant)."""
    a = np.asarray(x, dtype=np.float64)
    b = np.asarray(y, dtype=np.float64)
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan   # rounding in the mean must not turn a constant into a correlation
    a = a - a.mean()
    b = b - b.mean()
    den = math.sqrt(float(a @ a) * float(b @ b))
    if den == 0.0:
        return math.nan
    return float(np.clip((a @ b) / den, -1.0, 1.0))


def _corr_p(r: float, n: int) -> float:
    """Two-sided p-value of a correlation r of n pairs (Student t with n − 2 degrees of freedom)."""
    if n < 3 or not math.isfinite(r):
        return math.nan
    if abs(r) >= 1.0:
        return 0.0
    t = r * math.sqrt((n - 2) / (1.0 - r * r))
    return min(1.0, float(2.0 * stats.t.sf(abs(t), n - 2)))


def pearson_fisher_ci(x: Sequence[float], y: Sequence[float],
                      confidence: float = CONFIDENCE) -> tuple[Estimate, float]:
    """Pearson's r with Fisher's z interval (scipy's, needs n > 3) and its two-sided p-value."""
    a = _as_1d(x, "pearson x")
    b = _as_1d(y, "pearson y")
    if a.size != b.size:
        raise ValueError(f"pearson: x and y differ in length ({a.size} vs {b.size})")
    n = a.size
    r = pearson(a, b)
    if n <= 3 or not math.isfinite(r):
        return Estimate(r, math.nan, math.nan, n, "fisher-z"), _corr_p(r, n)
    res = stats.pearsonr(a, b)
    ci = res.confidence_interval(confidence)
    return Estimate(r, float(ci.low), float(ci.high), n, "fisher-z"), float(res.pvalue)


def spearman_bootstrap_ci(x: Sequence[float], y: Sequence[float], confidence: float = CONFIDENCE,
                          n_boot: int = 2000, seed: int = 0) -> tuple[Estimate, float]:
    """Spearman's rho with a seeded pair-bootstrap interval and its two-sided p-value."""
    a = _as_1d(x, "spearman x")
    b = _as_1d(y, "spearman y")
    if a.size != b.size:
        raise ValueError(f"spearman: x and y differ in length ({a.size} vs {b.size})")
    n = a.size
    rho = pearson(stats.rankdata(a), stats.rankdata(b))
    p = _corr_p(rho, n)
    if n < 4 or not math.isfinite(rho):
        return Estimate(rho, math.nan, math.nan, n, "bootstrap"), p
    # A pair bootstrap by hand rather than scipy.stats.bootstrap: resamples whose ranks are
    # constant have no correlation and are left out instead of turning the interval into NaN.
    rng = np.random.default_rng(seed)
    rhos = []
    for idx in rng.integers(0, n, size=(n_boot, n)):
        r = pearson(stats.rankdata(a[idx]), stats.rankdata(b[idx]))
        if math.isfinite(r):
            rhos.append(r)
    if not rhos:
        return Estimate(rho, math.nan, math.nan, n, "bootstrap"), p
    lo, hi = np.quantile(rhos, [(1 - confidence) / 2, (1 + confidence) / 2])
    return Estimate(rho, float(lo), float(hi), n, "bootstrap"), p


def rtmr(randomness: Sequence[float], mitigation: Sequence[float], confidence: float = CONFIDENCE,
         n_boot: int = 2000, seed: int = 0) -> dict:
    """Randomness-to-mitigation relation: Pearson (Fisher-z CI) and Spearman (bootstrap CI).

    One point per (task, noise, level): the masked audio's mean randomness p-value against
    the relative reduction it achieves. A positive correlation would mean that more random
    masked audio goes with more mitigation.
    """
    pe, pp = pearson_fisher_ci(randomness, mitigation, confidence)
    sp, spp = spearman_bootstrap_ci(randomness, mitigation, confidence, n_boot, seed)
    return {"n": pe.n,
            "pearson_r": _finite_or_none(pe.value), "pearson_ci95": pe.ci95,
            "pearson_p": _finite_or_none(pp),
            "spearman_rho": _finite_or_none(sp.value), "spearman_ci95": sp.ci95,
            "spearman_p": _finite_or_none(spp), "seed": seed, "n_boot": n_boot}


def intervals_overlap(a: Estimate, b: Estimate) -> bool:
    """True when two intervals overlap (or either is undefined): no clear difference."""
    if not all(math.isfinite(v) for v in (a.low, a.high, b.low, b.high)):
        return True
    return a.low <= b.high and b.low <= a.high


# --------------------------------------------------------------------------- clustered bootstrap
#
# The attack's folds split by speaker/actor/artist, so test outcomes of one group are not
# independent: the interval resamples whole groups (clusters) of the pooled per-example
# outcomes. Outcomes are 1 (right), 0 (wrong) or -1 (no label: left out); a 2-D outcome
# array [N, A] holds one column per attribute, and its accuracy is the mean over attributes
# of each attribute's pooled accuracy (as the attack's summary defines it).

CLUSTER_METHODS = ("expanded", "percentile", "bca")


def _outcomes(values, what: str) -> np.ndarray:
    a = np.asarray(values)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2 or a.shape[0] == 0:
        raise ValueError(f"{what}: expected outcomes [N] or [N, attributes] with N > 0, got shape {a.shape}")
    if not np.all(np.isin(a, (-1, 0, 1))):
        raise ValueError(f"{what}: outcomes must be 1 (right), 0 (wrong) or -1 (no label)")
    return a.astype(np.int64)


def _clusters(clusters, n: int, what: str) -> tuple[np.ndarray, int]:
    c = np.asarray(clusters).reshape(-1)
    if c.size != n:
        raise ValueError(f"{what}: {c.size} cluster ids for {n} outcomes")
    _, codes = np.unique(c, return_inverse=True)
    return codes.reshape(-1), int(codes.max()) + 1


def _cluster_totals(parts: Sequence[np.ndarray], codes: np.ndarray, g: int) -> np.ndarray:
    """Per cluster sums [G, V] of the columns of ``parts`` (each [N, k])."""
    cols = np.concatenate([p.astype(np.float64) for p in parts], axis=1)
    out = np.zeros((g, cols.shape[1]))
    np.add.at(out, codes, cols)
    return out


def cluster_resample_counts(n_clusters: int, n_boot: int, seed: int) -> np.ndarray:
    """How often each cluster is drawn in each of ``n_boot`` resamples [n_boot, G] (seeded).

    Resample b draws G cluster indices ``rng.integers(0, G, G)`` in turn from
    ``np.random.default_rng(seed)`` (so a slow loop with the same seed draws the same clusters).
    """
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n_clusters, size=(n_boot, n_clusters))
    rows = np.repeat(np.arange(n_boot), n_clusters)
    return np.bincount(rows * n_clusters + idx.reshape(-1),
                       minlength=n_boot * n_clusters).reshape(n_boot, n_clusters)


def _interval(stat: Callable[[np.ndarray], np.ndarray], totals_GxV: np.ndarray, n_boot: int, seed: int,
              confidence: float, method: str) -> tuple[float, float, float, int]:
    """(value, low, high, resamples used) of stat(totals) under the cluster bootstrap."""
    if method not in CLUSTER_METHODS:
        raise ValueError(f"cluster bootstrap method {method!r}: expected one of {CLUSTER_METHODS}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    g = totals_GxV.shape[0]
    value = float(stat(totals_GxV.sum(axis=0, keepdims=True))[0])
    if g < 2 or not math.isfinite(value):
        return value, math.nan, math.nan, 0
    boot = stat(cluster_resample_counts(g, n_boot, seed) @ totals_GxV)
    boot = boot[np.isfinite(boot)]      # a resample without a labelled example (or a 0 denominator)
    if boot.size < max(10, n_boot // 2):
        return value, math.nan, math.nan, int(boot.size)
    alpha = (1.0 - confidence) / 2.0
    q = np.array([alpha, 1.0 - alpha])
    if method == "expanded":
        # Hesterberg's expanded percentile interval: the plain percentile interval is too
        # narrow with few clusters (by about sqrt((G-1)/G) and normal-vs-t quantiles), so
        # the tail share is the normal tail at sqrt(G/(G-1))·t_{G-1}(1 - alpha).
        a2 = float(stats.norm.sf(math.sqrt(g / (g - 1.0)) * stats.t.ppf(1.0 - alpha, g - 1)))
        q = np.array([a2, 1.0 - a2])
    elif method == "bca":
        # Bias from the share of resamples below the estimate; acceleration from the
        # leave-one-cluster-out jackknife (Efron & Tibshirani 1993, 14.3).
        p_below = (np.sum(boot < value) + 0.5 * np.sum(boot == value)) / boot.size
        z0 = stats.norm.ppf(min(max(p_below, 1.0 / boot.size), 1.0 - 1.0 / boot.size))
        jack = stat(totals_GxV.sum(axis=0)[None, :] - totals_GxV)
        jack = jack[np.isfinite(jack)]
        d = jack.mean() - jack
        den = 6.0 * np.sum(d ** 2) ** 1.5
        acc = float(np.sum(d ** 3) / den) if den > 0 else 0.0
        z = stats.norm.ppf(q)
        q = stats.norm.cdf(z0 + (z0 + z) / (1.0 - acc * (z0 + z)))
    lo, hi = np.quantile(boot, q)
    return value, float(lo), float(hi), int(boot.size)


def _accuracy_stat(n_attr: int):
    def stat(t):   # t [B, 2A]: right counts, then labelled counts, per attribute
        with np.errstate(invalid="ignore", divide="ignore"):
            per = t[:, :n_attr] / t[:, n_attr:]
        # An attribute without a labelled example in a resample leaves the mean undefined.
        return per.mean(axis=1)
    return stat


def clustered_bootstrap_ci(correct, clusters, n_boot: int = 2000, seed: int = 0,
                           confidence: float = CONFIDENCE, method: str = "expanded") -> Estimate:
    """Pooled accuracy of per-example outcomes with a cluster-bootstrap interval (inside [0, 1]).

    ``correct``: [N] or [N, attributes] of 1/0 (-1: no label, left out); ``clusters``: [N]
    group ids (speaker/actor/artist). Whole clusters are resampled with replacement
    (`cluster_resample_counts`); the interval is read off the resampled accuracies:
    ``expanded`` (default) is Hesterberg's expanded percentile interval, whose tails are
    widened for the number of clusters G (simulated coverage of a nominal 95 % interval:
    ~93.5 % with 8 clusters, ~95 % with 32; the plain ``percentile`` interval gives ~88 %
    and ~94 %); ``bca`` is Efron's bias-corrected and accelerated interval. Every method
    takes quantiles of resampled accuracies, so the interval lies inside [0, 1]. ``n`` is the
    number of labelled outcomes; with fewer than 2 clusters the bounds are NaN.
    """
    a = _outcomes(correct, "clustered_bootstrap_ci")
    codes, g = _clusters(clusters, a.shape[0], "clustered_bootstrap_ci")
    totals = _cluster_totals([a == 1, a >= 0], codes, g)
    value, lo, hi, _ = _interval(_accuracy_stat(a.shape[1]), totals, n_boot, seed, confidence, method)
    return Estimate(value, lo, hi, int(np.sum(a >= 0)), f"cluster-bootstrap-{method}")


def clustered_bootstrap_diff(correct_a, correct_b, clusters, n_boot: int = 2000, seed: int = 0,
                             confidence: float = CONFIDENCE, method: str = "expanded") -> Estimate:
    """Paired difference of accuracies, a − b, on the same examples (e.g. white − GAN, adaptive − static).

    Both outcome arrays describe the same examples in the same order; an example counts where
    both have an outcome. Each resample draws the same clusters for a and b.
    """
    a = _outcomes(correct_a, "clustered_bootstrap_diff a")
    b = _outcomes(correct_b, "clustered_bootstrap_diff b")
    if a.shape != b.shape:
        raise ValueError(f"clustered_bootstrap_diff: paired outcomes differ in shape ({a.shape} vs {b.shape})")
    codes, g = _clusters(clusters, a.shape[0], "clustered_bootstrap_diff")
    both = (a >= 0) & (b >= 0)
    totals = _cluster_totals([(a == 1) & both, (b == 1) & both, both], codes, g)
    k = a.shape[1]
    acc = _accuracy_stat(k)

    def stat(t):
        return acc(np.concatenate([t[:, :k], t[:, 2 * k:]], axis=1)) - acc(t[:, k:])

    value, lo, hi, _ = _interval(stat, totals, n_boot, seed, confidence, method)
    return Estimate(value, lo, hi, int(np.sum(both)), f"cluster-bootstrap-{method}")


def clustered_bootstrap_ratio(numerator, denominator, clusters, n_boot: int = 2000, seed: int = 0,
                              confidence: float = CONFIDENCE, method: str = "expanded") -> Estimate:
    """Paired ratio of accuracies, acc(numerator) / acc(denominator), on the same examples.

    SPF is ``clustered_bootstrap_ratio(masked, clean, ...)``; for several attributes the ratio
    is of the attribute-mean accuracies. Resamples whose denominator accuracy is 0 are left out.
    """
    a = _outcomes(numerator, "clustered_bootstrap_ratio numerator")
    b = _outcomes(denominator, "clustered_bootstrap_ratio denominator")
    if a.shape != b.shape:
        raise ValueError(f"clustered_bootstrap_ratio: paired outcomes differ in shape ({a.shape} vs {b.shape})")
    codes, g = _clusters(clusters, a.shape[0], "clustered_bootstrap_ratio")
    both = (a >= 0) & (b >= 0)
    if not np.any((b == 1) & both):
        raise ValueError("clustered_bootstrap_ratio: the denominator's accuracy is 0; the ratio is undefined")
    totals = _cluster_totals([(a == 1) & both, (b == 1) & both, both], codes, g)
    k = a.shape[1]
    acc = _accuracy_stat(k)

    def stat(t):
        num, den = acc(np.concatenate([t[:, :k], t[:, 2 * k:]], axis=1)), acc(t[:, k:])
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, num / den, np.nan)

    value, lo, hi, _ = _interval(stat, totals, n_boot, seed, confidence, method)
    return Estimate(value, lo, hi, int(np.sum(both)), f"cluster-bootstrap-{method}")


def clustered_reduction_ci(clean, masked, clusters, n_boot: int = 2000, seed: int = 0,
                           confidence: float = CONFIDENCE, method: str = "expanded") -> Estimate:
    """Relative reduction (BIA − MIA)/BIA = 1 − MIA/BIA on paired outcomes, cluster-bootstrapped."""
    r = clustered_bootstrap_ratio(masked, clean, clusters, n_boot, seed, confidence, method)
    return Estimate(1.0 - r.value, 1.0 - r.high, 1.0 - r.low, r.n, r.method)


def clustered_spf_ci(masked, clean, clusters, n_boot: int = 2000, seed: int = 0,
                     confidence: float = CONFIDENCE, method: str = "expanded") -> Estimate:
    """SPF = command accuracy masked / clean on paired outcomes, cluster-bootstrapped."""
    return clustered_bootstrap_ratio(masked, clean, clusters, n_boot, seed, confidence, method)


def clustered_mean_ci(values, clusters, n_boot: int = 2000, seed: int = 0, confidence: float = CONFIDENCE,
                      method: str = "expanded") -> Estimate:
    """Mean of per-example scores (STOI, PESQ; NaN = not scored, left out) with a cluster-bootstrap interval."""
    v = np.asarray(values, np.float64).reshape(-1)
    ok = np.isfinite(v)
    if not ok.any():
        return Estimate(math.nan, math.nan, math.nan, 0, f"cluster-bootstrap-{method}")
    codes, g = _clusters(np.asarray(clusters)[ok], int(ok.sum()), "clustered_mean_ci")
    totals = _cluster_totals([v[ok][:, None], np.ones((int(ok.sum()), 1))], codes, g)

    def stat(t):
        with np.errstate(invalid="ignore", divide="ignore"):
            return t[:, 0] / t[:, 1]

    value, lo, hi, _ = _interval(stat, totals, n_boot, seed, confidence, method)
    return Estimate(value, lo, hi, int(ok.sum()), f"cluster-bootstrap-{method}")
