"""The study's report (the text half): what was run, the numbers, plain statements, report.md.

The numbers come from `report_summary.summarize` over whatever cell and randomness records
exist; the figures from `report_plots`; what was run, the glossary and the MaskGAN's gate from
`report_setup` over the study's provenance facts.
Every statement is computed from the numbers and scoped to the setup that produced them;
a statement about a statistic that is undefined says why instead.
"""
from __future__ import annotations

import math
import os
from typing import Iterable, Sequence

from maskgan_jax import metrics, report_plots, results
from maskgan_jax.levels import COMFORT_LIMIT_SPL
from maskgan_jax.report_setup import (gan_quality_lines, gate_failures, glossary_lines, provenance_lines, scope,
                                      table, task_title)
from maskgan_jax.report_summary import (RTMR_LABELS, SPF_OK, RandomnessKey, RowKey, summarize, verdict)
from maskgan_jax.vocab import (NOISE_TITLES, OPTIONAL_STUDY_NOISES, PRIVACY_TASKS, UTILITY_TASK, adversary_rank,
                               noise_rank)

WW_ZERO = 1e-6   # mean runs-test p-values below this are "0" for every practical purpose
RQ_TITLES = {
    "RQ1": "RQ1 — Does masking noise defeat the inference attacks, and is GAN noise better than "
           "white noise at the same level?",
    "RQ2": "RQ2 — Does the masked audio keep its utility (speech commands)?",
    "RQ3": "RQ3 — Is GAN noise more random, and does randomness predict mitigation?",
}


def _fmt(e, digits: int = 3) -> str:
    if e is None:
        return "—"
    if isinstance(e, metrics.Estimate):
        lo, hi = e.ci95
        if lo is None:
            return f"{e.value:.{digits}f}"
        return f"{e.value:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"
    return f"{float(e):.{digits}f}"


def _who(key) -> str:
    """'adaptive CRNN' for a cell key."""
    return f"{key.adversary} {key.model.upper() if key.model != 'probe' else 'probe'}"


def statements(s: dict, prov: dict | None = None) -> dict:
    """Plain sentences per research question, each computed from the numbers and scoped."""
    cells, ref = s["cells"], s["ref_level"]
    rq = {"RQ1": [], "RQ2": [], "RQ3": []}
    if ref is None:
        return {"RQ1": ["No masked cells exist yet."], "RQ2": [], "RQ3": []}
    gan_q = (prov or {}).get("gan", {}).get("quality", {})
    gan_ok = gan_q.get("passed", True)
    for task in [t for t in PRIVACY_TASKS if t in s["tasks"]]:
        t = s["tasks"][task]
        for ch in cells.channels:
            parts = []
            for noise in cells.noises:
                w = t["worst"].get((noise, ref, ch))
                if w is not None:
                    parts.append(f"{noise} {_fmt(w['reduction'], 2)} (worst case: {_who(w['key'])})")
            if parts:
                rq["RQ1"].append(f"{task}, {ref:g} dB SPL, {ch} channel, worst case over adversaries and families: "
                                 "relative reduction per noise: " + "; ".join(parts) + ".")
        d = s["comparisons"].get((task, "gan", ref, "digital"))
        if d is not None:
            if not gan_ok:
                rq["RQ1"].append(f"  → {task}: no conclusion about GAN noise: the MaskGAN did not converge to "
                                 f"the noise it imitates — it failed its quality gate ({gate_failures(gan_q)}; "
                                 "see *MaskGAN quality*), so its noise is not the paper's.")
            else:
                txt = {"higher": "GAN noise masks better than white noise",
                       "lower": "GAN noise masks worse than white noise",
                       "same": "GAN noise is no better than white noise (the interval includes 0)",
                       "undetermined": "GAN and white noise cannot be told apart (no interval)"}[verdict(d)]
                rq["RQ1"].append(f"  → {task}: {txt} at {ref:g} dB SPL against the strongest adversary "
                                 f"(paired worst-case accuracy white − GAN {_fmt(d, 3)}).")
        for noise in (n for n in cells.noises if n in OPTIONAL_STUDY_NOISES):
            d = s["comparisons"].get((task, noise, ref, "digital"))
            if d is not None:
                name = NOISE_TITLES.get(noise, noise)
                txt = {"higher": "masks better than white noise", "lower": "masks worse than white noise",
                       "same": "is no better than white noise (the interval includes 0)",
                       "undetermined": "cannot be told apart from white noise (no interval)"}[verdict(d)]
                rq["RQ1"].append(f"  → {task}: {name} {txt} at {ref:g} dB SPL against the strongest adversary "
                                 f"(paired worst-case accuracy white − {noise} {_fmt(d, 3)}).")
    if s["spf"]:
        for adv in cells.adversaries:
            parts = [f"{n} {_fmt(s['spf'][RowKey(n, ref, adv)]['spf'], 2)}" for n in cells.noises
                     if RowKey(n, ref, adv) in s["spf"]]
            if parts:
                rq["RQ2"].append(f"SPF, {adv} command recogniser, {ref:g} dB SPL: " + "; ".join(parts) + ".")
        ok = [(k, p) for k, p in s["frontier"].items()
              if not p["above_comfort"] and s["spf"][k]["spf"].ci95[0] is not None
              and s["spf"][k]["spf"].low >= SPF_OK and p["mitigation"] > 0]
        effective = [(k, p) for k, p in ok if _reduction_excludes_zero(s, k)]
        if effective:
            k, p = max(effective, key=lambda kp: kp[1]["mitigation"])
            rq["RQ2"].append(f"  → Within the {COMFORT_LIMIT_SPL:g} dB comfort limit, keeping SPF ≥ {SPF_OK} "
                             f"(lower bound) with a reduction whose interval excludes 0 on every privacy task: "
                             f"{k.noise} at {k.level:g} dB SPL ({k.channel} channel) against the {k.adversary} "
                             f"adversary (mean reduction {p['mitigation']:.2f}, SPF {p['spf']:.2f}).")
        elif s["frontier"]:
            rq["RQ2"].append(f"  → No noise within the comfort limit keeps SPF ≥ {SPF_OK} while reducing every "
                             "privacy task's accuracy by an amount whose interval excludes 0: no setting is "
                             "recommended.")
    else:
        rq["RQ2"].append("No speech-command cells: SPF not measured.")
    rq["RQ3"] += _randomness_statements(s)
    return rq


