"""The probe attacker against outside references: librosa for its features, scikit-learn for its fit."""
import jax
import numpy as np
import pytest
import scipy.special

import librosa  # noqa: E402
import sklearn.linear_model as sklearn_lm  # noqa: E402

from maskgan_jax import attack_folds, probe  # noqa: E402
from maskgan_jax.data.batches import ArrayData  # noqa: E402

N, D = 100, 24
TOL = 1e-10


def _problem(seed=0, n=N, d=D, k=4, sep=0.8):
    """Gaussian classes with badly scaled, offset features (standardisation matters)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    x = rng.normal(size=(n, d)) + sep * np.eye(k)[y] @ rng.normal(size=(k, d))
    return x * rng.uniform(0.1, 10, d) + rng.normal(0, 5, d), y


def _sklearn(xs, y, c):
    # lbfgs is scikit-learn's multinomial solver for 3+ classes (binomial for 2).
    return sklearn_lm.LogisticRegression(C=c, solver="lbfgs", tol=1e-10, max_iter=10000).fit(xs, y)


def _std(params, x):
    return (x - params["mean"]) / params["scale"]


def test_features_match_librosa():
    rng = np.random.default_rng(1)
    t = np.arange(8192) / 16000
    wave = np.stack([0.3 * np.sin(2 * np.pi * 440 * t) * (t < 0.25),          # tone, then digital silence
                     0.05 * rng.normal(size=t.size)]).astype(np.float32)
    got = np.asarray(probe.wave_features(wave, probe.MelSpec(n_mels=32)))
    for b in range(2):
        s = librosa.feature.melspectrogram(y=wave[b], sr=16000, n_fft=1024, hop_length=256, n_mels=32)
        db = librosa.power_to_db(s, ref=1.0, amin=1e-10, top_db=80.0)
        d = np.diff(db, axis=1)
        want = np.concatenate([db.mean(1), db.std(1), d.mean(1), d.std(1), [db.mean()]])
        np.testing.assert_allclose(got[b], want, rtol=1e-3, atol=2e-3,
                                   err_msg="probe features no longer follow librosa's floored log-mel statistics")
    assert got.shape == (2, 4 * 32 + 1) and len(probe.feature_names(32)) == got.shape[1]


@pytest.fixture
def x64():
    # The reference checks run in float64, where the fit converges to scikit-learn's minimiser
    # to many digits; test_float32_fit_is_close checks the default float32 path.
    with jax.enable_x64(True):
        yield


@pytest.mark.parametrize("l2", [1e-3, 1e-1])
def test_multinomial_head_matches_sklearn(l2, x64):
    x, y = _problem()
    params = probe.fit(x, {"a": y}, {"a": 4}, l2, tol=TOL)
    h = params["heads"]["a"]
    assert h["grad_norm"] < TOL and h["w"].dtype == np.float64
    sk = _sklearn(_std(params, x), y, 1.0 / (l2 * N))
    np.testing.assert_allclose(params["mean"], x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(params["scale"], x.std(0), rtol=1e-12)
    np.testing.assert_allclose(h["w"].T, sk.coef_, atol=1e-5 * np.abs(sk.coef_).max())
    # The intercepts are defined up to a common shift in the multinomial model.
    np.testing.assert_allclose(h["b"] - h["b"].mean(), sk.intercept_ - sk.intercept_.mean(), atol=1e-5)
    p = probe.predict_proba(params, x)["a"]
    np.testing.assert_allclose(p, sk.predict_proba(_std(params, x)), atol=1e-6)
    x2 = _problem(n=N + 60)[0][N:]     # held-out draws of the same classes
    np.testing.assert_array_equal(probe.predict_logits(params, x2)["a"].argmax(1), sk.predict(_std(params, x2)))


def test_float32_fit_is_close():
    # float32 gradients stop the fit at |grad| ~ 1e-6: parameters agree to ~1e-3 of their size.
    x, y = _problem()
    x = x.astype(np.float32)
    params = probe.fit(x, {"a": y}, {"a": 4}, 1e-2)
    assert params["heads"]["a"]["w"].dtype == np.float32
    sk = _sklearn(_std(params, x).astype(np.float64), y, 1.0 / (1e-2 * N))
    np.testing.assert_allclose(params["heads"]["a"]["w"].T, sk.coef_, atol=2e-3 * np.abs(sk.coef_).max())
    np.testing.assert_allclose(probe.predict_proba(params, x)["a"], sk.predict_proba(_std(params, x)), atol=1e-3)
    assert (probe.predict_logits(params, x)["a"].argmax(1) == sk.predict(_std(params, x))).mean() >= 0.99


def test_binary_head_and_missing_labels_match_sklearn(x64):
    x, y4 = _problem(seed=2)
    gender = (y4 > 1).astype(np.int32)
    gender[::7] = -1                         # missing labels: left out of this head only
    l2 = 1e-2
    params = probe.fit(x, {"gender": gender, "group": y4}, {"gender": 2, "group": 4}, l2, tol=TOL)
    ok = gender >= 0
    n = int(ok.sum())
    assert params["heads"]["gender"]["n"] == n and params["heads"]["group"]["n"] == N
    # Two classes: scikit-learn's binomial model, whose C for the same minimiser is 2/(l2 n).
    sk = _sklearn(_std(params, x)[ok], gender[ok], 2.0 / (l2 * n))
    w = params["heads"]["gender"]["w"]
    np.testing.assert_allclose(w[:, 1] - w[:, 0], sk.coef_[0], atol=1e-5 * np.abs(sk.coef_).max())
    np.testing.assert_allclose(probe.predict_proba(params, x)["gender"][:, 1],
                               sk.predict_proba(_std(params, x))[:, 1], atol=1e-6)
    ev = probe.evaluate(params, x, {"gender": gender, "group": y4})
    assert ev["gender"]["n"] == n
    assert ev["gender"]["accuracy"] == pytest.approx(sk.score(_std(params, x)[ok], gender[ok]))
    assert np.all(ev["gender"]["correct"][~ok] == -1)


def test_class_absent_from_training_gets_no_probability(x64):
    x, y = _problem(seed=3, k=4)
    keep = y != 2
    params = probe.fit(x[keep], {"a": y[keep]}, {"a": 4}, 1e-2, tol=TOL)
    p = probe.predict_proba(params, x)["a"]
    assert p.shape == (N, 4) and np.all(p[:, 2] < 1e-30)
    sk = _sklearn(_std(params, x[keep]), y[keep], 1.0 / (1e-2 * keep.sum()))
    np.testing.assert_allclose(p[:, [0, 1, 3]], sk.predict_proba(_std(params, x)), atol=1e-6)


def test_fit_select_picks_what_sklearn_picks(x64):
    x, y = _problem(seed=4, n=N + 60, sep=0.3)
    x, y, xv, yv = x[:N], y[:N], x[N:], y[N:]
    grid = (1e-2, 3e-2, 1e-1, 3e-1, 1.0)
    params, info = probe.fit_select((x, {"a": y}), (xv, {"a": yv}), {"a": 4}, grid, tol=TOL)
    mean, sd = x.mean(0), x.std(0)
    scores = []
    for l2 in grid:
        logp = scipy.special.log_softmax(_sklearn((x - mean) / sd, y, 1.0 / (l2 * N))
                                         .decision_function((xv - mean) / sd), axis=1)
        scores.append(((logp.argmax(1) == yv).mean(), -logp[np.arange(yv.size), yv].mean()))
    want = grid[min(range(len(grid)), key=lambda i: (-scores[i][0], scores[i][1]))]
    assert info["a"]["l2"] == want and params["heads"]["a"]["l2"] == want
    for row, (acc, loss) in zip(info["a"]["grid"], scores):
        assert row["val_accuracy"] == pytest.approx(acc)
        assert row["val_log_loss"] == pytest.approx(loss, rel=1e-5)


def test_cross_validate_uses_the_attack_folds():
    # Two "speaker" timbres per class: 2 classes x 3 groups each, tone pitch carries the class.
    rng = np.random.default_rng(0)
    t = np.arange(4096) / 16000
    audio, labels, groups = [], [], []
    for g in range(6):
        cls = g % 2
        for _ in range(6):
            f = (300 if cls == 0 else 1200) * rng.uniform(0.9, 1.1)
            w = rng.uniform(0.1, 0.5) * np.sin(2 * np.pi * f * t) + 0.01 * rng.normal(size=t.size)
            audio.append(np.round(w * 32767).astype(np.int16))
            labels.append(cls)
            groups.append(f"spk{g}")
    data = ArrayData(np.stack(audio), {"word": np.array(labels, np.int32)}, groups, [""] * len(groups),
                            {"word": ["low", "high"]})
    recs = probe.cross_validate(data, folds=2, seed=3, mel=probe.MelSpec(n_mels=32), log=lambda s: None)
    want = attack_folds.fold_indices(groups, [""] * len(groups), 2, 3, 0.15)
    assert [r["test_index"] for r in recs] == [w["test"].tolist() for w in want]
    for r in recs:
        assert r["accuracy"] == 1.0 and set(r["correct"]["word"]) == {1}
        assert r["test_groups"] == [groups[i] for i in r["test_index"]]
