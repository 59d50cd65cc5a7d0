"""The study's summary: every number of the report, computed from plain records (the data half).

Inputs are plain records (JSON lines): ``kind="cell"`` records (one per attack cell, with the
per-example test outcomes of every fold) and ``kind="randomness"`` records (Wald–Wolfowitz
and Cox–Stuart p-values of one set of clips). Everything here is computed from those
numbers; nothing is assumed about which noise should win. `report` turns the summary into
text, `report_plots` into figures.

Intervals: every accuracy, reduction, SPF and paired difference gets a 95 % interval from a
bootstrap that resamples the fold groups (speakers, actors, artists) over the pooled
per-example outcomes (`metrics.clustered_*`), inside [0, 1] for accuracies. Two cells of a
task and seed are paired on their examples (every family and adversary sees the same folds).

The privacy figure of a (task, noise, level) is the **worst case** over the adversaries and
attacker families that ran: the cell with the highest masked accuracy (MIA), its reduction
measured against the strongest clean attacker (the highest BIA).
"""
from __future__ import annotations

import math
from typing import Iterable, NamedTuple, Sequence

import numpy as np

from maskgan_jax import metrics
from maskgan_jax.levels import COMFORT_LIMIT_SPL
from maskgan_jax.vocab import (PRIVACY_TASKS, UTILITY_TASK, CellKey, RowKey, adversary_rank, noise_rank)

SPF_OK = 0.9   # a masked recogniser keeping 90 % of its clean accuracy counts as "usable"
# Randomness scores for RTMR, each oriented so that larger means more random: the mean
# Wald–Wolfowitz and Cox–Stuart p-values, and −mean|z| of the runs test (audio's p-values
# saturate at 0, while |z| still says how far from random a set of clips is).
RTMR_TESTS = ("ww", "cs", "ww_z")
RTMR_LABELS = {"ww": "WW mean p", "cs": "CS mean p", "ww_z": "−WW mean |z|"}
N_BOOT = 2000


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


class Outcomes(NamedTuple):
    """A cell's pooled per-example test outcomes, sorted by store row."""
    rows: np.ndarray        # [N] store rows
    correct: np.ndarray     # [N, attributes] 1 right, 0 wrong, -1 unlabelled
    groups: np.ndarray      # [N] fold group (the bootstrap's clusters)


def _level(rec) -> float | None:
    v = rec.get("noise_spl")
    return None if v is None or rec.get("noise") == "none" else float(v)


def cell_outcomes(rec: dict) -> Outcomes | None:
    """The pooled outcomes of a cell record (None for a record without per-example outcomes)."""
    folds = rec.get("folds") or []
    if not folds or not all("outcomes" in f for f in folds):
        return None
    rows, correct, groups = [], [], []
    for f in folds:
        o = f["outcomes"]
        rows.append(np.asarray(o["index"], np.int64))
        groups.append(np.asarray(o["group"], dtype=str))
        correct.append(np.stack([np.asarray(v, np.int8) for v in o["correct"].values()], axis=1))
    rows = np.concatenate(rows)
    order = np.argsort(rows, kind="stable")
    return Outcomes(rows[order], np.concatenate(correct)[order], np.concatenate(groups)[order])


