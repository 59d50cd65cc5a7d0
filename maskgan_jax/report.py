"""The study's report (the text half): plain statements per research question, tables, report.md.

The numbers come from `report_summary.summarize` over whatever cell and randomness records
exist; the figures from `report_plots`. Every statement is computed from the numbers.
"""
from __future__ import annotations

import math
import os
from typing import Iterable, Sequence

from maskgan_jax import metrics, report_plots, results
from maskgan_jax.levels import COMFORT_LIMIT_SPL
from maskgan_jax.report_summary import (RTMR_LABELS, SPF_OK, RandomnessKey, RowKey, _diff,
                                        summarize)
from maskgan_jax.vocab import (LAYOUT_TITLES, PRIVACY_TASKS, TASK_LAYOUTS, TASK_TITLES, UTILITY_TASK,
                               adversary_rank, noise_rank)

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
                row = t["rows"].get(RowKey(noise, ref, adv))
                if row is None or row["reduction"] is None:
                    continue
                parts.append(f"{noise} {_fmt(row['reduction'], 2)}")
            if not parts:
                continue
            rq1.append(f"{task}, {adv} adversary, {ref:g} dB SPL: BIA {_fmt(t['bia'], 2)}; relative "
                       f"reduction (BIA−MIA)/BIA per noise: " + "; ".join(parts) + ".")
            gan, white = t["rows"].get(RowKey("gan", ref, adv)), t["rows"].get(RowKey("white", ref, adv))
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
            a, b = st.get(RowKey(noise, ref, "static")), st.get(RowKey(noise, ref, "adaptive"))
            c = st.get(RowKey(noise, ref, "denoise"))
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
            parts = [f"{n} {_fmt(s['spf'][RowKey(n, ref, adv)], 2)}" for n in cells.noises
                     if RowKey(n, ref, adv) in s["spf"]]
            if parts:
                rq2.append(f"SPF (command accuracy masked / clean), {adv} recogniser, {ref:g} dB SPL: "
                           + "; ".join(parts) + ".")
        ut = s["tasks"][UTILITY_TASK]["rows"]
        g, w = ut.get(RowKey("gan", ref, "static")), ut.get(RowKey("white", ref, "static"))
        if g and w:
            v = _compare(_diff(g["folds"], w["folds"]))
            txt = {"higher": "GAN noise preserves speech commands better than white noise",
                   "lower": "GAN noise preserves speech commands worse than white noise",
                   "same": "GAN and white noise preserve speech commands equally (no clear difference)",
                   "undetermined": "GAN and white noise cannot be told apart on utility"}[v]
            rq2.append(f"  → {txt} at {ref:g} dB SPL.")
        best = [(k, p) for k, p in s["frontier"].items()
                if k.adversary == "static" and not p["above_comfort"] and p["spf"] >= SPF_OK]
        if best:
            (noise, lv, adv), p = max(best, key=lambda kp: kp[1]["mitigation"])
            rq2.append(f"  → Best privacy at SPF ≥ {SPF_OK} within the {COMFORT_LIMIT_SPL:g} dB comfort "
                       f"limit (static adversary): {noise} noise at {lv:g} dB SPL, mean reduction "
                       f"{p['mitigation']:.2f} with SPF {p['spf']:.2f}.")
        elif s["frontier"]:
            rq2.append(f"  → No noise within the comfort limit keeps SPF ≥ {SPF_OK} while masking.")
    else:
        rq2.append("No speech-command cells: SPF not measured.")

    for task in s["tasks"]:
        c = s["randomness"].get(RandomnessKey(task, "clean", "none", None))
        for test, name in (("ww", "Wald–Wolfowitz"), ("cs", "Cox–Stuart")):
            vals = []
            if c:
                vals.append(f"clean {c[f'{test}_mean_p']:.3f}")
            for noise in cells.noises:
                r = s["randomness"].get(RandomnessKey(task, "masked", noise, ref))
                if r:
                    vals.append(f"{noise}-masked {r[f'{test}_mean_p']:.3f}")
            if vals:
                rq3.append(f"{task}, {name} mean p at {ref:g} dB SPL: " + ", ".join(vals) + ".")
        g = s["randomness"].get(RandomnessKey(task, "masked", "gan", ref))
        w = s["randomness"].get(RandomnessKey(task, "masked", "white", ref))
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
        layout = LAYOUT_TITLES.get(TASK_LAYOUTS.get(task, ""), "")
        L += [f"## {task}: {TASK_TITLES.get(task, task)}" + (f" ({layout} layout)" if layout else ""), ""]
        L.append(f"BIA (clean audio, pooled over models {', '.join(cells.models)}): {_fmt(t['bia'])}. "
                 "Each row's reduction and SPF pair its folds with the clean folds of the same "
                 "models and seeds.")
        L.append("")
        rows = []
        for (noise, lv, adv), row in sorted(t["rows"].items(),
                                            key=lambda kv: (noise_rank(kv[0].noise), kv[0].level,
                                                            adversary_rank(kv[0].adversary))):
            rr = s["randomness"].get(RandomnessKey(task, "masked", noise, lv))
            spf = s["spf"].get(RowKey(noise, lv, adv))
            mark = " (above comfort)" if lv > COMFORT_LIMIT_SPL else ""
            models = ",".join(sorted({k.model for k in row["folds"]}))
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
                    r = t["model_rows"].get((m, RowKey(n, ref, "static")))
                    mr.append(_fmt(r["mia"]) if r else "—")
                mrows.append(mr)
            L += [f"Per model at {ref:g} dB SPL:", ""] + _table(hdr, mrows) + [""]
        c = s["randomness"].get(RandomnessKey(task, "clean", "none", None))
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
                                               key=lambda kv: noise_rank(kv[0][0]))])
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
                     for (n, lv, a), p in sorted(s["frontier"].items(),
                                                 key=lambda kv: (adversary_rank(kv[0].adversary),
                                                                 noise_rank(kv[0].noise), kv[0].level))])
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
        figures = report_plots.make_figures(s, out_dir, examples or {})
    text = markdown(s, run_info, figures)
    path = os.path.join(out_dir, "report.md")
    results.write_text_atomic(path, text)
    return path
