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


def _cell(task, model, noise, level, adv, accs, seed=0):
    return {"kind": "cell", "task": task, "model": model, "noise": noise, "noise_spl": level,
            "adversary": adv, "seed": seed, "accuracy": float(np.mean(accs)), "ci95": [None, None],
            "folds": [{"fold": i, "accuracy": a} for i, a in enumerate(accs)],
            "above_comfort": level is not None and level > 45, "config": {}}


def _acc(task, noise, level, adv, fold, gan_gain=0.0):
    """A made-up accuracy: louder noise masks more; the adaptive adversary recovers half."""
    clean = {"mgi": 0.8, "udi": 0.7, "sei": 0.6, "commands": 0.9}[task] + 0.01 * fold
    if noise == "none":
        return clean
    strength = {"white": 0.30, "pink": 0.20, "brown": 0.10, "gan": 0.30 + gan_gain}[noise]
    drop = strength * (level - 30.0) / 20.0
    if task == "commands":
        drop *= 0.3
    if adv == "adaptive":
        drop *= 0.5
    # A fold-dependent wobble so paired differences have a spread.
    return clean * (1.0 - drop) + 0.004 * ((fold * 7 + len(noise)) % 3 - 1)


def make_records(gan_gain=0.0, tasks=TASKS):
    recs = []
    for t in tasks:
        for m in MODELS:
            recs.append(_cell(t, m, "none", None, "static", [_acc(t, "none", None, "", f) for f in range(FOLDS)]))
            for n in ("white", "pink", "brown", "gan"):
                for lv in LEVELS:
                    for a in ("static", "adaptive", "denoise"):
                        recs.append(_cell(t, m, n, lv, a,
                                          [_acc(t, n, lv, a, f, gan_gain) for f in range(FOLDS)]))
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


def test_summary_metrics_match_hand_values():
    s = report_summary.summarize(make_records(), make_randomness())
    assert s["ref_level"] == 45.0
    bia = s["tasks"]["mgi"]["bia"]
    assert bia.value == pytest.approx(0.81)             # 0.80, 0.81, 0.82 for both models
    row = s["tasks"]["mgi"]["rows"][("white", 45.0, "static")]
    clean = [0.8 + 0.01 * f for f in range(FOLDS)] * 2
    masked = [_acc("mgi", "white", 45.0, "static", f) for f in range(FOLDS)] * 2
    assert row["mia"].value == pytest.approx(np.mean(masked))
    assert row["reduction"].value == pytest.approx(1 - np.mean(masked) / np.mean(clean))
    spf = s["spf"][("white", 45.0, "static")]
    cm = [_acc("commands", "white", 45.0, "static", f) for f in range(FOLDS)]
    cc = [0.9 + 0.01 * f for f in range(FOLDS)]
    assert spf.value == pytest.approx(np.mean(cm) / np.mean(cc))
    fr = s["frontier"][RowKey("white", 50.0, "static")]
    assert fr["above_comfort"] and not s["frontier"][RowKey("white", 45.0, "static")]["above_comfort"]


def test_statements_say_gan_no_better_when_equal():
    s = report_summary.summarize(make_records(gan_gain=0.0), make_randomness())
    st = report.statements(s)
    rq1 = "\n".join(st["RQ1"])
    assert "GAN noise is no better than white noise" in rq1
    assert "GAN noise masks better" not in rq1
    # The adaptive adversary recovers half of the drop: the static/adaptive gap is reported.
    assert "retrains on masked audio" in rq1
    rq3 = "\n".join(st["RQ3"])
    assert "GAN-masked audio is no more random than white-masked audio" in rq3
    # Randomness and reduction both grow with level here: a clear positive relation, by
    # the p-values and by the runs test's |z|; the constant Cox–Stuart score has none.
    assert "RTMR, static adversary, WW mean p: Pearson r" in rq3
    assert "RTMR, static adversary, −WW mean |z|: Pearson r" in rq3
    assert "more randomness goes with more mitigation" in rq3
    assert "RTMR, static adversary, CS mean p: undefined" in rq3
    assert "The GAN noise itself is as random as white noise" in rq3


def test_statements_say_gan_better_when_it_is():
    s = report_summary.summarize(make_records(gan_gain=0.2), make_randomness())
    rq1 = "\n".join(report.statements(s)["RQ1"])
    assert "GAN noise masks better than white noise" in rq1


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
    for header in ("MIA", "reduction (BIA−MIA)/BIA", "SPF", "WW mean p (masked)", "CS mean p (masked)",
                   "Randomness-to-mitigation relation", "Privacy–utility–comfort frontier",
                   "RQ1", "RQ2", "RQ3", "Wall time per stage", "(above comfort)", "2 cells not run"):
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