def _paired(a: Outcomes, b: Outcomes) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(a's outcomes, b's outcomes, clusters) on the examples both were tested on, or None."""
    common, ia, ib = np.intersect1d(a.rows, b.rows, return_indices=True)
    if common.size == 0 or a.correct.shape[1] != b.correct.shape[1]:
        return None
    return a.correct[ia], b.correct[ib], a.groups[ia]


def accuracy(o: Outcomes, seed: int = 0) -> metrics.Estimate:
    """Pooled accuracy with its cluster-bootstrap interval."""
    return metrics.clustered_bootstrap_ci(o.correct, o.groups, n_boot=N_BOOT, seed=seed)


def reduction(clean: Outcomes, masked: Outcomes, seed: int = 0) -> metrics.Estimate | None:
    """(BIA − MIA)/BIA on paired examples, or None when undefined (no pairs, BIA 0)."""
    p = _paired(clean, masked)
    if p is None or not np.any(p[0] == 1):
        return None
    return metrics.clustered_reduction_ci(p[0], p[1], p[2], n_boot=N_BOOT, seed=seed)


def ratio(num: Outcomes, den: Outcomes, seed: int = 0) -> metrics.Estimate | None:
    """acc(num) / acc(den) on paired examples (SPF), or None when undefined."""
    p = _paired(num, den)
    if p is None or not np.any(p[1] == 1):
        return None
    return metrics.clustered_bootstrap_ratio(p[0], p[1], p[2], n_boot=N_BOOT, seed=seed)


def difference(a: Outcomes, b: Outcomes, seed: int = 0) -> metrics.Estimate | None:
    """Paired accuracy difference a − b on the same examples, or None."""
    p = _paired(a, b)
    if p is None:
        return None
    return metrics.clustered_bootstrap_diff(p[0], p[1], p[2], n_boot=N_BOOT, seed=seed)


def ref_level(levels: Sequence[float], wanted: float = COMFORT_LIMIT_SPL) -> float | None:
    """The reference level: ``wanted`` when swept, else the loudest level within comfort."""
    if not levels:
        return None
    if wanted in levels:
        return wanted
    ok = [lv for lv in levels if lv <= COMFORT_LIMIT_SPL]
    return max(ok) if ok else min(levels)


class Cells:
    """Cell records indexed by `CellKey`, with their pooled outcomes."""

    def __init__(self, records: Iterable[dict]):
        self.by_key: dict[CellKey, dict] = {}
        for r in records:
            if r.get("kind") != "cell":
                continue
            key = CellKey(r["task"], r["model"], r["noise"], _level(r), r["adversary"], r["seed"],
                          r.get("channel", "digital"))
            self.by_key[key] = r
        keys = list(self.by_key)
        self.tasks = [t for t in (*PRIVACY_TASKS, UTILITY_TASK) if any(k.task == t for k in keys)]
        self.tasks += sorted({k.task for k in keys} - set(self.tasks))
        self.models = sorted({k.model for k in keys})
        self.noises = sorted({k.noise for k in keys if k.noise != "none"}, key=lambda n: (noise_rank(n), n))
        self.levels = sorted({k.level for k in keys if k.level is not None})
        self.adversaries = sorted({k.adversary for k in keys if k.noise != "none"},
                                  key=lambda a: (adversary_rank(a), a))
        self.seeds = sorted({k.seed for k in keys})
        self.channels = sorted({k.channel for k in keys}, key=lambda c: (c != "digital", c))
        self._outcomes: dict[CellKey, Outcomes | None] = {}

    def outcomes(self, key: CellKey) -> Outcomes | None:
        """The pooled outcomes of one cell (cached)."""
        if key not in self._outcomes:
            rec = self.by_key.get(key)
            self._outcomes[key] = cell_outcomes(rec) if rec is not None else None
        return self._outcomes[key]

    def clean_key(self, task: str, model: str, seed: int, channel: str = "digital") -> CellKey:
        """The clean baseline cell of a task, family, seed and channel."""
        return CellKey(task, model, "none", None, "static", seed, channel)


def _est(e: metrics.Estimate | None) -> dict | None:
    return None if e is None else {"value": e.value, "ci95": e.ci95, "n": e.n, "method": e.method}


def summarize(records: Iterable[dict], randomness: Iterable[dict] = (), seed: int = 0,
              reference_level: float = COMFORT_LIMIT_SPL) -> dict:
    """Every number of the report: per-cell rows, BIA per family, worst cases, SPF, randomness, RTMR, frontier."""
    cells = Cells(records)
    ref = ref_level(cells.levels, reference_level)
    out = {"cells": cells, "ref_level": ref, "tasks": {}, "spf": {}, "randomness": {}, "rtmr": {},
           "frontier": {}, "noise_randomness": {}, "comparisons": {}, "utility": {}, "invert": {}}
    for task in cells.tasks:
        out["tasks"][task] = _task_summary(cells, task, seed)
    if UTILITY_TASK in out["tasks"]:
        out["spf"] = _spf(cells, out["tasks"][UTILITY_TASK], seed)
    for r in randomness:
        if r.get("kind") == "utility":
            out["utility"][(r.get("channel", "digital"), r["noise"], float(r["noise_spl"]))] = r
        if r.get("kind") != "randomness":
            continue
        key = RandomnessKey(r["task"], r["source"], r.get("noise", "none"),
                            None if r.get("noise_spl") is None else float(r["noise_spl"]))
        if r["source"] == "noise":
            out["noise_randomness"][(key.noise, key.level)] = r
        else:
            out["randomness"][key] = r
    out["invert"] = _invert(out, cells, seed)
    out["rtmr"] = _rtmr(out, cells, seed)
    out["frontier"] = _frontier(out, cells)
    out["comparisons"] = _comparisons(out, cells, seed)
    return out


def _task_summary(cells: Cells, task: str, seed: int) -> dict:
    """BIA per family and seed, one row per masked cell, and the worst case per (noise, level)."""
    t = {"bia": {}, "rows": {}, "worst": {}, "best_clean": {}}
    for m in cells.models:
        for s in cells.seeds:
            for ch in cells.channels:
                o = cells.outcomes(cells.clean_key(task, m, s, ch))
                if o is not None:
                    t["bia"][(m, s, ch)] = accuracy(o, seed)
    for ch in cells.channels:
        mine = [k for k in t["bia"] if k[2] == ch]
        if mine:
            t["best_clean"][ch] = max(mine, key=lambda k: t["bia"][k].value)
    for key in cells.by_key:
        if key.task != task or key.noise == "none":
            continue
        o = cells.outcomes(key)
        if o is None:
            continue
        clean = cells.outcomes(cells.clean_key(task, key.model, key.seed, key.channel))
        t["rows"][key] = {"mia": accuracy(o, seed),
                          "reduction": reduction(clean, o, seed) if clean is not None else None}
    # Worst case per (noise, level, channel): the highest MIA over families, adversaries and
    # seeds, its reduction against the strongest clean attacker in the same channel.
    by_condition: dict[tuple, list] = {}
    for key, row in t["rows"].items():
        by_condition.setdefault((key.noise, key.level, key.channel), []).append((key, row))
    for (noise, level, channel), rows in by_condition.items():
        key, row = max(rows, key=lambda kr: (kr[1]["mia"].value, -adversary_rank(kr[0].adversary)))
        best = t["best_clean"].get(channel)
        red = None
        if best is not None:
            red = reduction(cells.outcomes(cells.clean_key(task, *best)), cells.outcomes(key), seed)
        t["worst"][(noise, level, channel)] = {"key": key, "mia": row["mia"], "reduction": red,
                                               "bia_key": best, "candidates": len(rows)}
    return t


def _spf(cells: Cells, ut: dict, seed: int) -> dict:
    """SPF per (noise, level, adversary): that adversary's own command recogniser (of the families
    it ran with, the one most accurate on clean commands), masked / clean on paired examples."""
    out = {}
    by_row: dict[RowKey, list[CellKey]] = {}
    for key in ut["rows"]:
        by_row.setdefault(RowKey(key.noise, key.level, key.adversary, key.channel), []).append(key)
    for row, keys_ in by_row.items():
        keys_ = [k for k in keys_ if (k.model, k.seed, k.channel) in ut["bia"]]
        if not keys_:
            continue
        key = max(keys_, key=lambda k: ut["bia"][(k.model, k.seed, k.channel)].value)
        e = ratio(cells.outcomes(key), cells.outcomes(cells.clean_key(UTILITY_TASK, key.model, key.seed,
                                                                      key.channel)), seed)
        if e is not None:
            out[row] = {"spf": e, "model": key.model}
    return out


def _invert(s: dict, cells: Cells, seed: int) -> dict:
    """The adversary that knows the generator: per (task, noise, level, family) the noise energy its
    search removed (dB) and the accuracy it recovered over the static adversary (paired)."""
    out = {}
    for key, rec in cells.by_key.items():
        if key.adversary != "invert" or "invert" not in rec:
            continue
        static = cells.outcomes(key._replace(adversary="static"))
        row = s["tasks"][key.task]["rows"].get(key)
        out[key] = {"removed_db": rec["invert"].get("removed_db"),
                    "noise_reduction_db": rec["invert"].get("noise_reduction_db"), "mia": row["mia"] if row else None,
                    "recovered": difference(cells.outcomes(key), static, seed) if static is not None else None}
    return out


def _rtmr(s: dict, cells: Cells, seed: int) -> dict:
    """RTMR per adversary and randomness score: one point per (privacy task, noise, level), the
    masked audio's randomness against that adversary's worst-case reduction (undefined when the
    score does not vary, e.g. every p-value 0)."""
    out = {}
    for adv in cells.adversaries:
        for test in RTMR_TESTS:
            xs, ys, labels = [], [], []
            for task in PRIVACY_TASKS:
                t = s["tasks"].get(task)
                if t is None:
                    continue
                for (noise, level, channel), red in _adversary_reductions(t, adv).items():
                    rr = s["randomness"].get(RandomnessKey(task, "masked", noise, level))
                    if channel != "digital":
                        continue   # randomness is scored on the digital mix
                    if rr is None or red is None:
                        continue
                    x = _randomness_score(rr, test)
                    if x is None:
                        continue
                    xs.append(x)
                    ys.append(red.value)
                    labels.append((task, noise, level))
            if len(xs) >= 2:
                res = metrics.rtmr(xs, ys, seed=seed)
                res.update(points=list(zip(labels, xs, ys)),
                           constant=bool(np.ptp(np.asarray(xs)) == 0))
                out[RtmrKey(adv, test)] = res
    return out


def _adversary_reductions(t: dict, adversary: str) -> dict:
    """(noise, level, channel) -> the reduction of this adversary's strongest family (highest MIA)."""
    best: dict = {}
    for key, row in t["rows"].items():
        if key.adversary != adversary:
            continue
        k = (key.noise, key.level, key.channel)
        if k not in best or row["mia"].value > best[k][0]:
            best[k] = (row["mia"].value, row["reduction"])
    return {k: v[1] for k, v in best.items()}


