"""The report on a synthetic set of cell records: metrics, statements, tables and figures."""
import os

import numpy as np
import pytest

from maskgan_jax import report, report_summary
from maskgan_jax.vocab import RowKey

TASKS = ("mgi", "udi", "sei", "commands")
MODELS = ("cnn", "rnn")
LEVELS = (35.0, 45.0, 50.0)
FOLDS = 3


N_PER_FOLD, GROUPS = 60, 12


def _outcomes(task, p_correct, fold):
    """Per-example outcomes of one fold: example i is right when its fixed draw u_i < p (so two cells
    with the same p agree on every example, and a larger p is right on a superset)."""
    rows = np.arange(fold * N_PER_FOLD, (fold + 1) * N_PER_FOLD)
    u = np.random.default_rng([len(task), 7]).uniform(size=FOLDS * N_PER_FOLD)[rows]
    return {"index": rows.tolist(), "group": [f"g{r % GROUPS}" for r in rows],
            "correct": {"label": (u < p_correct).astype(int).tolist()}}


def _cell(task, model, noise, level, adv, accs, seed=0):
    folds = [{"fold": i, "accuracy": a, "outcomes": _outcomes(task, a, i)} for i, a in enumerate(accs)]
    return {"kind": "cell", "task": task, "model": model, "noise": noise, "noise_spl": level,
            "adversary": adv, "seed": seed, "accuracy": float(np.mean(accs)), "ci95": [None, None],
            "folds": folds, "above_comfort": level is not None and level > 45, "config": {},
            "chance_accuracy": 0.25}


def _acc(task, noise, level, adv, fold, gan_gain=0.0, model="cnn"):
    """A made-up accuracy: louder noise masks more; the adaptive adversary recovers half; rnn is weaker."""
    clean = {"mgi": 0.8, "udi": 0.7, "sei": 0.6, "commands": 0.9}[task] + 0.01 * fold
    clean -= 0.1 if model == "rnn" else 0.0
    if noise == "none":
        return clean
    strength = {"white": 0.30, "pink": 0.20, "brown": 0.10, "gan": 0.30 + gan_gain}[noise]
    drop = strength * (level - 30.0) / 20.0
    if task == "commands":
        drop *= 0.3
    if adv == "adaptive":
        drop *= 0.5
    return clean * (1.0 - drop)


def make_records(gan_gain=0.0, tasks=TASKS):
    recs = []
    for t in tasks:
        for m in MODELS:
            recs.append(_cell(t, m, "none", None, "static",
                              [_acc(t, "none", None, "", f, model=m) for f in range(FOLDS)]))
            for n in ("white", "pink", "brown", "gan"):
                for lv in LEVELS:
                    for a in ("static", "adaptive", "denoise"):
                        recs.append(_cell(t, m, n, lv, a,
                                          [_acc(t, n, lv, a, f, gan_gain, model=m) for f in range(FOLDS)]))
    return recs


def make_randomness(tasks=TASKS):
    out = []
    for t in tasks:
        out.append({"kind": "randomness", "task": t, "source": "clean", "noise": "none", "noise_spl": None,
                    "n": 50, "ww_mean_p": 0.02, "ww_ci95": [0.01, 0.03], "ww_frac_below": 0.9,
                    "cs_mean_p": 0.3, "cs_ci95": [0.25, 0.35], "cs_frac_below": 0.1,
                    "ww_mean_abs_z": 40.0})
        for n, p in (("white", 0.4), ("pink", 0.2), ("brown", 0.05), ("gan", 0.42)):
            for lv in LEVELS:
                q = p * (lv - 30.0) / 20.0
                out.append({"kind": "randomness", "task": t, "source": "masked", "noise": n,
                            "noise_spl": lv, "n": 50, "ww_mean_p": q, "ww_ci95": [q - 0.05, q + 0.05],
                            "ww_frac_below": 0.5, "cs_mean_p": 0.4, "cs_ci95": [0.35, 0.45],
                            "cs_frac_below": 0.05, "ww_mean_abs_z": 10.0 - 10.0 * q})
    for n in ("white", "gan"):
        out.append({"kind": "randomness", "task": "", "source": "noise", "noise": n, "noise_spl": 45.0,
                    "n": 20, "ww_mean_p": 0.5, "ww_ci95": [0.4, 0.6], "ww_frac_below": 0.05,
                    "cs_mean_p": 0.5, "cs_ci95": [0.4, 0.6], "cs_frac_below": 0.05})
    return out


def _pooled(task, noise, level, adv, model, gan_gain=0.0):
    """The pooled accuracy a cell's outcomes give (each fold's u < p over its examples)."""
    rows = np.arange(FOLDS * N_PER_FOLD)
    u = np.random.default_rng([len(task), 7]).uniform(size=FOLDS * N_PER_FOLD)
    p = np.repeat([_acc(task, noise, level, adv, f, gan_gain, model) for f in range(FOLDS)], N_PER_FOLD)
    return float(np.mean(u[rows] < p))


