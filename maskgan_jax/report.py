"""The study's report: metrics from whatever cell records exist, tables, plain statements, plots.

Inputs are plain records (JSON lines): ``kind="cell"`` records (one per attack cell, with the
per-fold accuracies in ``folds``) and ``kind="randomness"`` records (mean p-values of the
Wald–Wolfowitz and Cox–Stuart tests on one set of clips). Everything here is computed from
those numbers; nothing is assumed about which noise should win.
"""
from __future__ import annotations

import math
import os
from typing import Iterable, Sequence

import numpy as np

from maskgan_jax import metrics, results
from maskgan_jax.levels import COMFORT_LIMIT_SPL

PRIVACY_TASKS = ("mgi", "udi", "sei")
UTILITY_TASK = "commands"
TASK_TITLES = {"mgi": "music genre (FMA layout)", "udi": "speaker demographics (Common Voice layout)",
               "sei": "speech emotion (RAVDESS layout)", "commands": "speech commands (utility)"}
NOISE_ORDER = ("white", "pink", "brown", "gan")
ADVERSARIES = ("static", "adaptive", "denoise")
SPF_OK = 0.9   # a masked recogniser keeping 90 % of its clean accuracy counts as "usable"
# Randomness scores for RTMR, each oriented so that larger means more random: the mean
# Wald–Wolfowitz and Cox–Stuart p-values, and −mean|z| of the runs test (audio's p-values
# saturate at 0, while |z| still says how far from random a set of clips is).
RTMR_TESTS = ("ww", "cs", "ww_z")
RTMR_LABELS = {"ww": "WW mean p", "cs": "CS mean p", "ww_z": "−WW mean |z|"}


def _randomness_score(rec: dict, test: str):
    if test == "ww_z":
        v = rec.get("ww_mean_abs_z")
        return None if v is None else -float(v)
    return float(rec[f"{test}_mean_p"])


# --------------------------------------------------------------------------- indexing

def _level(rec) -> float | None:
    v = rec.get("noise_spl")
    return None if v is None or rec.get("noise") == "none" else float(v)


def _fold_map(rec) -> dict:
    """{(model, seed, fold): accuracy} for one cell (a cell without folds counts as one)."""
    folds = rec.get("folds") or [{"fold": 0, "accuracy": rec["accuracy"]}]
    return {(rec["model"], rec["seed"], f.get("fold", i)): float(f["accuracy"])
            for i, f in enumerate(folds)}


class Cells:
    """Cell records indexed by (task, model, noise, level, adversary)."""

    def __init__(self, records: Iterable[dict]):
        self.by_key: dict[tuple, dict] = {}
        for r in records:
            if r.get("kind") != "cell":
                continue
            key = (r["task"], r["model"], r["noise"], _level(r), r["adversary"], r["seed"])
            self.by_key[key] = r
        keys = list(self.by_key)
        self.tasks = [t for t in (*PRIVACY_TASKS, UTILITY_TASK) if any(k[0] == t for k in keys)]
        self.tasks += sorted({k[0] for k in keys} - set(self.tasks))
        self.models = sorted({k[1] for k in keys})
        noises = {k[2] for k in keys if k[2] != "none"}
        self.noises = [n for n in NOISE_ORDER if n in noises] + sorted(noises - set(NOISE_ORDER))
        self.levels = sorted({k[3] for k in keys if k[3] is not None})
        self.adversaries = [a for a in ADVERSARIES if any(k[4] == a for k in keys)]
        self.seeds = sorted({k[5] for k in keys})

    def folds(self, task, noise, level, adversary, models=None) -> dict:
        """{(model, seed, fold): accuracy} pooled over the chosen models and all seeds."""
        out = {}
        for (t, m, n, lv, a, _s), r in self.by_key.items():
            if t != task or n != noise or lv != level or (models is not None and m not in models):
                continue
            if noise != "none" and a != adversary:
                continue
            out.update(_fold_map(r))
        return out

    def clean(self, task, models=None) -> dict:
        """The baseline folds (noise none)."""
        return self.folds(task, "none", None, "static", models)


def _paired(clean: dict, masked: dict):
    """(clean values, masked values, paired?) — paired on (model, seed, fold) when both match."""
    common = sorted(set(clean) & set(masked))
    if common and len(common) == len(masked):
        return [clean[k] for k in common], [masked[k] for k in common], True
    return list(clean.values()), list(masked.values()), False


