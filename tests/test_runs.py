"""kernels.runs against statsmodels' runstest_1samp (and numpy's median/mean)."""
import math

import numpy as np
import pytest
from statsmodels.sandbox.stats.runs import runstest_1samp

from kernels import (_median, _radix, _runs_median, _stream, wald_wolfowitz, wald_wolfowitz_batch,
                     wald_wolfowitz_stream)
from kernels.runs import FUSED_MIN, _fused_median_runs, ww_statistic

RNG = np.random.default_rng(20261127)


def _sequences(n, dtype):
    scale = 3000.0 if dtype == np.int16 else 1.0
    yield "normal", RNG.standard_normal(n) * scale
    yield "ties", RNG.integers(-2, 3, n)
    yield "median_ties", np.where(RNG.random(n) < 0.6, 7, RNG.integers(0, 15, n))
    yield "sorted", np.sort(RNG.standard_normal(n) * scale)
    yield "alternating", np.tile([1.0, -1.0], n)[:n]
    yield "constant", np.full(n, 3.0)
    yield "walk", np.cumsum(RNG.standard_normal(n)) * scale


def _assert_matches(x, **kw):
    got = wald_wolfowitz(x, **kw)
    with np.errstate(all="ignore"):
        z, p = runstest_1samp(x, **kw)
    assert np.isfinite(z), "statsmodels gave a non-finite z: not a comparable case"
    np.testing.assert_allclose(got.z, z, rtol=1e-9, atol=1e-12, err_msg=f"z, n={x.size} {x.dtype} {kw}")
    np.testing.assert_allclose(got.p, p, rtol=1e-9, atol=1e-300, err_msg=f"p, n={x.size} {x.dtype} {kw}")
    return got


@pytest.mark.parametrize("dtype", [np.int16, np.float32, np.float64])
def test_matches_statsmodels_small_and_structured(dtype):
    lengths = list(range(3, 61)) + [99, 100, 1001, 4096]
    for n in lengths:
        for name, x in _sequences(n, dtype):
            x = x.astype(dtype)
            for cutoff in ("median", "mean", 0.5):
                for correction in (True, False):
                    _assert_matches(x, cutoff=cutoff, correction=correction)


@pytest.mark.parametrize("dtype", [np.int16, np.float32, np.float64])
def test_length_two(dtype):
    same = np.array([4, 4], dtype)
    _assert_matches(same)  # one run: statsmodels' binomial p = 1
    # One value on each side: zero variance, statsmodels divides by zero; defined as no evidence.
    r = wald_wolfowitz(np.array([1, 2], dtype))
    assert (r.z, r.p, r.runs, r.n1, r.n2) == (0.0, 1.0, 2, 1, 1)


def test_large_float32_and_int16_match_statsmodels():
    x32 = RNG.standard_normal(10 ** 7, dtype=np.float32)
    r = _assert_matches(x32, cutoff="median")
    assert r.n1 + r.n2 == x32.size
    x16 = np.cumsum(RNG.integers(-40, 41, 2 * 10 ** 6)).astype(np.int16)  # audio-like, many ties
    _assert_matches(x16, cutoff="median")
    _assert_matches(x16, cutoff="mean")


def test_single_run_gets_binomial_p():
    for n in (3, 10, 49, 50, 1023, 1024, 5000):
        r = _assert_matches(np.full(n, -2.5))
        assert r.runs == 1 and r.p == 2.0 ** (2 - min(n, 1024))


def test_correction_quirk_and_textbook_option():
    # n1 = 6, n2 = 4, R = 6, E[R] = 5.8: R - E[R] in [0, 0.5), where statsmodels adds 0.5.
    x = np.array([1, 1, 1, 0, 0, 1, 1, 0, 1, 0], np.float64)
    n1, n2 = 6, 4
    n = n1 + n2
    r = _assert_matches(x, cutoff=0.5)
    mean = 2.0 * n1 * n2 / n + 1
    sd = math.sqrt(2.0 * n1 * n2 * (2.0 * n1 * n2 - n) / n ** 2 / (n - 1))
    d = r.runs - mean
    assert 0 <= d < 0.5, "the test sequence must hit the quirk"
    tb = wald_wolfowitz(x, cutoff=0.5, correction="textbook")
    want = 0.0 if abs(d) <= 0.5 else (d - math.copysign(0.5, d)) / sd
    assert tb.z == pytest.approx(want, abs=1e-12)
    assert tb.p == pytest.approx(math.erfc(abs(want) / math.sqrt(2)), rel=1e-12)


