"""The report's PNG figures (matplotlib, Agg): every axis labelled with units, every title says what."""
from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from maskgan_jax.features import log_mel_spectrogram  # noqa: E402
from maskgan_jax.levels import COMFORT_LIMIT_SPL  # noqa: E402
from maskgan_jax.report_summary import RTMR_LABELS, RandomnessKey, RtmrKey  # noqa: E402
from maskgan_jax.vocab import (NOISE_TITLES, PRIVACY_TASKS, SAMPLE_RATE, UTILITY_TASK,  # noqa: E402
                               adversary_rank, noise_rank)

COLORS = {"clean": "#4d4d4d", "none": "#4d4d4d", "white": "#1f77b4", "pink": "#e377c2",
          "brown": "#8c564b", "gan": "#d62728"}
SR = SAMPLE_RATE


def _err(est):
    """(value, [[lower err], [upper err]]) for an Estimate, zero-width when undefined."""
    lo, hi = est.ci95
    v = est.value
    return v, (0.0 if lo is None else v - lo, 0.0 if hi is None else hi - v)


def _save(fig, out_dir, name) -> str:
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, name), dpi=110)
    plt.close(fig)
    return name


def fig_mel(examples: dict, out_dir: str):
    """Fig. 3: log-mel spectrograms of a clean clip, white noise and GAN noise."""
    names = [n for n in ("clean", "white", "gan") if n in examples]
    if not names:
        return None
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.4), squeeze=False)
    hop = 256
    n = min(np.asarray(examples[k]).shape[-1] for k in names)
    waves = np.stack([np.asarray(examples[k], np.float32)[:n] for k in names])
    mels = np.asarray(log_mel_spectrogram(waves, hop_length=hop))   # one batched call
    for ax, name, mel in zip(axes[0], names, mels):
        dur = n / SR
        im = ax.imshow(mel, origin="lower", aspect="auto", cmap="magma",
                       extent=(0, dur, 0, mel.shape[0]), vmin=mel.max() - 80, vmax=mel.max())
        ax.set_title("clean clip" if name == "clean" else NOISE_TITLES[name])
        ax.set_xlabel("time (s)")
        ax.set_ylabel("mel band (of 128, 0–8 kHz)")
        fig.colorbar(im, ax=ax, label="power (dB)")
    fig.suptitle("Log-mel spectrograms (Fig. 3)")
    return _save(fig, out_dir, "fig03_mel_spectrograms.png")


def fig_randomness(s: dict, task: str, out_dir: str):
    """Figs. 6–8: mean Wald–Wolfowitz and Cox–Stuart p-values of clean and masked audio."""
    ref = s["ref_level"]
    bars = []
    c = s["randomness"].get(RandomnessKey(task, "clean", "none", None))
    if c:
        bars.append(("clean", c))
    noises = sorted({k.noise for k in s["randomness"] if k.task == task and k.source == "masked"},
                    key=noise_rank)
    for n in noises:
        r = s["randomness"].get(RandomnessKey(task, "masked", n, ref))
        if r:
            bars.append((f"{n}-masked", r))
    if not bars:
        return None
    has_z = all("ww_mean_abs_z" in b[1] for b in bars)
    # Audio's runs-test p-values are all 0 (samples are far from independent): that panel would be
    # empty, so it is left out and the |z| panel says how far from random each set is.
    tests = [(t, n) for t, n in (("ww", "Wald–Wolfowitz runs test"), ("cs", "Cox–Stuart trend test"))
             if not (t == "ww" and has_z and all(b[1]["ww_mean_p"] < 1e-6 for b in bars))]
    panels = len(tests) + int(has_z)
    fig, axes = plt.subplots(1, panels, figsize=(4.5 * panels, 3.6), squeeze=False)
    axes = axes[0]
    labels = [b[0] for b in bars]
    colors = [COLORS.get(b[0].split("-")[0], "gray") for b in bars]
    for ax, (test, name) in zip(axes, tests):
        vals = [b[1][f"{test}_mean_p"] for b in bars]
        errs = np.array([[v - (b[1][f"{test}_ci95"][0] if b[1][f"{test}_ci95"][0] is not None else v),
                          (b[1][f"{test}_ci95"][1] if b[1][f"{test}_ci95"][1] is not None else v) - v]
                         for v, b in zip(vals, bars)]).T
        ax.bar(range(len(bars)), vals, yerr=errs, color=colors, capsize=3)
        ax.set_xticks(range(len(bars)), labels, rotation=30, ha="right")
        ax.set_ylim(0, 1)
        ax.set_ylabel("mean p-value (0–1)")
        ax.set_xlabel(f"audio (noise at {ref:g} dB SPL)" if ref is not None else "audio")
        ax.set_title(name)
    if has_z:
        # Audio's runs-test p-values saturate at 0; |z| still ranks how far from random it is.
        ax = axes[-1]
        ax.bar(range(len(bars)), [b[1]["ww_mean_abs_z"] for b in bars], color=colors)
        ax.set_xticks(range(len(bars)), labels, rotation=30, ha="right")
        ax.set_yscale("log")
        ax.set_ylabel("mean |z| of the runs test (log scale)")
        ax.set_xlabel(f"audio (noise at {ref:g} dB SPL)" if ref is not None else "audio")
        ax.set_title("Runs test |z| (0 = random, larger = less)")
    fig.suptitle(f"Randomness of {task} audio, int16 PCM (Figs. 6–8)")
    return _save(fig, out_dir, f"fig06-08_randomness_{task}.png")