def _reduction_excludes_zero(s: dict, k: RowKey) -> bool:
    for task in PRIVACY_TASKS:
        t = s["tasks"].get(task)
        if t is None:
            continue
        reds = [row["reduction"] for key, row in t["rows"].items()
                if (key.noise, key.level, key.adversary, key.channel) == tuple(k)]
        if not reds or not all(r is not None and r.ci95[0] is not None and r.low > 0 for r in reds):
            return False
    return True


def _randomness_statements(s: dict) -> list[str]:
    cells, ref = s["cells"], s["ref_level"]
    out = []
    zero = [k for k, r in s["randomness"].items() if r["ww_mean_p"] < WW_ZERO]
    if zero and len(zero) == len(s["randomness"]):
        out.append("Wald–Wolfowitz mean p-values are below 1e-6 for every set of clips, clean and "
                   "masked: audio sampled at 16 kHz is far from a sequence of independent samples (neighbouring "
                   "samples are strongly correlated, so there are far fewer runs than chance predicts), so the "
                   "p-value cannot rank noises; the mean |z| of the runs test still does.")
    for task in s["tasks"]:
        c = s["randomness"].get(RandomnessKey(task, "clean", "none", None))
        vals = []
        if c:
            vals.append(f"clean {c['cs_mean_p']:.3f}")
        for noise in cells.noises:
            r = s["randomness"].get(RandomnessKey(task, "masked", noise, ref))
            if r:
                vals.append(f"{noise}-masked {r['cs_mean_p']:.3f}")
        if vals:
            out.append(f"{task}, Cox–Stuart mean p at {ref:g} dB SPL: " + ", ".join(vals) + ".")
    nw = [r for (n, _lv), r in s["noise_randomness"].items() if n == "white"]
    ng = [r for (n, _lv), r in s["noise_randomness"].items() if n == "gan"]
    if nw and ng:
        w, g = nw[0], ng[0]
        out.append(f"The noises alone: WW share of clips rejected at 5 % — white {w['ww_frac_below']:.2f}, GAN "
                   f"{g['ww_frac_below']:.2f}; CS — white {w['cs_frac_below']:.2f}, GAN {g['cs_frac_below']:.2f}. "
                   "Both tests look at the order of samples around their median and at trends; a tonal or "
                   "repeated waveform can pass them, so they say little about whether a noise is "
                   "random in the sense that matters for masking (see *MaskGAN quality*).")
    for (adv, test), r in sorted(s["rtmr"].items()):
        if r["pearson_r"] is None:
            why = "every point has the same score (e.g. all p-values 0)" if r.get("constant") else \
                "the reductions or the scores do not vary"
            out.append(f"RTMR, {adv} adversary, {RTMR_LABELS[test]}: undefined, because {why}.")
            continue
        lo, hi = r["pearson_ci95"]
        if lo is None:
            word = f"too few points (n = {r['n']}) for an interval"
        elif lo > 0:
            word = "more randomness goes with more mitigation"
        elif hi < 0:
            word = "more randomness goes with less mitigation"
        else:
            word = "no evidence that randomness predicts mitigation (the interval includes 0)"
        ci = "" if lo is None else f" [{lo:.2f}, {hi:.2f}]"
        out.append(f"RTMR, {adv} adversary, {RTMR_LABELS[test]}: Pearson r = {r['pearson_r']:.2f}{ci}, "
                   f"n = {r['n']}: {word}.")
    return out