@pytest.mark.parametrize("dtype", [np.int16, np.float64])
def test_ties_drop_equals_statsmodels_without_the_ties(dtype):
    x = RNG.integers(0, 9, 301).astype(dtype)
    med = float(np.median(x.astype(np.float64)))
    want = runstest_1samp(x[x != med].astype(np.float64), cutoff=med)
    got = wald_wolfowitz(x, cutoff="median", ties="drop")
    assert got.n1 + got.n2 == int((x != med).sum())
    np.testing.assert_allclose([got.z, got.p], want, rtol=1e-9)


def test_all_ties_dropped_is_defined():
    r = wald_wolfowitz(np.full(10, 1.0), ties="drop")
    assert (r.z, r.p, r.runs, r.n1, r.n2) == (0.0, 1.0, 0, 0, 0)


def test_exact_median_matches_numpy():
    cases = [RNG.standard_normal(200_001).astype(np.float32),
             np.sort(RNG.standard_normal(100_000)),                       # sample band misses
             np.cumsum(RNG.standard_normal(150_000)),                      # correlated neighbours
             np.where(RNG.random(120_000) < 0.9, 0.25, RNG.standard_normal(120_000)),
             np.r_[np.full(70_000, 1.0), np.full(70_000, 2.0)]]
    for x in cases:
        m, ok = _median.median_float(x)
        assert ok and m == np.median(x.astype(np.float64))
    for n in (100_000, 2 ** 20 + 1):  # histogram only; sampled band or histogram
        for scale in (1, 30, 30000):
            x = np.clip(RNG.standard_normal(n) * scale, -32768, 32767).astype(np.int16)
            assert _median.median_i16(x) == np.median(x.astype(np.float64)), (n, scale)


def test_counts_do_not_overflow_for_1e10_samples():
    n1 = n2 = 5 * 10 ** 9
    n = n1 + n2
    runs = n // 2 + 1 + 70_000
    z, p = ww_statistic(np.int64(n1), np.int64(n2), np.int64(runs), 1)
    npn = n1 * n2  # exact Python integers as the reference
    mean = 2 * npn / n + 1
    var = 2 * npn * (2 * npn - n) / n ** 2 / (n - 1)
    assert z == pytest.approx((runs - mean) / math.sqrt(var), rel=1e-12)
    assert 0.0 < p < 1.0


@pytest.mark.parametrize("bad, msg", [
    (np.array([], np.float64), "empty"),
    (np.array([1.0, np.nan, 2.0]), "NaN"),
    (np.arange(5, dtype=np.int64), "dtype"),
    (np.zeros((2, 3)), "1-D"),
])
def test_bad_input_raises(bad, msg):
    with pytest.raises(ValueError, match=msg):
        wald_wolfowitz(bad)


def test_bad_options_raise():
    x = np.arange(10.0)
    for kw in ({"cutoff": "mode"}, {"cutoff": float("nan")}, {"correction": "yates"}, {"ties": "x"}):
        with pytest.raises(ValueError):
            wald_wolfowitz(x, **kw)


def test_single_value_is_defined():
    r = wald_wolfowitz(np.array([5], np.int16))
    assert (r.z, r.p, r.runs) == (0.0, 1.0, 1)


@pytest.mark.parametrize("dtype", [np.int16, np.float32, np.float64])
def test_batch_matches_statsmodels_per_clip(dtype):
    x = (RNG.standard_normal((6, 70_000)) * (1000 if dtype == np.int16 else 1)).astype(dtype)
    x[2] = np.sort(x[2])
    x[3] = 0
    b = wald_wolfowitz_batch(x, num_threads=2)
    for i in range(x.shape[0]):
        z, p = runstest_1samp(x[i], cutoff="median")
        np.testing.assert_allclose([b.z[i], b.p[i]], [z, p], rtol=1e-9, atol=1e-300)
    with pytest.raises(ValueError, match=r"clip\(s\) \[1\]"):
        y = x.astype(np.float64)
        y[1, 5] = np.nan
        wald_wolfowitz_batch(y)