def fig_accuracy(s: dict, task: str, out_dir: str):
    """Figs. 9–11: BIA and MIA per attacker family at the reference level, one panel per adversary,
    with the best constant guess drawn as the chance line; only the families that ran."""
    cells, ref = s["cells"], s["ref_level"]
    t = s["tasks"].get(task)
    if t is None or not t["bia"]:
        return None
    advs = [a for a in cells.adversaries if any(k.adversary == a and k.level == ref for k in t["rows"])] or ["static"]
    models = sorted({m for m, _, ch in t["bia"] if ch == "digital"})
    fig, axes = plt.subplots(1, len(advs), figsize=(4.6 * len(advs), 3.8), squeeze=False)
    chance = [r.get("chance_accuracy") for k, r in cells.by_key.items() if k.task == task]
    chance = [c for c in chance if c is not None and np.isfinite(c)]
    for ax, adv in zip(axes[0], advs):
        series = ["BIA"] + [n for n in cells.noises
                            if any(k.adversary == adv and k.noise == n and k.level == ref for k in t["rows"])]
        width = 0.8 / len(series)
        for j, name in enumerate(series):
            xs, vs, es = [], [], [[], []]
            for i, m in enumerate(models):
                ests = ([e for (mm, _sd, ch), e in t["bia"].items() if mm == m and ch == "digital"]
                        if name == "BIA" else
                        [r["mia"] for k, r in t["rows"].items() if k.model == m and k.noise == name
                         and k.level == ref and k.adversary == adv and k.channel == "digital"])
                if not ests:
                    continue
                v, (lo, hi) = _err(ests[0])
                xs.append(i + (j - (len(series) - 1) / 2) * width)
                vs.append(v)
                es[0].append(lo)
                es[1].append(hi)
            if xs:
                ax.bar(xs, vs, width, yerr=es, capsize=2, label="BIA (clean)" if name == "BIA" else f"MIA {name}",
                       color=COLORS.get("clean" if name == "BIA" else name, "gray"))
        if chance:
            ax.axhline(max(chance), color="k", ls=":", lw=1, label="chance (best constant guess)")
        ax.set_xticks(range(len(models)), models)
        ax.set_ylim(0, 1.05)
        ax.set_xlabel("attacker family")
        ax.set_ylabel("accuracy (fraction)")
        ax.set_title(f"{adv} adversary, noise at {ref:g} dB SPL" if ref is not None else adv)
        ax.legend(fontsize=7)
    fig.suptitle(f"{task}: baseline vs mitigated inference accuracy, 95 % cluster-bootstrap intervals (Figs. 9–11)")
    return _save(fig, out_dir, f"fig09-11_accuracy_{task}.png")