def _reduction(clean: dict, masked: dict, seed: int = 0):
    if not clean or not masked or not np.mean(list(clean.values())) > 0:
        return None
    c, m, paired = _paired(clean, masked)
    return metrics.reduction_ci(c, m, paired=paired, seed=seed)


def _diff(a: dict, b: dict):
    """Paired mean difference a − b (t-interval) on their common folds, or None."""
    common = sorted(set(a) & set(b))
    if not common:
        return None
    return metrics.mean_ci([a[k] - b[k] for k in common])


# --------------------------------------------------------------------------- summary

def ref_level(levels: Sequence[float], wanted: float = COMFORT_LIMIT_SPL) -> float | None:
    """The reference level: ``wanted`` when swept, else the loudest level within comfort."""
    if not levels:
        return None
    if wanted in levels:
        return wanted
    ok = [lv for lv in levels if lv <= COMFORT_LIMIT_SPL]
    return max(ok) if ok else min(levels)


def summarize(records: Iterable[dict], randomness: Iterable[dict] = (), seed: int = 0,
              reference_level: float = COMFORT_LIMIT_SPL) -> dict:
    """All metrics of the study from its records: per-task rows, SPF, randomness, RTMR, frontier."""
    cells = Cells(records)
    rand = [r for r in randomness if r.get("kind") == "randomness"]
    ref = ref_level(cells.levels, reference_level)
    out = {"cells": cells, "ref_level": ref, "tasks": {}, "spf": {}, "randomness": {},
           "rtmr": {}, "frontier": {}, "noise_randomness": {}}

    for task in cells.tasks:
        clean_all = cells.clean(task)
        t = {"bia": metrics.bia(list(clean_all.values())) if clean_all else None,
             "bia_model": {}, "rows": {}, "model_rows": {}}
        for m in cells.models:
            cm = cells.clean(task, [m])
            if cm:
                t["bia_model"][m] = metrics.bia(list(cm.values()))
        for noise in cells.noises:
            for lv in cells.levels:
                for adv in cells.adversaries:
                    f = cells.folds(task, noise, lv, adv)
                    if not f:
                        continue
                    t["rows"][(noise, lv, adv)] = {
                        "mia": metrics.mia(list(f.values())),
                        "reduction": _reduction(clean_all, f, seed), "folds": f}
                    for m in cells.models:
                        fm = cells.folds(task, noise, lv, adv, [m])
                        if fm:
                            t["model_rows"][(m, noise, lv, adv)] = {
                                "mia": metrics.mia(list(fm.values())),
                                "reduction": _reduction(cells.clean(task, [m]), fm, seed)}
        out["tasks"][task] = t

    if UTILITY_TASK in out["tasks"]:
        ut = out["tasks"][UTILITY_TASK]
        clean = cells.clean(UTILITY_TASK)
        for key, row in ut["rows"].items():
            if clean and np.mean(list(clean.values())) > 0:
                c, m, paired = _paired(clean, row["folds"])
                out["spf"][key] = metrics.spf_ci(m, c, paired=paired, seed=seed)

    for r in rand:
        key = (r["task"], r["source"], r.get("noise", "none"),
               None if r.get("noise_spl") is None else float(r["noise_spl"]))
        if r["source"] == "noise":
            out["noise_randomness"][(r.get("noise"), key[3])] = r
        else:
            out["randomness"][key] = r

    # RTMR: one point per (privacy task, noise, level) with both a randomness score and a reduction.
    for adv in cells.adversaries:
        for test in RTMR_TESTS:
            xs, ys, labels = [], [], []
            for task in PRIVACY_TASKS:
                if task not in out["tasks"]:
                    continue
                for (noise, lv, a), row in out["tasks"][task]["rows"].items():
                    rr = out["randomness"].get((task, "masked", noise, lv))
                    if a != adv or rr is None or row["reduction"] is None:
                        continue
                    x = _randomness_score(rr, test)
                    if x is None:
                        continue
                    xs.append(x)
                    ys.append(row["reduction"].value)
                    labels.append((task, noise, lv))
            if len(xs) >= 2:
                res = metrics.rtmr(xs, ys, seed=seed)
                res.update(points=list(zip(labels, xs, ys)))
                out["rtmr"][(adv, test)] = res

    # Frontier: mitigation (mean reduction over privacy tasks) against SPF, per noise and level.
    for adv in cells.adversaries:
        for noise in cells.noises:
            for lv in cells.levels:
                reds = [out["tasks"][t]["rows"][(noise, lv, adv)]["reduction"]
                        for t in PRIVACY_TASKS if t in out["tasks"]
                        and (noise, lv, adv) in out["tasks"][t]["rows"]]
                reds = [r for r in reds if r is not None]
                s = out["spf"].get((noise, lv, "static")) or out["spf"].get((noise, lv, adv))
                if reds and s is not None:
                    out["frontier"][(adv, noise, lv)] = {
                        "mitigation": float(np.mean([r.value for r in reds])),
                        "spf": s.value, "above_comfort": lv > COMFORT_LIMIT_SPL,
                        "n_tasks": len(reds)}
    return out