# --------------------------------------------------------------------------- markdown

def _task_tables(s: dict, task: str) -> list[str]:
    cells, t = s["cells"], s["tasks"][task]
    L = [f"## {task}: {task_title(task)}", ""]
    if t["bia"]:
        chance = _chance(cells, task)
        L += ["Clean accuracy (BIA) per attacker family" + (f"; the best constant guess scores {chance:.3f}"
                                                               if chance is not None else "") + ":", ""]
        L += table(["family", "seed", "channel", "BIA [95 % CI]"],
                    [[m, str(sd), ch, _fmt(e)] for (m, sd, ch), e in sorted(t["bia"].items())]) + [""]
    if t["worst"]:
        L += ["Privacy against the strongest adversary (worst case over the adversaries and families run):", ""]
        rows = []
        for (noise, level, ch), w in sorted(t["worst"].items(),
                                            key=lambda kv: (kv[0][2] != "digital", noise_rank(kv[0][0]), kv[0][1])):
            spf = s["spf"].get(RowKey(noise, level, w["key"].adversary, ch))
            rows.append([noise, f"{level:g}" + (" (above comfort)" if level > COMFORT_LIMIT_SPL else ""), ch,
                         _who(w["key"]), _fmt(w["mia"]), _fmt(w["reduction"]),
                         "—" if spf is None else f"{_fmt(spf['spf'], 2)} ({spf['model']})"])
        L += table(["noise", "level (dB SPL)", "channel", "worst case", "MIA", "reduction vs strongest clean",
                     "SPF of that adversary (commands)"], rows) + [""]
    if t["rows"]:
        L += ["Every adversary and family:", ""]
        rows = []
        for key, row in sorted(t["rows"].items(), key=lambda kv: (kv[0].channel != "digital", noise_rank(kv[0].noise),
                                                                   kv[0].level, adversary_rank(kv[0].adversary),
                                                                   kv[0].model, kv[0].seed)):
            rr = s["randomness"].get(RandomnessKey(task, "masked", key.noise, key.level))
            rows.append([key.noise, f"{key.level:g}", key.channel, key.adversary, key.model, str(key.seed),
                         _fmt(row["mia"]), _fmt(row["reduction"]),
                         "—" if rr is None or key.channel != "digital" else f"{rr['cs_mean_p']:.3f}"])
        L += table(["noise", "level (dB SPL)", "channel", "adversary", "family", "seed", "MIA", "reduction",
                     "CS mean p (masked)"], rows) + [""]
    if task == UTILITY_TASK and t["rows"]:
        L += ["On this task lower accuracy under masking is a loss of utility, not a gain in privacy.", ""]
    return L


def _chance(cells, task: str) -> float | None:
    vals = [r.get("chance_accuracy") for k, r in cells.by_key.items() if k.task == task]
    vals = [v for v in vals if v is not None and math.isfinite(v)]
    return max(vals) if vals else None