def fig_spf(s: dict, out_dir: str):
    """Fig. 13: SPF per noise across levels, one panel per adversary's own command recogniser."""
    if not s["spf"]:
        return None
    advs = [a for a in s["cells"].adversaries if any(k.adversary == a for k in s["spf"])]
    fig, axes = plt.subplots(1, len(advs), figsize=(4.6 * len(advs), 3.6), squeeze=False)
    for ax, adv in zip(axes[0], advs):
        for n in s["cells"].noises:
            pts = sorted((k.level, v["spf"]) for k, v in s["spf"].items()
                         if k.noise == n and k.adversary == adv and k.channel == "digital")
            if not pts:
                continue
            lv = [p[0] for p in pts]
            v = [p[1].value for p in pts]
            err = np.array([_err(p[1])[1] for p in pts]).T
            ax.errorbar(lv, v, yerr=err, marker="o", capsize=3, label=n, color=COLORS.get(n))
        ax.axvline(COMFORT_LIMIT_SPL, color="k", ls="--", lw=1, label="45 dB comfort limit")
        ax.axhline(1.0, color="gray", ls=":", lw=1)
        ax.set_xlabel("noise level (dB SPL)")
        ax.set_ylabel("SPF (masked / clean command accuracy)")
        ax.set_title(f"{adv} command recogniser")
        ax.legend(fontsize=7)
    fig.suptitle("Semantic preservation factor (Fig. 13)")
    return _save(fig, out_dir, "fig13_spf.png")


def fig_rtmr(s: dict, out_dir: str):
    """Fig. 14: randomness of masked audio against mitigation (rows: score, columns: adversary)."""
    advs = sorted({k.adversary for k in s["rtmr"]}, key=adversary_rank)
    tests = [t for t in ("ww_z", "cs", "ww") if any(k.test == t for k in s["rtmr"])]
    if not advs or not tests:
        return None
    fig, axes = plt.subplots(len(tests), len(advs), figsize=(4.6 * len(advs), 3.6 * len(tests)),
                             squeeze=False)
    for i, test in enumerate(tests):
        for j, adv in enumerate(advs):
            ax = axes[i][j]
            r = s["rtmr"].get(RtmrKey(adv, test))
            if r is None:
                ax.set_axis_off()
                continue
            for (task, noise, lv), x, y in r["points"]:
                ax.scatter(x, y, color=COLORS.get(noise, "gray"),
                           marker={"mgi": "o", "udi": "s", "sei": "^"}.get(task, "x"))
            for n in s["cells"].noises:
                ax.scatter([], [], color=COLORS.get(n, "gray"), label=n)
            for tk, mk in (("mgi", "o"), ("udi", "s"), ("sei", "^")):
                ax.scatter([], [], color="k", marker=mk, label=tk)
            ci = r["pearson_ci95"]
            rr = "undefined" if r["pearson_r"] is None else f"{r['pearson_r']:.2f}"
            ci_txt = "" if ci[0] is None else f" [{ci[0]:.2f}, {ci[1]:.2f}]"
            ax.set_title(f"{adv} adversary: r = {rr}{ci_txt}", fontsize=9)
            unit = "(z units)" if test == "ww_z" else "(0–1)"
            ax.set_xlabel(f"{RTMR_LABELS[test]} of masked audio {unit}")
            ax.set_ylabel("worst-family reduction (BIA−MIA)/BIA")
            ax.legend(fontsize=6)
    fig.suptitle("Randomness against mitigation, RTMR (Fig. 14)")
    return _save(fig, out_dir, "fig14_rtmr.png")


