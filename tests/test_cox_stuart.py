"""kernels.cox_stuart against scipy.stats.binomtest."""
import numpy as np
import pytest
from scipy.stats import binomtest

from kernels import cox_stuart, cox_stuart_batch, cox_stuart_stream
from kernels._special import binom_test_half

RNG = np.random.default_rng(7)
ALTS = {"two-sided": "two-sided", "increasing": "greater", "decreasing": "less"}


def _reference(x, alternative):
    n = x.size
    c = -(-n // 2)
    a, b = x[: n - c].astype(np.float64), x[c:].astype(np.float64)
    plus, pairs = int((b > a).sum()), int((b != a).sum())
    if pairs == 0:
        return plus, pairs, None
    return plus, pairs, binomtest(plus, pairs, 0.5, alternative=ALTS[alternative]).pvalue


@pytest.mark.parametrize("dtype", [np.int16, np.float32, np.float64])
def test_matches_scipy(dtype):
    for n in list(range(2, 70)) + [101, 1000, 100_001]:
        for x in (RNG.integers(-3, 4, n), RNG.standard_normal(n) * 100, np.arange(n) % 5,
                  np.arange(n) + RNG.integers(-20, 21, n)):
            x = x.astype(dtype)
            for alt in ALTS:
                plus, pairs, p = _reference(x, alt)
                if pairs == 0:
                    continue
                r = cox_stuart(x, alt)
                assert (r.statistic, r.n_pairs) == (plus, pairs)
                assert r.p == pytest.approx(p, rel=1e-6, abs=0), (n, alt)


def test_binomial_tail_large_pair_counts():
    for m in (10 ** 5, 10 ** 7, 10 ** 9):
        sd = np.sqrt(m) / 2
        for k in (m // 2, m // 2 + 1, int(m / 2 - 2 * sd), int(m / 2 + 6 * sd), int(m / 2 - 30 * sd)):
            for alt, name in ((0, "two-sided"), (1, "greater"), (2, "less")):
                want = binomtest(k, m, 0.5, alternative=name).pvalue
                assert binom_test_half(k, m, alt) == pytest.approx(want, rel=1e-6, abs=0), (k, m, name)


def test_defined_results():
    assert cox_stuart(np.array([3.0])) == (0, 0, 1.0)
    assert cox_stuart(np.full(10, 2, np.int16)) == (0, 0, 1.0)
    for bad, msg in ((np.array([], np.int16), "empty"), (np.array([1.0, np.nan, 0.0]), "NaN"),
                     (np.arange(4), "dtype"), (np.zeros((2, 2)), "1-D")):
        with pytest.raises(ValueError, match=msg):
            cox_stuart(bad)
    with pytest.raises(ValueError, match="alternative"):
        cox_stuart(np.arange(4.0), "up")


def test_batch_and_stream_equal_single(tmp_path):
    x = (RNG.standard_normal((5, 4001)) * 1000).astype(np.int16)
    x[1] += np.arange(4001, dtype=np.int16) // 8
    b = cox_stuart_batch(x, "increasing", num_threads=2)
    for i in range(5):
        assert (b.statistic[i], b.n_pairs[i], b.p[i]) == cox_stuart(x[i], "increasing")
    y = x.ravel()
    np.save(tmp_path / "y.npy", y)
    assert cox_stuart_stream(tmp_path / "y.npy", chunk_size=777) == cox_stuart(y)