def test_summary_worst_case_and_per_adversary_spf_match_hand_values():
    s = report_summary.summarize(make_records(), make_randomness())
    assert s["ref_level"] == 45.0
    t = s["tasks"]["mgi"]
    assert t["bia"][("cnn", 0, "digital")].value == pytest.approx(_pooled("mgi", "none", None, "", "cnn"))
    assert t["best_clean"]["digital"] == ("cnn", 0, "digital")          # rnn is the weaker family here
    w = t["worst"][("white", 45.0, "digital")]
    # The adaptive adversary recovers half the drop, and cnn is stronger: the worst case.
    assert (w["key"].adversary, w["key"].model) == ("adaptive", "cnn")
    mia = _pooled("mgi", "white", 45.0, "adaptive", "cnn")
    assert w["mia"].value == pytest.approx(mia)
    assert w["reduction"].value == pytest.approx(1 - mia / _pooled("mgi", "none", None, "", "cnn"))
    lo, hi = w["mia"].ci95
    assert 0.0 <= lo <= w["mia"].value <= hi <= 1.0
    # Each adversary's SPF uses its own recogniser: static and adaptive differ.
    spf_static = s["spf"][RowKey("white", 45.0, "static")]["spf"].value
    spf_adaptive = s["spf"][RowKey("white", 45.0, "adaptive")]["spf"].value
    clean = _pooled("commands", "none", None, "", "cnn")
    assert spf_static == pytest.approx(_pooled("commands", "white", 45.0, "static", "cnn") / clean)
    assert spf_adaptive == pytest.approx(_pooled("commands", "white", 45.0, "adaptive", "cnn") / clean)
    assert spf_adaptive > spf_static
    fr = s["frontier"][RowKey("white", 45.0, "adaptive")]
    assert fr["spf"] == pytest.approx(spf_adaptive)
    assert s["frontier"][RowKey("white", 50.0, "static")]["above_comfort"]


def test_statements_say_gan_no_better_when_equal():
    s = report_summary.summarize(make_records(gan_gain=0.0), make_randomness())
    st = report.statements(s)
    rq1 = "\n".join(st["RQ1"])
    assert "GAN noise is no better than white noise" in rq1
    assert "worst case: adaptive CNN" in rq1
    rq3 = "\n".join(st["RQ3"])
    assert "RTMR, static adversary, WW mean p: Pearson r" in rq3
    assert "more randomness goes with more mitigation" in rq3
    assert "RTMR, static adversary, CS mean p: undefined" in rq3


def test_statements_say_gan_better_when_it_is_and_nothing_when_the_gan_failed_its_gate():
    s = report_summary.summarize(make_records(gan_gain=0.25), make_randomness())
    rq1 = "\n".join(report.statements(s)["RQ1"])
    assert "GAN noise masks better than white noise" in rq1
    failed = {"gan": {"quality": {"passed": False}}}
    rq1 = "\n".join(report.statements(s, failed)["RQ1"])
    assert "no conclusion about GAN noise" in rq1 and "masks better" not in rq1


def test_maskgan_quality_section_shows_the_gate_and_the_statement_names_the_failures(tmp_path):
    from maskgan_jax import quality
    rng = np.random.default_rng(3)
    target = rng.standard_normal((8, 4096)) * 0.1
    repeated = np.repeat(rng.standard_normal((1, 4096)) * 0.1, 8, axis=0)   # one waveform, eight times
    gate = quality.gate(repeated, target, classifier=False)
    assert not gate["passed"] and "clip_correlation" in gate["failed"]
    prov = {"synthetic": True, "gan": {"summary": "WaveGAN d=4", "quality": {
        "passed": False, "gate": gate, "line": "failed: " + ", ".join(gate["failed"]),
        "export_gate": {"passed": False, "failed": ["two_sample_auc"], "clips": [64, 64]}}}}
    rq1 = "\n".join(report.statements(report_summary.summarize(make_records(gan_gain=0.25), make_randomness()),
                                      prov)["RQ1"])
    assert "did not converge" in rq1 and "clip_correlation 1 vs target" in rq1
    text = open(report.write_report(str(tmp_path), make_records(), make_randomness(), {"provenance": prov},
                                    plots=False)).read()
    section = text[text.index("## MaskGAN quality"):]
    assert "**FAILED**" in section and "mean |correlation| between clips | 1 |" in section
    assert "on 64 clips with the two-sample classifier: failed (two_sample_auc)" in section
    assert text.index("## MaskGAN quality") < text.index("## Randomness")
    # A generator that passes has no failure in its section and allows the GAN statement.
    ok = quality.gate(rng.standard_normal((8, 4096)) * 0.1, target, classifier=False)
    prov["gan"]["quality"] = {"passed": ok["passed"], "gate": ok, "line": "all measures pass"}
    assert ok["passed"]
    rq1 = "\n".join(report.statements(report_summary.summarize(make_records(gan_gain=0.25), make_randomness()),
                                      prov)["RQ1"])
    assert "GAN noise masks better than white noise" in rq1


