"""The report's opening: what was run and what it may claim (provenance, glossary, sources, scope),
and the MaskGAN's noise-quality gate."""
from __future__ import annotations

from typing import Sequence

from maskgan_jax.levels import COMFORT_LIMIT_SPL, DEFAULT_FULLSCALE_SPL
from maskgan_jax.vocab import LAYOUT_TITLES, TASK_LAYOUTS, TASK_TITLES

PAPER = ("O. Ibitoye, A. Matrawy, O. Shafiq, \"A GAN-based Approach for Mitigating Inference Attacks in "
         "Smart Home Environment\", arXiv:2011.06725, 2020 (\"the paper\"; its Figs. 3, 6–8, 9–11, 13 and "
         "14 are the figures numbered the same here)")
DATASETS = {
    "fma": "FMA (Defferrard et al., ISMIR 2017; fma_small + fma_metadata; audio under the tracks' "
           "Creative Commons licences, metadata CC BY 4.0) — music genre",
    "common_voice": "Common Voice (Ardila et al., LREC 2020; Mozilla; CC0) — speaker age, gender, accent",
    "ravdess": "RAVDESS (Livingstone & Russo, PLoS ONE 2018; Zenodo 10.5281/zenodo.1188976; "
               "CC BY-NC-SA 4.0) — speech emotion",
    "speech_commands": "Speech Commands v0.02 (Warden, arXiv:1804.03209, 2018; CC BY 4.0) — command "
                       "recognition (utility)",
}
GLOSSARY = [
    ("BIA", "baseline inference accuracy: the attacker's accuracy on clean (unmasked) audio"),
    ("MIA", "mitigated inference accuracy: the attacker's accuracy on masked audio"),
    ("reduction", "(BIA − MIA) / BIA: the share of the attack's accuracy the masking removes "
                  "(0: none, 1: all, negative: the attack got better)"),
    ("worst case", "per task, noise and level, the adversary and attacker family with the highest MIA; "
                   "its reduction is against the strongest clean attacker (highest BIA)"),
    ("SPF", "semantic preservation factor: command-recogniser accuracy on masked / clean commands; "
            "each adversary's SPF uses that adversary's own recogniser"),
    ("static / adaptive / denoise", "adversaries: trained on clean audio / trained on audio masked with "
                                    "the same noise / trained and tested through a denoising front end"),
    ("probe", "logistic regression on log-mel statistics: the floor every neural attacker should clear"),
    ("WW", "Wald–Wolfowitz runs test (median cutoff) on int16 PCM; p-value 0–1, high = looks random"),
    ("CS", "Cox–Stuart trend test on int16 PCM; p-value 0–1"),
    ("RTMR", "randomness-to-mitigation relation: correlation of the masked audio's randomness score "
             "with the worst-case reduction, over tasks, noises and levels"),
    ("95 % interval", "a bootstrap that resamples speakers / actors / artists (the fold groups) over "
                      "the pooled per-example test outcomes; paired comparisons resample the same groups"),
]


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


def task_title(task: str) -> str:
    """'speech emotion (RAVDESS layout)'."""
    layout = LAYOUT_TITLES.get(TASK_LAYOUTS.get(task, ""), "")
    return TASK_TITLES.get(task, task) + (f" ({layout} layout)" if layout else "")


# --------------------------------------------------------------------------- what was run

def scope(prov: dict | None) -> str:
    """One sentence naming the setup every statement is about."""
    if not prov:
        return "Scope: the cells in this folder (no provenance recorded)."
    data = "seeded synthetic stand-in corpora (not the real datasets)" if prov.get("synthetic") else \
        "the real datasets named above"
    fam = ", ".join(prov.get("families", [])) or "the attackers run"
    return (f"Scope: {data}; attackers {fam} ({prov.get('attack_config', '?')} sizes), "
            f"{prov.get('folds', '?')} folds × {len(prov.get('seeds', [])) or '?'} seed(s); noise levels "
            f"{', '.join(f'{lv:g}' for lv in prov.get('levels', []))} dB SPL against speech at "
            f"{prov.get('speech_spl', 60):g} dB SPL. Nothing here is a statement about other data or attackers.")