def markdown(s: dict, run_info: dict | None = None, figures: dict | None = None,
             sections: Sequence[str] = ()) -> str:
    """The report's text: what was run, glossary, per-task tables, utility, randomness, RTMR,
    frontier, statements, extra sections, figures, run facts."""
    run_info = run_info or {}
    prov = run_info.get("provenance")
    figures = figures or {}
    L = ["# MaskGAN study report", "", "## What was run", ""]
    L += provenance_lines(prov)
    L += glossary_lines()
    if run_info.get("missing"):
        L += [f"**Missing**: {run_info['missing']}", ""]
    L += [scope(prov), ""]
    for task in s["tasks"]:
        L += _task_tables(s, task)
    if s["spf"]:
        L += ["## Utility: SPF per adversary", "",
              "Each adversary's command recogniser (trained like that adversary), masked / clean accuracy on "
              "the same commands.", ""]
        L += table(["noise", "level (dB SPL)", "channel", "adversary", "recogniser family", "SPF [95 % CI]"],
                    [[k.noise, f"{k.level:g}", k.channel, k.adversary, v["model"], _fmt(v["spf"])]
                     for k, v in sorted(s["spf"].items(), key=lambda kv: (kv[0].channel != "digital",
                                                                           noise_rank(kv[0].noise), kv[0].level,
                                                                           adversary_rank(kv[0].adversary)))])
        L.append("")
    if s["invert"]:
        L += ["## The adversary that knows the generator (invert)", "",
              "It searches the MaskGAN's latent for the noise that best explains each recording and subtracts it "
              "(the clips its latent can reach: a family with as many dimensions as the latent). On white noise, "
              "which the generator did not make, the same search is the control. Noise removed: 10·log10 of the "
              "masking noise's energy in the recording over the error left after the subtraction (the study knows "
              "the clean clip; > 0: the noise went, < 0: the subtraction added error); recovered: the invert "
              "adversary's accuracy minus the static adversary's on the same clips.", ""]
        L += table(["task", "noise", "level (dB SPL)", "family", "noise removed (dB)", "MIA (invert)",
                     "recovered over static"],
                    [[k.task, k.noise, f"{k.level:g}", k.model,
                      "—" if v.get("noise_reduction_db") is None else f"{v['noise_reduction_db']:.1f}",
                      _fmt(v["mia"]), _fmt(v["recovered"])]
                     for k, v in sorted(s["invert"].items(), key=lambda kv: (kv[0].task, noise_rank(kv[0].noise),
                                                                             kv[0].level, kv[0].model))])
        L.append("")
    if s["utility"]:
        L += ["## Utility as heard: STOI and PESQ", "",
              "Speech commands as a person beside the masker hears them (digital: the mix itself; room: the "
              "listener's position, against the listener's reverberant clean speech). STOI and extended STOI "
              "0–1 (1 = as intelligible as clean), wideband PESQ 1.0–4.64 (4.64 = no degradation); 95 % "
              "intervals resample speakers.", ""]
        L += table(["channel", "noise", "level (dB SPL)", "STOI", "extended STOI", "PESQ (wideband)", "clips"],
                    [[ch, n, f"{lv:g}", _est_fmt(r["stoi"]), _est_fmt(r["estoi"]), _est_fmt(r["pesq_wb"], 2),
                      f"{r['n']}" + (f" ({r['failures']} not scored)" if r.get("failures") else "")]
                     for (ch, n, lv), r in sorted(s["utility"].items(),
                                                  key=lambda kv: (kv[0][0] != "digital", noise_rank(kv[0][1]),
                                                                  kv[0][2]))])
        L.append("")
    L += gan_quality_lines(prov)
    if s["randomness"] or s["noise_randomness"]:
        L += ["## Randomness", ""]
        rows = []
        for k, r in sorted(s["randomness"].items(), key=lambda kv: (kv[0].task, kv[0].source != "clean",
                                                                     noise_rank(kv[0].noise), kv[0].level or 0)):
            rows.append([k.task, "clean" if k.source == "clean" else f"{k.noise} at {k.level:g} dB SPL",
                         f"{r['ww_mean_p']:.3f}", f"{r.get('ww_mean_abs_z', float('nan')):.1f}",
                         f"{r['cs_mean_p']:.3f}", f"{r['cs_frac_below']:.2f}", str(r["n"])])
        for (n, lv), r in sorted(s["noise_randomness"].items(), key=lambda kv: noise_rank(kv[0][0])):
            rows.append(["(noise alone)", f"{n} at {lv:g} dB SPL", f"{r['ww_mean_p']:.3f}",
                         f"{r.get('ww_mean_abs_z', float('nan')):.1f}", f"{r['cs_mean_p']:.3f}",
                         f"{r['cs_frac_below']:.2f}", str(r["n"])])
        L += table(["task", "audio", "WW mean p", "WW mean |z|", "CS mean p", "CS share p<0.05", "clips"], rows)
        L.append("")
    if s["rtmr"]:
        L += ["## Randomness-to-mitigation relation (RTMR)", ""]
        L += table(["adversary", "randomness score", "n", "Pearson r [95 % CI]", "Spearman ρ [95 % CI]"],
                    [[a, RTMR_LABELS[t], str(r["n"]),
                      "undefined" if r["pearson_r"] is None else _corr(r["pearson_r"], r["pearson_ci95"]),
                      "undefined" if r["spearman_rho"] is None else _corr(r["spearman_rho"], r["spearman_ci95"])]
                     for (a, t), r in sorted(s["rtmr"].items())])
        L.append("")
    if s["frontier"]:
        L += ["## Privacy–utility–comfort frontier", "",
              "Mean worst-family reduction over the privacy tasks against the same adversary's SPF, per noise "
              f"and level (comfort limit {COMFORT_LIMIT_SPL:g} dB SPL).", ""]
        L += table(["adversary", "channel", "noise", "level (dB SPL)", "mitigation", "SPF", "STOI", "comfort"],
                    [[k.adversary, k.channel, k.noise, f"{k.level:g}", f"{p['mitigation']:.3f}", f"{p['spf']:.3f}",
                      "—" if p.get("stoi") is None else f"{p['stoi']:.3f}",
                      "above limit" if p["above_comfort"] else "ok"]
                     for k, p in sorted(s["frontier"].items(), key=lambda kv: (adversary_rank(kv[0].adversary),
                                                                                kv[0].channel != "digital",
                                                                                noise_rank(kv[0].noise),
                                                                                kv[0].level))])
        L.append("")
    L += list(sections)
    L += ["## What the numbers support", "", scope(prov), ""]
    for rq, lines in statements(s, prov).items():
        L += [f"### {RQ_TITLES[rq]}", ""] + [f"- {x}" if not x.startswith("  ") else f"  - {x.strip()}"
                                            for x in lines] + [""]
    if figures:
        L += ["## Figures", ""]
        for title, path in figures.items():
            L += [f"### {title}", "", f"![{title}]({path})", ""]
    L += _run_lines(run_info)
    return "\n".join(L)