def test_zero_runs_p_values_are_explained_not_compared():
    rand = make_randomness()
    for r in rand:
        r["ww_mean_p"] = 0.0
    s = report_summary.summarize(make_records(), rand)
    rq3 = "\n".join(report.statements(s)["RQ3"])
    assert "far from a sequence of independent samples" in rq3
    assert "RTMR, static adversary, WW mean p: undefined, because every point has the same score" in rq3


def test_provenance_header_names_the_data_and_scopes_the_statements(tmp_path):
    prov = {"synthetic": True, "families": ["cnn", "rnn"], "attack_config": "default", "folds": 3,
            "seeds": [0], "levels": [35.0, 45.0], "speech_spl": 60.0, "adversaries": ["static"],
            "corpora": [{"task": "sei", "items": 384, "broken": 0, "synthetic": True,
                         "generator": "maskgan_jax.data.synthetic", "seed": 0, "size": "default"}],
            "attackers": ["cnn: conv channels 8,16"],
            "gan": {"summary": "WaveGAN d=8", "quality": {"passed": False, "line": "flatness 0.4"}}}
    path = report.write_report(str(tmp_path), make_records(), make_randomness(), {"provenance": prov}, plots=False)
    text = open(path).read()
    assert text.index("## What was run") < text.index("## mgi:")
    for part in ("**Synthetic data.**", "synthetic (maskgan_jax.data.synthetic, seed 0, size default)",
                 "Noise-quality gate: **FAILED**", "### Glossary", "**BIA**", "**SPF**", "**RTMR**",
                 "arXiv:2011.06725", "RAVDESS (Livingstone", "Speech Commands v0.02", "Scope: seeded synthetic",
                 "3 folds × 1 seed(s)", "0 dBFS RMS = 90 dB SPL"):
        assert part in text, part


def test_write_report_tables_and_figures(tmp_path):
    rng = np.random.default_rng(0)
    t = np.arange(32768) / 16000
    examples = {"clean": (0.1 * np.sin(2 * np.pi * 300 * t)).astype(np.float32),
                "white": rng.normal(scale=0.01, size=32768).astype(np.float32),
                "gan": rng.normal(scale=0.01, size=32768).astype(np.float32)}
    run_info = {"config_name": "synthetic", "cells_done": 10, "cells_total": 12,
                "stages": {"attack": {"wall_s": 1.5, "status": "done"}},
                "versions": {"jax": "x"}, "missing": "2 cells not run"}
    path = report.write_report(str(tmp_path), make_records(), make_randomness(), run_info, examples)
    text = open(path).read()
    for task in TASKS:
        assert f"## {task}:" in text
    for header in ("MIA", "reduction vs strongest clean", "SPF", "WW mean |z|", "CS mean p (masked)",
                   "Randomness-to-mitigation relation", "Privacy–utility–comfort frontier", "worst case",
                   "RQ1", "RQ2", "RQ3", "Wall time of each stage", "(above comfort)", "2 cells not run"):
        assert header in text, header
    pngs = [f for f in os.listdir(tmp_path) if f.endswith(".png")]
    expected = {"fig03_mel_spectrograms.png", "fig13_spf.png", "fig14_rtmr.png",
                "frontier_privacy_utility_comfort.png"}
    expected |= {f"fig06-08_randomness_{t}.png" for t in TASKS}
    expected |= {f"fig09-11_accuracy_{t}.png" for t in TASKS}
    assert expected <= set(pngs)
    for f in expected:
        with open(tmp_path / f, "rb") as fh:
            assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
        assert f"]({f})" in text


def test_partial_records_still_make_a_report(tmp_path):
    recs = [r for r in make_records(tasks=("mgi",)) if r["noise"] in ("none", "white")
            and r["adversary"] == "static"]
    path = report.write_report(str(tmp_path), recs, [], plots=True)
    text = open(path).read()
    assert "## mgi:" in text
    assert "No speech-command cells" in text
    assert os.path.exists(tmp_path / "fig09-11_accuracy_mgi.png")
    assert not os.path.exists(tmp_path / "fig13_spf.png")


def test_empty_report(tmp_path):
    text = open(report.write_report(str(tmp_path), [], [], plots=True)).read()
    assert "No masked cells" in text


def test_statements_say_whether_the_trained_masker_beats_white_noise():
    recs = make_records(gan_gain=0.25)
    masker = [dict(r, noise="optimised", cell=str(r.get("cell", "")).replace("noise=gan", "noise=optimised"))
              for r in recs if r["noise"] == "gan"]
    s = report_summary.summarize(recs + masker, make_randomness())
    rq1 = "\n".join(report.statements(s)["RQ1"])
    assert "trained masker masks better than white noise" in rq1 and "white − optimised" in rq1
    same = report_summary.summarize(make_records(gan_gain=0.0) + [
        dict(r, noise="optimised", cell=str(r.get("cell", "")).replace("noise=gan", "noise=optimised"))
        for r in make_records(gan_gain=0.0) if r["noise"] == "gan"], make_randomness())
    assert "trained masker is no better than white noise" in "\n".join(report.statements(same)["RQ1"])