def provenance_lines(prov: dict | None) -> list[str]:
    """The report's opening: what was run and what it may claim."""
    if not prov:
        return ["No provenance was recorded for these cells.", ""]
    L = []
    if prov.get("synthetic"):
        L += ["> **Synthetic data.** Every corpus below is a seeded synthetic stand-in in the public "
              "layout (`maskgan_jax/data/synthetic*.py`), not the real dataset: the figures show how the "
              "pipeline behaves, not how masking fares on real speech and music.", ""]
    L += ["### Data", ""]
    rows = []
    for c in prov.get("corpora", []):
        origin = (f"synthetic ({c.get('generator', '?')}, seed {c.get('seed', '?')}, size {c.get('size', '?')})"
                  if c.get("synthetic") else f"real, `{c.get('root', '?')}`")
        rows.append([c["task"], task_title(c["task"]), origin, str(c.get("items", "?")), str(c.get("broken", 0))])
    L += table(["task", "what", "corpus", "clips", "files left out"], rows) + [""]
    g = prov.get("gan")
    if g:
        L += ["### MaskGAN", "", f"- {g.get('summary', '')}"]
        if g.get("quality"):
            q = g["quality"]
            L.append(f"- Noise-quality gate: **{'passed' if q.get('passed') else 'FAILED'}** "
                     f"({q.get('line', '')}); see *MaskGAN quality* below.")
        L.append("")
    L += ["### Attackers and levels", ""]
    for line in prov.get("attackers", []):
        L.append(f"- {line}")
    L += [f"- Cross-validation: {prov.get('folds', '?')} folds grouped by speaker / actor / artist × seeds "
          f"{prov.get('seeds', [])}.",
          f"- Levels: masking noise at {', '.join(f'{lv:g}' for lv in prov.get('levels', []))} dB SPL against "
          f"speech at {prov.get('speech_spl', 60):g} dB SPL (SNR = speech − noise); comfort limit "
          f"{COMFORT_LIMIT_SPL:g} dB SPL; playback calibration 0 dBFS RMS = "
          f"{prov.get('fullscale_spl', DEFAULT_FULLSCALE_SPL):g} dB SPL.",
          f"- Adversaries: {', '.join(prov.get('adversaries', []))}.", ""]
    return L


def glossary_lines() -> list[str]:
    """The glossary and the citations."""
    L = ["### Glossary", ""] + [f"- **{k}**: {v}." for k, v in GLOSSARY] + [""]
    L += ["### Sources", "", f"- {PAPER}.",
          "- WaveGAN: C. Donahue, J. McAuley, M. Puckette, \"Adversarial Audio Synthesis\", ICLR 2019."]
    L += [f"- {v}." for v in DATASETS.values()] + [""]
    return L


# --------------------------------------------------------------------------- statements

def gate_failures(q: dict) -> str:
    """'measure value vs target' for each failed measure of a gate verdict."""
    m = (q.get("gate") or {}).get("measures", {})
    return "; ".join(f"{k} {m[k]['value']:.3g} vs target {m[k]['target']:.3g}" for k in (q.get("gate") or {})
                     .get("failed", []) if k in m) or q.get("line", "failed")


GATE_LABELS = {"flatness": "spectral flatness (Welch)", "octave_deviation": "octave-band level deviation (dB)",
               "clip_correlation": "mean |correlation| between clips", "spectral_correlation":
               "mean |correlation| between clips' log spectra", "ks": "amplitude distribution, KS distance",
               "runs": "runs-test rejection rate", "cox_stuart": "Cox–Stuart rejection rate",
               "two_sample_auc": "two-sample classifier AUC (held out)"}


def gan_quality_lines(prov: dict | None) -> list[str]:
    """The *MaskGAN quality* section: the gate's figures for the study's generator."""
    q = ((prov or {}).get("gan") or {}).get("quality")
    if not q or not q.get("gate"):
        return []
    g = q["gate"]
    L = ["## MaskGAN quality", "",
         f"The generator's noise against the white noise it imitates, {g['clips'][0]} clips of {g['samples']} "
         f"samples each, checked when the study loaded it: **{'passed' if q['passed'] else 'FAILED'}**. "
         "A noise passes when every measure is within its threshold of the target's value.", ""]
    rows = []
    for k, m in g["measures"].items():
        extra = f" [{m['ci95'][0]:.2f}, {m['ci95'][1]:.2f}]" if m.get("ci95") else ""
        rows.append([GATE_LABELS.get(k, k), f"{m['value']:.3g}{extra}", f"{m['target']:.3g}", f"{m['threshold']:g}",
                     m.get("rule", ""), "pass" if m["pass"] else "**FAIL**"])
    L += table(["measure", "MaskGAN", "target", "threshold", "rule", "verdict"], rows) + [""]
    ex = q.get("export_gate")
    if ex:
        L += [f"When it was exported, on {ex['clips'][0]} clips with the two-sample classifier: "
              f"{'passed' if ex['passed'] else 'failed (' + ', '.join(ex['failed']) + ')'}.", ""]
    L += ["The runs and Cox–Stuart tests judge one clip at a time: a single repeated waveform, or a tonal clip, "
          "can pass them, so the gate also measures diversity across clips and trains a classifier to tell the "
          "two noises apart.", ""]
    return L