def fig_frontier(s: dict, out_dir: str):
    """Privacy–utility–comfort frontier: mitigation against the same adversary's SPF per noise across levels."""
    if not s["frontier"]:
        return None
    advs = [a for a in s["cells"].adversaries if any(k.adversary == a for k in s["frontier"])]
    fig, axes = plt.subplots(1, len(advs), figsize=(4.8 * len(advs), 4.0), squeeze=False)
    for ax, adv in zip(axes[0], advs):
        for n in s["cells"].noises:
            pts = sorted((k.level, p) for k, p in s["frontier"].items()
                         if k.adversary == adv and k.noise == n and k.channel == "digital")
            if not pts:
                continue
            col = COLORS.get(n, "gray")
            ax.plot([p["spf"] for _, p in pts], [p["mitigation"] for _, p in pts], "-", color=col, lw=1, label=n)
            for lv, p in pts:
                # Filled circle: below the comfort limit; star: at it; hollow circle: above it.
                at, above = lv == COMFORT_LIMIT_SPL, p["above_comfort"]
                ax.scatter(p["spf"], p["mitigation"], s=90 if at else 30, marker="*" if at else "o",
                           edgecolors=col, facecolors="none" if above else col, zorder=3)
                ax.annotate(f"{lv:g}", (p["spf"], p["mitigation"]), fontsize=6, xytext=(3, 3),
                            textcoords="offset points")
        ax.scatter([], [], marker="o", color="k", s=30, label=f"below {COMFORT_LIMIT_SPL:g} dB SPL")
        ax.scatter([], [], marker="*", s=90, color="k", label=f"at {COMFORT_LIMIT_SPL:g} dB SPL")
        if any(p["above_comfort"] for k, p in s["frontier"].items() if k.adversary == adv):
            ax.scatter([], [], marker="o", facecolors="none", edgecolors="k", label=f"above {COMFORT_LIMIT_SPL:g} dB SPL")
        ax.set_xlabel(f"SPF of the {adv} command recogniser (masked / clean)")
        ax.set_ylabel("mitigation: mean worst-family (BIA−MIA)/BIA")
        ax.set_title(f"{adv} adversary (labels: dB SPL)", fontsize=9)
        ax.legend(fontsize=6)
    fig.suptitle("Privacy–utility–comfort frontier (up and right is better)")
    return _save(fig, out_dir, "frontier_privacy_utility_comfort.png")


def fig_frontier_stoi(s: dict, out_dir: str):
    """Privacy against intelligibility as heard: mitigation against STOI, per adversary, both channels."""
    pts = {k: p for k, p in s["frontier"].items() if p.get("stoi") is not None}
    if not pts:
        return None
    advs = [a for a in s["cells"].adversaries if any(k.adversary == a for k in pts)]
    fig, axes = plt.subplots(1, len(advs), figsize=(4.8 * len(advs), 4.0), squeeze=False)
    markers = {"digital": "o", "room": "s"}
    for ax, adv in zip(axes[0], advs):
        for k, p in pts.items():
            if k.adversary != adv:
                continue
            ax.scatter(p["stoi"], p["mitigation"], marker=markers.get(k.channel, "x"), s=40,
                       color=COLORS.get(k.noise, "gray"))
            ax.annotate(f"{k.level:g}", (p["stoi"], p["mitigation"]), fontsize=6, xytext=(3, 3),
                        textcoords="offset points")
        for n in s["cells"].noises:
            ax.scatter([], [], color=COLORS.get(n, "gray"), label=n)
        for ch, mk in markers.items():
            if any(k.channel == ch for k in pts):
                ax.scatter([], [], marker=mk, color="k", label=f"{ch} channel")
        ax.set_xlabel("STOI of the masked commands at the listener (0–1)")
        ax.set_ylabel("mitigation: mean worst-family (BIA−MIA)/BIA")
        ax.set_title(f"{adv} adversary (labels: dB SPL)", fontsize=9)
        ax.legend(fontsize=6)
    fig.suptitle("Privacy against intelligibility as heard (up and right is better)")
    return _save(fig, out_dir, "frontier_privacy_stoi.png")


def make_figures(s: dict, out_dir: str, examples: dict) -> dict:
    """All figures that the available numbers allow -> {title: file name}."""
    figs = {}
    name = fig_mel(examples, out_dir)
    if name:
        figs["Fig. 3 — log-mel spectrograms of clean audio, white noise and GAN noise"] = name
    for task in (*PRIVACY_TASKS, UTILITY_TASK):
        name = fig_randomness(s, task, out_dir)
        if name:
            figs[f"Figs. 6–8 — randomness of {task} audio"] = name
    for task in (*PRIVACY_TASKS, UTILITY_TASK):
        name = fig_accuracy(s, task, out_dir)
        if name:
            figs[f"Figs. 9–11 — BIA and MIA per model, {task}"] = name
    for title, fn in (("Fig. 13 — SPF", fig_spf), ("Fig. 14 — randomness vs mitigation", fig_rtmr),
                      ("Privacy–utility–comfort frontier", fig_frontier),
                      ("Privacy against intelligibility (STOI)", fig_frontier_stoi)):
        name = fn(s, out_dir)
        if name:
            figs[title] = name
    return figs
