"""The study's summary: every metric of the report computed from plain records (the data half).

Inputs are plain records (JSON lines): ``kind="cell"`` records (one per attack cell, with the
per-fold accuracies in ``folds``) and ``kind="randomness"`` records (mean p-values of the
Wald–Wolfowitz and Cox–Stuart tests on one set of clips). Everything here is computed from
those numbers; nothing is assumed about which noise should win. `report` turns the summary
into text, `report_plots` into figures.
"""
from __future__ import annotations

from typing import Iterable, NamedTuple, Sequence

import numpy as np

from maskgan_jax import metrics
from maskgan_jax.levels import COMFORT_LIMIT_SPL
from maskgan_jax.vocab import (PRIVACY_TASKS, UTILITY_TASK, CellKey, FoldKey, RowKey,
                               adversary_rank, noise_rank)

SPF_OK = 0.9   # a masked recogniser keeping 90 % of its clean accuracy counts as "usable"
# Randomness scores for RTMR, each oriented so that larger means more random: the mean
# Wald–Wolfowitz and Cox–Stuart p-values, and −mean|z| of the runs test (audio's p-values
# saturate at 0, while |z| still says how far from random a set of clips is).
RTMR_TESTS = ("ww", "cs", "ww_z")
RTMR_LABELS = {"ww": "WW mean p", "cs": "CS mean p", "ww_z": "−WW mean |z|"}


class RandomnessKey(NamedTuple):
    """One scored set of clips: a task's clean or masked audio (noise, level), or a noise alone."""
    task: str
    source: str
    noise: str
    level: float | None


class RtmrKey(NamedTuple):
    """One randomness-to-mitigation relation: an adversary and a randomness score."""
    adversary: str
    test: str


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
    """{FoldKey(model, seed, fold): accuracy} for one cell (a cell without folds counts as one)."""
    folds = rec.get("folds") or [{"fold": 0, "accuracy": rec["accuracy"]}]
    return {FoldKey(rec["model"], rec["seed"], f.get("fold", i)): float(f["accuracy"])
            for i, f in enumerate(folds)}


class Cells:
    """Cell records indexed by `CellKey` (task, model, noise, level, adversary, seed)."""

    def __init__(self, records: Iterable[dict]):
        self.by_key: dict[CellKey, dict] = {}
        for r in records:
            if r.get("kind") != "cell":
                continue
            key = CellKey(r["task"], r["model"], r["noise"], _level(r), r["adversary"], r["seed"])
            self.by_key[key] = r
        keys = list(self.by_key)
        self.tasks = [t for t in (*PRIVACY_TASKS, UTILITY_TASK) if any(k.task == t for k in keys)]
        self.tasks += sorted({k.task for k in keys} - set(self.tasks))
        self.models = sorted({k.model for k in keys})
        self.noises = sorted({k.noise for k in keys if k.noise != "none"}, key=lambda n: (noise_rank(n), n))
        self.levels = sorted({k.level for k in keys if k.level is not None})
        self.adversaries = sorted({k.adversary for k in keys}, key=lambda a: (adversary_rank(a), a))
        self.seeds = sorted({k.seed for k in keys})

    def folds(self, task, noise, level, adversary, models=None) -> dict:
        """{FoldKey: accuracy} pooled over the chosen models and all seeds."""
        out = {}
        for k, r in self.by_key.items():
            if k.task != task or k.noise != noise or k.level != level or \
                    (models is not None and k.model not in models):
                continue
            if noise != "none" and k.adversary != adversary:
                continue
            out.update(_fold_map(r))
        return out

    def clean(self, task, models=None) -> dict:
        """The baseline folds (noise none)."""
        return self.folds(task, "none", None, "static", models)


def _paired(clean: dict, masked: dict):
    """(clean values, masked values, paired?) — paired on FoldKey (model, seed, fold) when both match."""
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
                    t["rows"][RowKey(noise, lv, adv)] = {
                        "mia": metrics.mia(list(f.values())),
                        "reduction": _reduction(clean_all, f, seed), "folds": f}
                    for m in cells.models:
                        fm = cells.folds(task, noise, lv, adv, [m])
                        if fm:
                            t["model_rows"][(m, RowKey(noise, lv, adv))] = {
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
        key = RandomnessKey(r["task"], r["source"], r.get("noise", "none"),
                            None if r.get("noise_spl") is None else float(r["noise_spl"]))
        if r["source"] == "noise":
            out["noise_randomness"][(key.noise, key.level)] = r
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
                    rr = out["randomness"].get(RandomnessKey(task, "masked", noise, lv))
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
                out["rtmr"][RtmrKey(adv, test)] = res

    # Frontier: mitigation (mean reduction over privacy tasks) against SPF, per noise and level.
    for adv in cells.adversaries:
        for noise in cells.noises:
            for lv in cells.levels:
                row = RowKey(noise, lv, adv)
                reds = [out["tasks"][t]["rows"][row]["reduction"]
                        for t in PRIVACY_TASKS if t in out["tasks"] and row in out["tasks"][t]["rows"]]
                reds = [r for r in reds if r is not None]
                s = out["spf"].get(RowKey(noise, lv, "static")) or out["spf"].get(row)
                if reds and s is not None:
                    out["frontier"][row] = {
                        "mitigation": float(np.mean([r.value for r in reds])),
                        "spf": s.value, "above_comfort": lv > COMFORT_LIMIT_SPL,
                        "n_tasks": len(reds)}
    return out
