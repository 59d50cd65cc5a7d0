"""The study's cells stage: running training groups resumably, one atomic file per finished cell.

A group (`study_grid.GroupKey`) trains each fold once and tests every pending cell on it,
with the same steps, keys and noise programs as `attack.run_attack` (`attack_steps`,
`attack_loop`, `masking`), so a study cell equals ``run_attack`` with the cell's config by
construction. Finished folds are kept in ``OUT/partial/<group>.jsonl``, so an interrupted
group resumes at its next fold, and a finished cell is never recomputed: its file holds a
fingerprint of everything that decides its numbers.
"""
from __future__ import annotations

import dataclasses
import os
import time
from typing import Any, Callable

import numpy as np

from maskgan_jax import (attack, attack_folds, attack_loop, attack_steps, keys, masker, masking, metrics, parallel,
                         results)
from maskgan_jax.data.batches import as_array_data
from maskgan_jax.progress import Progress
from maskgan_jax.study_config import StudyConfig
from maskgan_jax.study_gan import noise_spec
from maskgan_jax.study_grid import Cell, GroupKey, group_cells, select


def read_cell(out_dir: str, cell: Cell) -> dict | None:
    """The finished record of a cell, or None."""
    recs = [r for r in results.read_jsonl(os.path.join(out_dir, cell.relpath)) if r.get("kind") == "cell"]
    return recs[-1] if recs else None


def is_done(out_dir: str, cell: Cell, fp: str) -> bool:
    """True when the cell's file holds a record made with the same fingerprint."""
    r = read_cell(out_dir, cell)
    return r is not None and r.get("fingerprint") == fp


def read_all_cells(out_dir: str) -> list[dict]:
    """Every cell record under ``out_dir/cells`` (whatever workers have written)."""
    out = []
    root = os.path.join(out_dir, "cells")
    for dirpath, _dirs, files in os.walk(root):
        for f in sorted(files):
            if f.endswith(".jsonl") and not f.startswith("."):
                out.extend(r for r in results.read_jsonl(os.path.join(dirpath, f)) if r.get("kind") == "cell")
    return out


def chance_accuracy(data, rows: np.ndarray) -> float:
    """The best constant guess on these examples: per attribute the majority class's share of the
    labelled examples, averaged over attributes (as accuracy is)."""
    shares = []
    for y in data.labels.values():
        y = np.asarray(y)[rows]
        y = y[y >= 0]
        if y.size:
            shares.append(float(np.bincount(y).max() / y.size))
    return float(np.mean(shares)) if shares else float("nan")


def cell_record(cell: Cell, fold_recs: list[dict], config: dict, fp: str, extra: dict) -> dict:
    """The cell's JSON record: pooled accuracy with its cluster-bootstrap interval (the fold-level
    t interval beside it), the folds with their per-example outcomes, the full config."""
    folds = sorted(fold_recs, key=lambda r: r["fold"])
    t = metrics.mean_ci([r["accuracy"] for r in folds])
    _rows, correct, cluster = attack.pooled_outcomes(folds)
    est = metrics.clustered_bootstrap_ci(correct, cluster, seed=cell.seed)
    rec = {"kind": "cell", "cell": cell.id, "task": cell.task, "model": cell.model,
           "noise": cell.noise, "noise_spl": cell.level, "adversary": cell.adversary, "channel": cell.channel,
           "seed": cell.seed, "accuracy": est.value, "ci95": est.ci95, "ci_method": est.method,
           "fold_mean_accuracy": t.value, "t_ci95": t.ci95, "n_examples": int(correct.shape[0]),
           "n_folds": len(folds), "above_comfort": cell.above_comfort, "folds": folds,
           "fingerprint": fp, "config": config}
    rec.update(extra)
    return rec


# --------------------------------------------------------------------------- the group environment

@dataclasses.dataclass
class GroupEnv:
    """What running a group needs from the study: data, each cell's attack config, fingerprint, record fields."""
    out_dir: str
    data: Callable[[str], Any]                         # task -> array store
    attack_config: Callable[[Cell], attack.AttackConfig]
    cell_fingerprint: Callable[[Cell], str]
    extra: Callable[[Cell], dict]                      # fields added to the cell record
    log: Callable[[str], None] = print
    on_cell_done: Callable[[Cell], None] = lambda c: None
    counters: dict = dataclasses.field(default_factory=lambda: {"train_fold": 0, "evaluate": 0})