def _randomness_score(rec: dict, test: str):
    if test == "ww_z":
        v = rec.get("ww_mean_abs_z")
        return None if v is None else -float(v)
    return float(rec[f"{test}_mean_p"])


def _frontier(s: dict, cells: Cells) -> dict:
    """Per (noise, level, adversary): mean worst-family reduction over the privacy tasks against
    that adversary's own SPF."""
    out = {}
    for adv in cells.adversaries:
        per_task = {task: _adversary_reductions(s["tasks"][task], adv)
                    for task in PRIVACY_TASKS if task in s["tasks"]}
        for noise in cells.noises:
            for level in cells.levels:
                for ch in cells.channels:
                    reds = [r[(noise, level, ch)] for r in per_task.values() if r.get((noise, level, ch)) is not None]
                    spf = s["spf"].get(RowKey(noise, level, adv, ch))
                    if not reds or spf is None:
                        continue
                    u = s["utility"].get((ch, noise, level))
                    out[RowKey(noise, level, adv, ch)] = {
                        "mitigation": float(np.mean([r.value for r in reds])), "spf": spf["spf"].value,
                        "stoi": None if u is None else u["stoi"]["value"],
                        "above_comfort": level > COMFORT_LIMIT_SPL, "n_tasks": len(reds)}
    return out


def _comparisons(s: dict, cells: Cells, seed: int) -> dict:
    """Paired worst-case accuracy differences per task and level: white − every other noise
    (positive: the other noise masks better), on the same examples."""
    out = {}
    for task, t in s["tasks"].items():
        for level in cells.levels:
            for ch in cells.channels:
                w = t["worst"].get(("white", level, ch))
                if w is None:
                    continue
                for noise in cells.noises:
                    o = t["worst"].get((noise, level, ch))
                    if noise == "white" or o is None:
                        continue
                    d = difference(cells.outcomes(w["key"]), cells.outcomes(o["key"]), seed)
                    if d is not None:
                        out[(task, noise, level, ch)] = d
    return out


def verdict(d: metrics.Estimate | None) -> str:
    """'higher' / 'lower' / 'same' of a paired difference's interval against 0 ('undetermined' without one)."""
    if d is None or d.ci95[0] is None or not math.isfinite(d.low):
        return "undetermined"
    if d.low > 0:
        return "higher"
    if d.high < 0:
        return "lower"
    return "same"