@pytest.mark.parametrize("dtype", [np.int16, np.float32, np.float64])
def test_stream_equals_in_memory(tmp_path, dtype):
    x = (np.cumsum(RNG.standard_normal(300_007)) * (50 if dtype == np.int16 else 1)).astype(dtype)
    path = tmp_path / "x.npy"
    np.save(path, x)
    for kw in ({"cutoff": "median"}, {"cutoff": "mean"}, {"cutoff": "median", "ties": "drop"},
               {"cutoff": 3.0, "correction": False}):
        want = wald_wolfowitz(x, **kw)
        assert wald_wolfowitz_stream(path, chunk_size=10_000, **kw) == want, kw
    raw = tmp_path / "x.raw"
    x.tofile(raw)
    assert wald_wolfowitz_stream(raw, dtype=dtype, chunk_size=4096) == wald_wolfowitz(x)
    with pytest.raises(ValueError, match="dtype="):
        wald_wolfowitz_stream(raw)


def test_stream_median_radix_passes_match_numpy():
    cases = [RNG.standard_normal(20_001), RNG.standard_normal(20_000).astype(np.float32),
             np.r_[np.full(5000, 0.1), np.full(5000, 0.3)],          # middle ranks in two buckets
             np.r_[np.full(5001, -2.0), RNG.standard_normal(4000)],  # one key for both ranks
             np.r_[-0.0, 0.0, np.zeros(10), -np.zeros(9), np.ones(3)]]
    for x in cases:
        for gather_max in (0, 1 << 22):  # 0 forces every radix pass
            got = _stream.stream_median(x, chunk=999, gather_max=gather_max)
            assert got == np.median(x.astype(np.float64)), (x[:3], gather_max)


def _fused_cases(n):
    yield "normal32", RNG.standard_normal(n).astype(np.float32)
    yield "normal16", (RNG.standard_normal(n) * 3000).astype(np.int16)
    yield "walk16", np.cumsum(RNG.integers(-40, 41, n)).astype(np.int16)   # audio-like, ties
    yield "walk64", np.cumsum(RNG.standard_normal(n))
    yield "sorted32", np.sort(RNG.standard_normal(n)).astype(np.float32)
    yield "alternating16", np.tile(np.array([-3, 5], np.int16), n)[:n]
    yield "median_ties16", np.where(RNG.random(n) < 0.6, 7, RNG.integers(0, 15, n)).astype(np.int16)


@pytest.mark.parametrize("n", [FUSED_MIN, FUSED_MIN + 1, 600 * 2040])
def test_one_pass_median_runs_match_statsmodels(n):
    # From FUSED_MIN samples on, the median and the runs come from one pass with a
    # corrected run count; even and odd n take different middle ranks, and 600 * 2040
    # fills the pass's chunks exactly (no tail).
    used = set()
    for name, x in _fused_cases(n):
        status = _fused_median_runs(x)[0]
        used.add(status)
        got = _assert_matches(x, cutoff="median")
        assert got.cutoff == np.median(x.astype(np.float64)), name
        assert got.n1 == int((x >= got.cutoff).sum()), name
        assert wald_wolfowitz_stream(x, chunk_size=300_000) == got, name
    assert used == {0, 1}, "both the one-pass path and its fallback must be exercised"


def test_one_pass_falls_back_when_the_sample_misses():
    # Shift the values the samples see, so that both sample bands miss the middle ranks.
    n = FUSED_MIN + 1
    x = RNG.standard_normal(n)
    chunks, chunk = _runs_median.SAMPLE_CHUNKS, _runs_median.SAMPLE_CHUNK
    step = (n - chunk) // (chunks - 1)
    for c in range(chunks):
        x[c * step:c * step + chunk] += 50.0
    blocks = _runs_median.STAGE2_BLOCKS
    length = max(64, min(_runs_median.STAGE2_BLOCK, n // (8 * blocks)))
    step2 = (n - length) // (blocks - 1)
    for b in range(blocks):
        x[b * step2:b * step2 + length] += 50.0
    assert _fused_median_runs(x)[0] == 0
    _assert_matches(x, cutoff="median")
    y = x.copy()
    y[n // 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        wald_wolfowitz(y)


def test_radix_select_and_partition_match_numpy():
    cases = [RNG.standard_normal(5001), RNG.integers(-5, 5, 4000).astype(np.int16),
             RNG.standard_normal(3000).astype(np.float32),
             np.r_[-0.0, 0.0, np.zeros(10), -np.zeros(9), -np.ones(3), np.inf, -np.inf]]
    for x in cases:
        want = np.sort(x.astype(np.float64))
        for k in (0, x.size // 2, x.size - 1):
            v = _radix.radix_select(x, k)
            assert v == want[k], (x.dtype, k)
            y = x.copy()
            _radix.partition_around(y, v)
            left = int((y < v).sum())
            assert (y[:left] < v).all() and (y[left:] >= v).all()