def cell_env(cfg: StudyConfig, out_dir: str, stores: dict, gan_info: dict | None, log) -> GroupEnv:
    """The study's `GroupEnv`: attack configs, fingerprints and record fields of its cells."""
    attack_models = dict(cfg.attack)

    def attack_config(c: Cell) -> attack.AttackConfig:
        base = attack_models[c.model]
        return dataclasses.replace(
            base, task=c.task, seed=c.seed, speech_spl=cfg.speech_spl,
            noise=noise_spec(cfg, out_dir, c.noise),
            noise_spl=base.noise_spl if c.level is None else c.level,
            allow_above_comfort=cfg.allow_above_comfort, adversary=c.adversary, channel=c.channel,
            rooms=cfg.rooms, room_seed=cfg.room_seed,
            # The invert adversary knows the study's MaskGAN (on white noise: the control).
            invert_gan=noise_spec(cfg, out_dir, "gan") if c.adversary == "invert" else "",
            front_end=cfg.denoise_front_end if c.adversary == "denoise" else "none")

    def cell_fp(c: Cell) -> str:
        a = attack_config(c).to_json()
        # Paths name where the GAN lives, not what it is (a copied study folder stays valid):
        # its identity enters through the GAN's fingerprint.
        a["noise"] = c.noise
        a["invert_gan"] = "gan" if a.get("invert_gan") else ""
        knows_gan = c.noise == "gan" or c.adversary == "invert"
        fp = {"cell": c.id, "attack": a, "store": stores[c.task].fingerprint,
              "gan": gan_info["fingerprint"] if knows_gan and gan_info else None}
        if c.noise == "optimised":   # the trained masker by what it plays, not where it lives
            fp["masker"] = masker.identity(cfg.masker_workdir)
        return results.fingerprint(fp)

    def extra(c: Cell) -> dict:
        return {"study": cfg.name, "speech_spl": cfg.speech_spl, "corpus": stores[c.task].name,
                "store_fingerprint": stores[c.task].fingerprint,
                "gan": ({"workdir": gan_info["workdir"], "step": gan_info["step"]}
                        if c.noise == "gan" and gan_info else None),
                "versions": results.versions()}

    return GroupEnv(out_dir=out_dir, data=lambda t: stores[t], attack_config=attack_config,
                    cell_fingerprint=cell_fp, extra=extra, log=log)


# --------------------------------------------------------------------------- running a group

def _fold_summary(test: dict, info: dict, fold: int, n_test: int, seconds: float) -> dict:
    keep = {"fold": fold, "accuracy": test["accuracy"], "n_test": n_test,
            "per_attribute_accuracy": {a: v["accuracy"] for a, v in test["per_attribute"].items()},
            "clipped_samples": test.get("clipped_samples", 0),
            "best_step": info.get("best_step"), "steps_trained": info.get("steps_trained"),
            "best_epoch": info.get("best_epoch"), "epochs_trained": info.get("epochs_trained"),
            "val_accuracy": info.get("val_accuracy"), "l2": info.get("l2"), "kept_probe": info.get("kept_probe"),
            "seconds": seconds,
            "outcomes": test["outcomes"]}
    if "all_correct_accuracy" in test:
        keep["all_correct_accuracy"] = test["all_correct_accuracy"]
    if "per_class_recall" in test:
        keep["per_class_recall"] = test["per_class_recall"]
    return keep


def _partial_path(out_dir: str, group: GroupKey) -> str:
    return os.path.join(out_dir, "partial", group.name + ".jsonl")


