"""STOI / extended STOI / wideband PESQ: the packages' own scores, closed-form limits, failures."""
import numpy as np
import pesq
import pytest
from pystoi import stoi as pystoi_stoi

from maskgan_jax import intelligibility as it
from maskgan_jax.data import synthetic_speech as speech_synth

PESQ_WB_MAX = 4.643888473510742  # P.862.2's MOS-LQO mapping at zero disturbance


@pytest.fixture(scope="module")
def speech():
    """A few seconds of the project's synthetic speech and the same speech under babble at 0 dB."""
    rng = np.random.default_rng(0)
    talkers = [speech_synth.make_speaker(rng, g, "twenties", "") for g in ("female", "male", "male")]
    phones = speech_synth.parse_phones("D @ k w I k b r aU n f a k s d V m p s oU v @ D @ l eI z i d a g")
    waves = speech_synth.synthesize([speech_synth.Utterance(phones=phones, speaker=t) for t in talkers], rng)
    ref = np.asarray(waves[0], np.float32)
    babble = sum(np.resize(np.asarray(w, np.float32), ref.size) for w in waves[1:])
    babble *= np.sqrt(np.mean(ref ** 2) / np.mean(babble ** 2))
    return ref, (ref + babble).astype(np.float32)


def test_pesq_wb_equals_the_package_and_its_maximum(speech):
    ref, deg = speech
    assert it.pesq_wb(ref, deg) == pytest.approx(pesq.pesq(16000, ref, deg, "wb"), abs=1e-6)
    assert 1.0 < it.pesq_wb(ref, deg) < 3.0
    assert it.pesq_wb(ref, ref) == pytest.approx(PESQ_WB_MAX, abs=1e-3)
    assert it.stoi(ref, deg) == pytest.approx(pystoi_stoi(ref, deg, 16000), abs=1e-6)


def test_stoi_of_clean_against_clean_is_one_and_falls_as_white_noise_rises(speech):
    ref, _ = speech
    rng = np.random.default_rng(0)
    white = rng.standard_normal(ref.size).astype(np.float32)
    rms = np.sqrt(np.mean(ref.astype(np.float64) ** 2))
    snrs = [30, 15, 5, 0, -5, -15]
    noisy = np.stack([ref + white * (rms * 10 ** (-s / 20)) for s in snrs]).astype(np.float32)
    clean = np.broadcast_to(ref, noisy.shape)
    scores = it.intelligibility(np.concatenate([ref[None], clean]), np.concatenate([ref[None], noisy]),
                                workers=1)
    assert scores.failures == []
    for m in ("stoi", "estoi"):
        v = getattr(scores, m)
        assert v[0] == pytest.approx(1.0, abs=1e-6), m
        assert np.all(np.diff(v) < 0), (m, v)
    assert np.all(np.diff(scores.pesq_wb) < 0), scores.pesq_wb


def test_unscorable_clips_are_reported_not_raised(speech):
    ref, deg = speech
    n = 16000
    clean = np.stack([ref[:n], np.zeros(n, np.float32), ref[:n]])
    degraded = np.stack([deg[:n], deg[:n], np.zeros(n, np.float32)])
    s = it.intelligibility(clean, degraded, workers=1)
    assert np.isfinite([s.stoi[0], s.estoi[0], s.pesq_wb[0]]).all()
    assert np.isnan([s.stoi[1], s.estoi[1], s.pesq_wb[1], s.pesq_wb[2]]).all()
    failed = {(f["clip"], f["metric"]) for f in s.failures}
    assert failed == {(1, "stoi"), (1, "estoi"), (1, "pesq_wb"), (2, "pesq_wb")}
    short = it.intelligibility(ref[8000:10000], deg[8000:10000], workers=1)
    assert {f["metric"] for f in short.failures} == {"stoi", "estoi", "pesq_wb"}
    assert any("BufferTooShort" in f["error"] for f in short.failures)
    assert short.summary()["failures"] == 3 and short.summary()["pesq_wb"] is None


def test_bad_input_is_a_clear_error(speech):
    ref, deg = speech
    bad = ref.copy()
    bad[10] = np.nan
    with pytest.raises(ValueError, match=r"clip\(s\) \[0\]"):
        it.intelligibility(ref, bad)
    with pytest.raises(ValueError, match="same length|\\[N, T\\]"):
        it.intelligibility(ref, deg[:-1])
    with pytest.raises(ValueError, match="16 kHz"):
        it.intelligibility(ref, deg, sample_rate=8000)
    with pytest.raises(ValueError, match="unknown metric"):
        it.intelligibility(ref, deg, metrics=("pesq_nb",))


def test_worker_processes_give_the_same_scores(speech):
    ref, deg = speech
    n = 16000
    clean = np.stack([ref[:n], ref[n:2 * n], ref[:n], np.zeros(n, np.float32)])
    degraded = np.stack([deg[:n], deg[n:2 * n], ref[:n], deg[:n]])
    one = it.intelligibility(clean, degraded, workers=1)
    two = it.intelligibility(clean, degraded, workers=2)
    for m in it.METRICS:  # workers run one BLAS thread: sums may round differently
        np.testing.assert_allclose(getattr(one, m), getattr(two, m), rtol=1e-12)
    assert one.failures == two.failures