# --------------------------------------------------------------------------- statements

def _fmt(e, digits: int = 3) -> str:
    if e is None:
        return "—"
    if isinstance(e, metrics.Estimate):
        lo, hi = e.ci95
        if lo is None:
            return f"{e.value:.{digits}f}"
        return f"{e.value:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"
    return f"{float(e):.{digits}f}"


def _compare(d: metrics.Estimate | None) -> str:
    """'higher' / 'lower' / 'same' of a paired difference's interval against 0."""
    if d is None or d.ci95[0] is None:
        return "undetermined"
    if d.low > 0:
        return "higher"
    if d.high < 0:
        return "lower"
    return "same"


def statements(s: dict) -> dict:
    """Plain sentences per research question, each computed from the numbers."""
    cells, ref = s["cells"], s["ref_level"]
    rq1, rq2, rq3 = [], [], []
    if ref is None:
        return {"RQ1": ["No masked cells exist yet."], "RQ2": [], "RQ3": []}
    for task in [t for t in PRIVACY_TASKS if t in s["tasks"]]:
        t = s["tasks"][task]
        for adv in cells.adversaries:
            parts = []
            for noise in cells.noises:
                row = t["rows"].get((noise, ref, adv))
                if row is None or row["reduction"] is None:
                    continue
                parts.append(f"{noise} {_fmt(row['reduction'], 2)}")
            if not parts:
                continue
            rq1.append(f"{task}, {adv} adversary, {ref:g} dB SPL: BIA {_fmt(t['bia'], 2)}; relative "
                       f"reduction (BIA−MIA)/BIA per noise: " + "; ".join(parts) + ".")
            gan, white = t["rows"].get(("gan", ref, adv)), t["rows"].get(("white", ref, adv))
            if gan and white:
                # Lower accuracy under GAN noise than under white noise = GAN masks better.
                verdict = _compare(_diff(white["folds"], gan["folds"]))
                d = _diff(white["folds"], gan["folds"])
                txt = {"higher": "GAN noise masks better than white noise",
                       "lower": "GAN noise masks worse than white noise",
                       "same": "GAN noise is no better than white noise",
                       "undetermined": "GAN and white noise cannot be told apart (too few folds)"}[verdict]
                rq1.append(f"  → {task}, {adv}: {txt} at {ref:g} dB SPL (paired accuracy difference "
                           f"white − GAN {_fmt(d, 3)}).")
        st = t["rows"]
        for noise in cells.noises:
            a, b = st.get((noise, ref, "static")), st.get((noise, ref, "adaptive"))
            c = st.get((noise, ref, "denoise"))
            for other, name in ((b, "retrains on masked audio"), (c, "denoises first")):
                if a and other and a["reduction"] and other["reduction"]:
                    ra, ro = a["reduction"], other["reduction"]
                    if metrics.intervals_overlap(ra, ro):
                        continue
                    word = "loses" if ro.value < ra.value else "gains"
                    rq1.append(f"  → {task}, {noise}: the masking {word} effect when the adversary "
                               f"{name} (reduction {_fmt(ra, 2)} static vs {_fmt(ro, 2)}).")

    if s["spf"]:
        for adv in cells.adversaries:
            parts = [f"{n} {_fmt(s['spf'][(n, ref, adv)], 2)}" for n in cells.noises
                     if (n, ref, adv) in s["spf"]]
            if parts:
                rq2.append(f"SPF (command accuracy masked / clean), {adv} recogniser, {ref:g} dB SPL: "
                           + "; ".join(parts) + ".")
        ut = s["tasks"][UTILITY_TASK]["rows"]
        g, w = ut.get(("gan", ref, "static")), ut.get(("white", ref, "static"))
        if g and w:
            v = _compare(_diff(g["folds"], w["folds"]))
            txt = {"higher": "GAN noise preserves speech commands better than white noise",
                   "lower": "GAN noise preserves speech commands worse than white noise",
                   "same": "GAN and white noise preserve speech commands equally (no clear difference)",
                   "undetermined": "GAN and white noise cannot be told apart on utility"}[v]
            rq2.append(f"  → {txt} at {ref:g} dB SPL.")
        best = [(k, p) for k, p in s["frontier"].items()
                if k[0] == "static" and not p["above_comfort"] and p["spf"] >= SPF_OK]
        if best:
            (adv, noise, lv), p = max(best, key=lambda kp: kp[1]["mitigation"])
            rq2.append(f"  → Best privacy at SPF ≥ {SPF_OK} within the {COMFORT_LIMIT_SPL:g} dB comfort "
                       f"limit (static adversary): {noise} noise at {lv:g} dB SPL, mean reduction "
                       f"{p['mitigation']:.2f} with SPF {p['spf']:.2f}.")
        elif s["frontier"]:
            rq2.append(f"  → No noise within the comfort limit keeps SPF ≥ {SPF_OK} while masking.")
    else:
        rq2.append("No speech-command cells: SPF not measured.")

    for task in s["tasks"]:
        c = s["randomness"].get((task, "clean", "none", None))
        for test, name in (("ww", "Wald–Wolfowitz"), ("cs", "Cox–Stuart")):
            vals = []
            if c:
                vals.append(f"clean {c[f'{test}_mean_p']:.3f}")
            for noise in cells.noises or NOISE_ORDER:
                r = s["randomness"].get((task, "masked", noise, ref))
                if r:
                    vals.append(f"{noise}-masked {r[f'{test}_mean_p']:.3f}")
            if vals:
                rq3.append(f"{task}, {name} mean p at {ref:g} dB SPL: " + ", ".join(vals) + ".")
        g = s["randomness"].get((task, "masked", "gan", ref))
        w = s["randomness"].get((task, "masked", "white", ref))
        if g and w:
            ge = metrics.Estimate(g["ww_mean_p"], *(_none_nan(g["ww_ci95"])), g["n"], "t")
            we = metrics.Estimate(w["ww_mean_p"], *(_none_nan(w["ww_ci95"])), w["n"], "t")
            if metrics.intervals_overlap(ge, we):
                rq3.append(f"  → {task}: GAN-masked audio is no more random than white-masked audio "
                           f"(Wald–Wolfowitz intervals overlap).")
            else:
                word = "more" if ge.value > we.value else "less"
                rq3.append(f"  → {task}: GAN-masked audio is {word} random than white-masked audio "
                           f"(mean p {ge.value:.3f} vs {we.value:.3f}).")
    nw = [r for (n, _lv), r in s["noise_randomness"].items() if n == "white"]
    ng = [r for (n, _lv), r in s["noise_randomness"].items() if n == "gan"]
    if nw and ng:
        w, g = nw[0], ng[0]
        we = metrics.Estimate(w["ww_mean_p"], *(_none_nan(w["ww_ci95"])), w["n"], "t")
        ge = metrics.Estimate(g["ww_mean_p"], *(_none_nan(g["ww_ci95"])), g["n"], "t")
        if metrics.intervals_overlap(ge, we):
            word = "as random as"
        else:
            word = "more random than" if ge.value > we.value else "less random than"
        rq3.append(f"The GAN noise itself is {word} white noise by the runs test (WW mean p "
                   f"{g['ww_mean_p']:.3f} vs {w['ww_mean_p']:.3f}; CS mean p {g['cs_mean_p']:.3f} vs "
                   f"{w['cs_mean_p']:.3f}).")
    for (adv, test), r in sorted(s["rtmr"].items()):
        lo, hi = r["pearson_ci95"]
        if r["pearson_r"] is None:
            rq3.append(f"RTMR, {adv} adversary, {RTMR_LABELS[test]}: undefined (the score is the "
                       f"same for every point, e.g. all p-values 0).")
            continue
        if lo is None:
            verdict = f"too few points (n = {r['n']}) for an interval"
        elif lo > 0:
            verdict = "more randomness goes with more mitigation"
        elif hi < 0:
            verdict = "more randomness goes with less mitigation"
        else:
            verdict = "no evidence that randomness predicts mitigation (the interval includes 0)"
        ci = "" if lo is None else f" [{lo:.2f}, {hi:.2f}]"
        rq3.append(f"RTMR, {adv} adversary, {RTMR_LABELS[test]}: Pearson r = {r['pearson_r']:.2f}"
                   f"{ci}, Spearman ρ = {_corr(r['spearman_rho'], [None, None])}, n = {r['n']}: "
                   f"{verdict}.")
    return {"RQ1": rq1, "RQ2": rq2, "RQ3": rq3}