def run_group(group: GroupKey, cells: list[Cell], env: GroupEnv) -> list[dict]:
    """Trains the group's attackers fold by fold and writes each pending cell when complete."""
    fps = {c: env.cell_fingerprint(c) for c in cells}
    pending = [c for c in cells if not is_done(env.out_dir, c, fps[c])]
    if not pending:
        return []
    data = as_array_data(env.data(group.task))
    heads = [(a, len(data.classes[a])) for a in data.classes]
    cfgs = {c: env.attack_config(c).validate() for c in pending}
    base = cfgs[pending[0]]
    mesh = parallel.make_mesh(base.num_devices)
    parallel.check_batch_size(base.batch_size, mesh, "batch_size")
    clip = int(data.audio.shape[1])

    def setup(cfg: attack.AttackConfig):
        """(steps, training hearing, test hearing, noise program) of one cell's config."""
        program = masking.noise_program(cfg.noise, clip, cfg.mel.sample_rate, corpus=data)
        snr = masking.check_levels(cfg.noise_spl, cfg.speech_spl, cfg.allow_above_comfort)
        room = attack.room_channel(cfg, clip, os.path.join(env.out_dir, "rooms"), env.log)
        heard = None if cfg.adversary == "invert" else program   # invert hears its residuals (above)
        return (attack_steps.get_steps(cfg, heads, clip, mesh), *attack_loop.hearings(cfg, heard, snr, room),
                program)

    extra = {}
    if base.adversary == "invert":
        # The invert adversary works on its residuals of the masked clips (computed once, cached).
        program = masking.noise_program(base.noise, clip, base.mel.sample_rate, corpus=data)
        snr = masking.check_levels(base.noise_spl, base.speech_spl, base.allow_above_comfort)
        data, _, extra = attack.adversary_data(base, data, program, snr, os.path.join(env.out_dir, "invert"), env.log)
    if group.condition.startswith("clean"):
        # The clean baseline and the static adversary train on clean audio: one attacker for both.
        train_cfg = dataclasses.replace(base, noise="none", adversary="static", front_end="none")
    else:
        train_cfg = base
    train_steps, train_hears, _, _ = setup(train_cfg)
    splits = attack_folds.fold_indices(data.groups, data.splits, base.folds, group.seed, base.val_fraction)
    partial_path = _partial_path(env.out_dir, group)
    fold_recs: dict[Cell, dict[int, dict]] = {c: {} for c in pending}
    for r in results.read_jsonl(partial_path):
        c = next((c for c in pending if c.id == r.get("cell") and fps[c] == r.get("fingerprint")), None)
        if c is not None:
            fold_recs[c][r["fold"]] = r["result"]
    test_key = keys.test_noise(group.seed)   # the same noise per clip in every fold and adversary
    written = []
    for f, split in enumerate(splits):
        todo = [c for c in pending if f not in fold_recs[c]]
        if not todo:
            continue
        t0 = time.perf_counter()
        env.log(f"[study] {group.name} fold {f + 1}/{len(splits)}: training "
                f"({split['train'].size} train, {split['valid'].size} valid) for {len(todo)} cell(s)")
        env.counters["train_fold"] += 1
        params, info = attack_loop.fit(train_steps, data, split, group.seed, f, train_hears, log=lambda s: None)
        t_train = time.perf_counter() - t0
        for c in todo:
            t1 = time.perf_counter()
            env.counters["evaluate"] += 1
            steps, _, test_hears, _ = setup(cfgs[c])
            test = attack_loop.test(steps, params, data, split["test"], test_key, test_hears)
            fold_recs[c][f] = _fold_summary(test, info, f, int(split["test"].size),
                                            t_train / len(todo) + time.perf_counter() - t1)
        results.write_jsonl_atomic(partial_path, [
            {"cell": c.id, "fingerprint": fps[c], "fold": k, "result": v}
            for c in pending for k, v in sorted(fold_recs[c].items())])
        for c in todo:
            if len(fold_recs[c]) == len(splits):
                cfg = cfgs[c].to_json()
                cfg["noise"] = c.noise   # the record names the noise; the GAN's identity is in the fingerprint
                program = setup(cfgs[c])[3]
                tested = np.concatenate([np.asarray(r["outcomes"]["index"]) for r in fold_recs[c].values()])
                rec = cell_record(c, list(fold_recs[c].values()), cfg, fps[c],
                                  {**env.extra(c), **extra, "devices": parallel.describe(mesh),
                                   "noise_info": program.info if program else None,
                                   "chance_accuracy": chance_accuracy(data, tested)})
                results.write_jsonl_atomic(os.path.join(env.out_dir, c.relpath), [rec])
                written.append(rec)
                env.on_cell_done(c)
    if os.path.exists(partial_path) and all(len(fold_recs[c]) == len(splits) for c in pending):
        os.unlink(partial_path)
    return written


def split_cells(cfg: StudyConfig, env: GroupEnv, cells_spec: str, worker: int,
                num_workers: int) -> tuple[list[Cell], list[Cell], list[Cell]]:
    """(this worker's selected cells, those already done with the same fingerprint, those to run)."""
    mine = select(cfg.cells(), cells_spec, worker, num_workers)
    done = [c for c in mine if is_done(env.out_dir, c, env.cell_fingerprint(c))]
    finished = set(done)
    return mine, done, [c for c in mine if c not in finished]


def stage_cells(cfg: StudyConfig, env: GroupEnv, cells_spec: str, worker: int, num_workers: int) -> dict:
    """Runs this worker's pending cells group by group, with a done/total progress line."""
    mine, done, todo = split_cells(cfg, env, cells_spec, worker, num_workers)
    env.log(f"[study] cells for worker {worker}/{num_workers}: {len(mine)} selected, {len(done)} done, "
            f"{len(todo)} to run")
    prog = Progress(len(todo), f"[study] cells (of {len(mine)}; {len(done)} done earlier)", "cells")

    def on_done(c):
        prog.update(1, force=True)
        env.log(f"[study] cell done: {c.id}")

    env.on_cell_done = on_done
    for group, cells in group_cells(todo).items():
        run_group(group, cells, env)
    prog.close()
    return {"selected": len(mine), "done_before": len(done), "computed": prog.done,
            "counters": dict(env.counters)}
