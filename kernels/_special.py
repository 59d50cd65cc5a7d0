"""Special functions for the tests, in numba: normal tail and quantile, binomial tails.

Only math and numpy are used (scipy is a test-time reference, not a dependency).
"""
from __future__ import annotations

import math

import numba as nb
import numpy as np

_SQRT2 = math.sqrt(2.0)
_SQRT2PI = math.sqrt(2.0 * math.pi)
_LN2PI = math.log(2.0 * math.pi)
_HALF_LN2PI = 0.5 * math.log(2.0 * math.pi)


@nb.njit(cache=True, nogil=True)
def norm_sf(x):
    """Upper tail P(Z > x) of the standard normal."""
    return 0.5 * math.erfc(x / _SQRT2)


@nb.njit(cache=True, nogil=True)
def ndtri(p):
    """Standard normal quantile (Acklam's start refined by two Halley steps on erfc)."""
    if p <= 0.0:
        return -np.inf
    if p >= 1.0:
        return np.inf
    if p > 0.5:
        return -ndtri(1.0 - p)
    # Lower half only: erfc is accurate there, so the refinement reaches full precision
    # even for subnormal p (a single run of 1024+ samples gives p = 2**-1023).
    if p < 0.02425:
        q = math.sqrt(-2.0 * math.log(p))
        x = ((((((-7.784894002430293e-03 * q - 3.223964580411365e-01) * q - 2.400758277161838e+00) * q
                - 2.549732539343734e+00) * q + 4.374664141464968e+00) * q + 2.938163982698783e+00)
             / ((((7.784695709041462e-03 * q + 3.224671290700398e-01) * q + 2.445134137142996e+00) * q
                 + 3.754408661907416e+00) * q + 1.0))
    else:
        q = p - 0.5
        r = q * q
        x = (((((-3.969683028665376e+01 * r + 2.209460984245205e+02) * r - 2.759285104469687e+02) * r
               + 1.383577518672690e+02) * r - 3.066479806614716e+01) * r + 2.506628277459239e+00) * q / (
            ((((-5.447609879822406e+01 * r + 1.615858368580409e+02) * r - 1.556989798598866e+02) * r
              + 6.680131188771972e+01) * r - 1.328068155288572e+01) * r + 1.0)
    for _ in range(2):
        e = 0.5 * math.erfc(-x / _SQRT2) - p
        # e / pdf(x), written as a product so it does not overflow for p near 1e-308.
        u = e * _SQRT2PI * math.exp(0.5 * x * x)
        x = x - u / (1.0 + 0.5 * x * u)
    return x


@nb.njit(cache=True, nogil=True)
def _stirlerr(n):
    # log(n!) - log(sqrt(2 pi n) (n/e)^n), Loader (2000).
    if n <= 15.0:
        return math.lgamma(n + 1.0) - (n + 0.5) * math.log(n) + n - _HALF_LN2PI
    nn = n * n
    s0, s1, s2, s3, s4 = 1.0 / 12, 1.0 / 360, 1.0 / 1260, 1.0 / 1680, 1.0 / 1188
    if n > 500.0:
        return (s0 - s1 / nn) / n
    if n > 80.0:
        return (s0 - (s1 - s2 / nn) / nn) / n
    if n > 35.0:
        return (s0 - (s1 - (s2 - s3 / nn) / nn) / nn) / n
    return (s0 - (s1 - (s2 - (s3 - s4 / nn) / nn) / nn) / nn) / n


@nb.njit(cache=True, nogil=True)
def _bd0(x, np_):
    # x log(x/np) + np - x, computed without cancellation near x = np (Loader 2000).
    if abs(x - np_) < 0.1 * (x + np_):
        v = (x - np_) / (x + np_)
        s = (x - np_) * v
        ej = 2.0 * x * v
        v = v * v
        j = 1
        while j < 1000:
            ej *= v
            s1 = s + ej / (2 * j + 1)
            if s1 == s:
                return s1
            s = s1
            j += 1
        return s
    return x * math.log(x / np_) + np_ - x


@nb.njit(cache=True, nogil=True)
def log_binom_pmf_half(k, m):
    """log P(X = k) for X ~ Binomial(m, 1/2), accurate to a few ulps (Loader's saddle point)."""
    if k < 0 or k > m:
        return -np.inf
    fm = float(m)
    if k == 0 or k == m:
        return -fm * math.log(2.0)
    fk = float(k)
    lc = (_stirlerr(fm) - _stirlerr(fk) - _stirlerr(fm - fk)
          - _bd0(fk, 0.5 * fm) - _bd0(fm - fk, 0.5 * fm))
    lf = _LN2PI + math.log(fk) + math.log1p(-fk / fm)
    return lc - 0.5 * lf


@nb.njit(cache=True, nogil=True)
def binom_cdf_half(k, m):
    """P(X <= k) for X ~ Binomial(m, 1/2), by exact summation of the pmf (no normal approximation)."""
    if k < 0:
        return 0.0
    if k >= m:
        return 1.0
    if 2 * k >= m:
        # The larger side: one minus the (small) opposite tail, by symmetry.
        return 1.0 - binom_cdf_half(m - k - 1, m)
    # Sum the small tail from k downwards: pmf(i-1)/pmf(i) = i/(m-i+1) < 1 here, so the
    # terms fall off at least geometrically and the loop stops after O(sqrt(m)) terms.
    s = 1.0
    term = 1.0
    i = k
    while i > 0:
        term *= i / (m - i + 1.0)
        s += term
        if term < 1e-17 * s:
            break
        i -= 1
    return math.exp(log_binom_pmf_half(k, m) + math.log(s))


@nb.njit(cache=True, nogil=True)
def binom_test_half(k, m, alternative):
    """Binomial test p-value of k successes in m trials at p = 1/2, as scipy.stats.binomtest.

    alternative: 0 two-sided, 1 greater (P(X >= k)), 2 less (P(X <= k)). m = 0 gives 1.0.
    """
    if m <= 0:
        return 1.0
    if alternative == 1:
        return binom_cdf_half(m - k, m)
    if alternative == 2:
        return binom_cdf_half(k, m)
    kk = min(k, m - k)
    if 2 * kk == m:
        return 1.0
    # As scipy: the other tail holds every outcome whose pmf is <= pmf(k) * (1 + 1e-7),
    # which near the mode of a large m reaches a few outcomes closer to the centre.
    rerr = 1.0 + 1e-7
    j = kk
    r = 1.0
    half = m // 2
    while j < half:
        r2 = r * (m - j) / (j + 1.0)
        if r2 > rerr:
            break
        r = r2
        j += 1
    return min(1.0, binom_cdf_half(kk, m) + binom_cdf_half(j, m))