def _none_nan(ci):
    return [math.nan if v is None else v for v in ci]


# --------------------------------------------------------------------------- markdown

RQ_TITLES = {
    "RQ1": "RQ1 — Does masking noise defeat the inference attacks, and is GAN noise better than "
           "white noise at the same level?",
    "RQ2": "RQ2 — Does the masked audio keep its utility (speech commands)?",
    "RQ3": "RQ3 — Is GAN noise more random, and does randomness predict mitigation?",
}


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


def markdown(s: dict, run_info: dict | None = None, figures: dict | None = None) -> str:
    """The report's text: run facts, per-task tables, RTMR, frontier, statements, figures."""
    cells, ref = s["cells"], s["ref_level"]
    run_info = run_info or {}
    figures = figures or {}
    L = ["# MaskGAN study report", ""]
    if run_info:
        L += ["## Run", ""]
        for k in ("config_name", "config", "out", "cells_done", "cells_total", "seeds", "devices",
                  "worker", "host", "platform", "started", "finished"):
            if k in run_info:
                L.append(f"- **{k}**: {run_info[k]}")
        if run_info.get("stages"):
            L += ["", "Wall time per stage:", ""]
            L += _table(["stage", "wall time (s)", "status"],
                        [[n, f"{v.get('wall_s', 0):.1f}", v.get("status", "")]
                         for n, v in run_info["stages"].items()])
        if run_info.get("versions"):
            L += ["", "Versions: " + ", ".join(f"{k} {v}" for k, v in run_info["versions"].items())]
        if run_info.get("missing"):
            L += ["", f"**Missing**: {run_info['missing']}"]
        L.append("")
    L += [f"Reference level for the comparisons: **{ref:g} dB SPL** noise against speech at the "
          f"recorded level (every noise at the same calibrated level). Intervals are 95 % over "
          f"folds × seeds (× models where pooled)." if ref is not None else "No masked cells yet.", ""]
    for task, t in s["tasks"].items():
        L += [f"## {task}: {TASK_TITLES.get(task, task)}", ""]
        L.append(f"BIA (clean audio, pooled over models {', '.join(cells.models)}): {_fmt(t['bia'])}. "
                 "Each row's reduction and SPF pair its folds with the clean folds of the same "
                 "models and seeds.")
        L.append("")
        rows = []
        for (noise, lv, adv), row in sorted(t["rows"].items(),
                                            key=lambda kv: (_noise_rank(kv[0][0]), kv[0][1],
                                                            ADVERSARIES.index(kv[0][2])
                                                            if kv[0][2] in ADVERSARIES else 9)):
            rr = s["randomness"].get((task, "masked", noise, lv))
            spf = s["spf"].get((noise, lv, adv))
            mark = " (above comfort)" if lv > COMFORT_LIMIT_SPL else ""
            models = ",".join(sorted({k[0] for k in row["folds"]}))
            rows.append([noise, f"{lv:g}{mark}", adv, models, _fmt(row["mia"]), _fmt(row["reduction"]),
                         _fmt(spf), "—" if rr is None else f"{rr['ww_mean_p']:.3f}",
                         "—" if rr is None else f"{rr['cs_mean_p']:.3f}"])
        if rows:
            L += _table(["noise", "level (dB SPL)", "adversary", "models", "MIA", "reduction (BIA−MIA)/BIA",
                         "SPF", "WW mean p (masked)", "CS mean p (masked)"], rows)
            L.append("")
        if ref is not None and t["bia_model"]:
            hdr = ["model", "BIA"] + [f"MIA {n} (static)" for n in cells.noises]
            mrows = []
            for m, b in t["bia_model"].items():
                mr = [m, _fmt(b)]
                for n in cells.noises:
                    r = t["model_rows"].get((m, n, ref, "static"))
                    mr.append(_fmt(r["mia"]) if r else "—")
                mrows.append(mr)
            L += [f"Per model at {ref:g} dB SPL:", ""] + _table(hdr, mrows) + [""]
        c = s["randomness"].get((task, "clean", "none", None))
        if c:
            L.append(f"Randomness of the clean audio: WW mean p {c['ww_mean_p']:.3f}, "
                     f"CS mean p {c['cs_mean_p']:.3f} over {c['n']} clips.")
            L.append("")
    if s["noise_randomness"]:
        L += ["## Randomness of the noises alone", ""]
        L += _table(["noise", "WW mean p", "WW share p<0.05", "CS mean p", "CS share p<0.05", "clips"],
                    [[n, f"{r['ww_mean_p']:.3f}", f"{r['ww_frac_below']:.2f}", f"{r['cs_mean_p']:.3f}",
                      f"{r['cs_frac_below']:.2f}", str(r["n"])]
                     for (n, _lv), r in sorted(s["noise_randomness"].items(),
                                               key=lambda kv: _noise_rank(kv[0][0]))])
        L.append("")
    if s["rtmr"]:
        L += ["## Randomness-to-mitigation relation (RTMR)", ""]
        L += _table(["adversary", "randomness score", "n", "Pearson r [95 % CI, Fisher z]", "p",
                     "Spearman ρ [95 % CI, bootstrap]", "p"],
                    [[a, RTMR_LABELS[t], str(r["n"]), _corr(r["pearson_r"], r["pearson_ci95"]),
                      _p(r["pearson_p"]), _corr(r["spearman_rho"], r["spearman_ci95"]),
                      _p(r["spearman_p"])] for (a, t), r in sorted(s["rtmr"].items())])
        L.append("")
    if s["frontier"]:
        L += ["## Privacy–utility–comfort frontier", "",
              "Mean relative reduction over the privacy tasks against SPF, per noise and level "
              f"(the comfort limit is {COMFORT_LIMIT_SPL:g} dB SPL).", ""]
        L += _table(["adversary", "noise", "level (dB SPL)", "mitigation", "SPF", "comfort"],
                    [[a, n, f"{lv:g}", f"{p['mitigation']:.3f}", f"{p['spf']:.3f}",
                      "above limit" if p["above_comfort"] else "ok"]
                     for (a, n, lv), p in sorted(s["frontier"].items(),
                                                 key=lambda kv: (kv[0][0], _noise_rank(kv[0][1]),
                                                                 kv[0][2]))])
        L.append("")
    L += ["## What the numbers support", ""]
    for rq, lines in statements(s).items():
        L += [f"### {RQ_TITLES[rq]}", ""] + [f"- {x}" if not x.startswith("  ") else f"  - {x.strip()}"
                                            for x in lines] + [""]
    if figures:
        L += ["## Figures", ""]
        for title, path in figures.items():
            L += [f"### {title}", "", f"![{title}]({path})", ""]
    return "\n".join(L)


def _noise_rank(n):
    return NOISE_ORDER.index(n) if n in NOISE_ORDER else len(NOISE_ORDER)


def _corr(v, ci):
    if v is None:
        return "—"
    return f"{v:.3f}" + ("" if ci[0] is None else f" [{ci[0]:.3f}, {ci[1]:.3f}]")


def _p(v):
    return "—" if v is None else f"{v:.3g}"


def write_report(out_dir: str, records: Iterable[dict], randomness: Iterable[dict] = (),
                 run_info: dict | None = None, examples: dict | None = None, seed: int = 0,
                 reference_level: float = COMFORT_LIMIT_SPL, plots: bool = True) -> str:
    """Writes report.md (and the PNG figures) into ``out_dir``; returns the report's path."""
    os.makedirs(out_dir, exist_ok=True)
    s = summarize(list(records), list(randomness), seed=seed, reference_level=reference_level)
    figures = {}
    if plots:
        from maskgan_jax import report_plots
        figures = report_plots.make_figures(s, out_dir, examples or {})
    text = markdown(s, run_info, figures)
    path = os.path.join(out_dir, "report.md")
    results.write_text_atomic(path, text)
    return path
