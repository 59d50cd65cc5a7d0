"""score_clips and the score_randomness binary against statsmodels / scipy per clip."""
import json

import numpy as np
import pytest
import soundfile as sf
from scipy.stats import binomtest
from statsmodels.sandbox.stats.runs import runstest_1samp

from kernels import score_clips
from maskgan_jax.audio import float_to_int16

RNG = np.random.default_rng(3)


def _cs_ref(x):
    c = -(-x.size // 2)
    a, b = x[: x.size - c].astype(np.int64), x[c:].astype(np.int64)
    plus, pairs = int((b > a).sum()), int((b != a).sum())
    return binomtest(plus, pairs, 0.5).pvalue


def test_score_clips_matches_references():
    x = (RNG.standard_normal((4, 5000)) * 2000).astype(np.int16)
    x[1] = np.sort(x[1])
    s = score_clips(x, num_threads=2)
    for i in range(4):
        z, p = runstest_1samp(x[i], cutoff="median")
        assert s["ww_z"][i] == pytest.approx(z, rel=1e-9) and s["ww_p"][i] == pytest.approx(p, rel=1e-9, abs=1e-300)
        assert s["cs_p"][i] == pytest.approx(_cs_ref(x[i]), rel=1e-6)
    with pytest.raises(ValueError, match="int16"):
        score_clips(x.astype(np.float32))


def test_float_to_int16_recovers_16bit_files(tmp_path):
    pcm = RNG.integers(-32768, 32768, 1000).astype(np.int16)
    sf.write(tmp_path / "a.wav", pcm, 16000, subtype="PCM_16")
    wave, _ = sf.read(tmp_path / "a.wav", dtype="float32")
    np.testing.assert_array_equal(float_to_int16(wave)[0], pcm)


def test_binary_scores_a_folder(tmp_path):
    from absl import flags

    from experiments import score_randomness
    folder = tmp_path / "wavs"
    (folder / "sub").mkdir(parents=True)
    pcms = {"a.wav": (RNG.standard_normal(8000) * 3000).astype(np.int16),
            "sub/b.wav": (np.sin(np.arange(9000) / 7.0) * 10000).astype(np.int16)}
    for name, pcm in pcms.items():
        sf.write(folder / name, pcm, 16000, subtype="PCM_16")
    (folder / "sub" / "broken.wav").write_bytes(b"RIFF....WAVEjunk")
    out = tmp_path / "scores.jsonl"
    fl = flags.FLAGS
    fl([ "score_randomness", f"--inputs={folder}", f"--out={out}", "--noprogress"])
    try:
        score_randomness.main(["score_randomness"])
    finally:
        fl.unparse_flags()
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    files = {r["path"].split("wavs/")[1]: r for r in recs if r["kind"] == "file"}
    errors = [r for r in recs if r["kind"] == "error"]
    assert set(files) == set(pcms) and len(errors) == 1 and "broken.wav" in errors[0]["path"]
    ps = []
    for name, pcm in pcms.items():
        z, p = runstest_1samp(pcm, cutoff="median")
        assert files[name]["ww_p"] == pytest.approx(p, rel=1e-9, abs=1e-300)
        assert files[name]["cs_p"] == pytest.approx(_cs_ref(pcm), rel=1e-6)
        ps.append(p)
    summary = recs[-1]
    assert summary["kind"] == "summary" and summary["files"] == 2 and summary["skipped"] == 1
    ww = summary["tests"]["wald_wolfowitz"]
    assert ww["mean_p"] == pytest.approx(np.mean(ps), rel=1e-9)
    assert ww["frac_p_below_0.05"] == np.mean(np.array(ps) < 0.05)


def _run_binary(args):
    from absl import flags

    from experiments import score_randomness
    fl = flags.FLAGS
    fl(["score_randomness", *args, "--noprogress"])
    try:
        score_randomness.main(["score_randomness"])
    finally:
        fl.unparse_flags()


def test_binary_scores_a_dataset_with_noise_mixed_in(tmp_path):
    import jax

    from _layout_fixtures import make_ravdess
    from maskgan_jax import audio, keys, levels, noise
    from maskgan_jax.data import store
    corpus = tmp_path / "ravdess"
    make_ravdess(corpus)
    runs = {}
    for name, extra in (("clean", ["--noise=none"]), ("white", ["--noise=white", "--batch_clips=2"]),
                        ("white3", ["--noise=white", "--batch_clips=3"]),
                        ("room", ["--noise=white", "--channel=room", "--rooms=2"])):
        out = tmp_path / f"{name}.jsonl"
        _run_binary([f"--dataset={corpus}", f"--cache_dir={tmp_path / 'cache'}", f"--out={out}",
                     "--noise_spl=40", "--speech_spl=60", "--seed=5", *extra])
        runs[name] = [json.loads(line) for line in out.read_text().splitlines()]
    stores = list((tmp_path / "cache" / "stores").iterdir())
    assert len(stores) == 1, "one store, decoded once for all three runs"
    st = store.open_store(stores[0])
    clips = [r for r in runs["white"] if r["kind"] == "clip"]
    assert len(clips) == len(st) > 2
    for rec in clips:
        clean = st.batch([rec["row"]])[0]
        # The attack's test noise for this row and seed (keys), mixed by the one mix (levels).
        white = noise.white(jax.random.fold_in(keys.test_noise(5), rec["row"]), (st.length,))
        mixed, _ = jax.jit(levels.mix_at_snr_jax)(audio.int16_to_float(clean), white, np.float32(20.0))
        pcm = audio.float_to_int16(np.asarray(mixed))[0]
        z, p = runstest_1samp(pcm, cutoff="median")
        assert rec["ww_p"] == pytest.approx(p, rel=1e-9, abs=1e-300)
        assert rec["cs_p"] == pytest.approx(_cs_ref(pcm), rel=1e-6)
        assert (rec["noise"], rec["noise_spl"], rec["speech_spl"]) == ("white", 40.0, 60.0)
        # 20 dB below the clean clip (up to int16 rounding), whatever the clip's level.
        added = pcm.astype(np.float64) - clean
        snr = 10 * np.log10(np.mean(clean.astype(np.float64) ** 2) / np.mean(added ** 2))
        assert snr == pytest.approx(20.0, abs=0.2)
    # A clip's noise depends on its row and the seed only, not on the batching.
    strip = lambda recs: [{k: v for k, v in r.items() if k != "config"} for r in recs if r["kind"] == "clip"]
    assert strip(runs["white"]) == strip(runs["white3"])
    # Through a room the microphone hears something else than the digital mix.
    room = [r for r in runs["room"] if r["kind"] == "clip"]
    assert {r["channel"] for r in room} == {"room"} and len(room) == len(clips)
    assert [r["ww_z"] for r in room] != [r["ww_z"] for r in clips]
    for rec in (r for r in runs["clean"] if r["kind"] == "clip"):
        z, p = runstest_1samp(st.batch([rec["row"]])[0], cutoff="median")
        assert rec["ww_p"] == pytest.approx(p, rel=1e-9, abs=1e-300) and rec["noise_spl"] is None
    summary = runs["white"][-1]
    assert summary["kind"] == "summary" and summary["noise"] == "white" and summary["clips"] == len(st)
    assert summary["tests"]["wald_wolfowitz"]["mean_p"] == pytest.approx(np.mean([r["ww_p"] for r in clips]))


def test_binary_rejects_bad_dataset_and_loud_noise(tmp_path):
    from absl import app
    with pytest.raises(app.UsageError, match="--dataset"):
        _run_binary([f"--dataset={tmp_path / 'missing'}", f"--out={tmp_path / 'x.jsonl'}"])
    with pytest.raises(app.UsageError, match="comfort"):
        _run_binary(["--dataset=sei", "--noise=pink", "--noise_spl=50", f"--out={tmp_path / 'x.jsonl'}"])