def _run_lines(run_info: dict) -> list[str]:
    if not run_info:
        return []
    L = ["## Run", ""]
    for k in ("config_name", "config", "cells_done", "cells_total", "seeds", "devices", "worker", "host",
              "platform", "started", "finished"):
        if k in run_info:
            L.append(f"- **{k}**: {run_info[k]}")
    if run_info.get("stages"):
        L += ["", "Wall time of each stage, from the run that computed it:", ""]
        L += table(["stage", "wall time (s)", "status", "computed by the run started"],
                    [[n, f"{v.get('wall_s', 0):.1f}", v.get("status", ""), v.get("run_started", "")]
                     for n, v in run_info["stages"].items()])
    if run_info.get("versions"):
        L += ["", "Versions: " + ", ".join(f"{k} {v}" for k, v in run_info["versions"].items())]
    L.append("")
    return L


def _est_fmt(d: dict | None, digits: int = 3) -> str:
    if not d or d.get("value") is None:
        return "—"
    lo, hi = d["ci95"]
    return f"{d['value']:.{digits}f}" + ("" if lo is None else f" [{lo:.{digits}f}, {hi:.{digits}f}]")


def _corr(v, ci):
    if v is None:
        return "—"
    return f"{v:.3f}" + ("" if ci[0] is None else f" [{ci[0]:.3f}, {ci[1]:.3f}]")


def write_report(out_dir: str, records: Iterable[dict], randomness: Iterable[dict] = (),
                 run_info: dict | None = None, examples: dict | None = None, seed: int = 0,
                 reference_level: float = COMFORT_LIMIT_SPL, plots: bool = True,
                 sections: Sequence[str] = ()) -> str:
    """Writes report.md (and the PNG figures) into ``out_dir``; returns the report's path."""
    os.makedirs(out_dir, exist_ok=True)
    s = summarize(list(records), list(randomness), seed=seed, reference_level=reference_level)
    figures = report_plots.make_figures(s, out_dir, examples or {}) if plots else {}
    text = markdown(s, run_info, figures, sections)
    path = os.path.join(out_dir, "report.md")
    results.write_text_atomic(path, text)
    return path
