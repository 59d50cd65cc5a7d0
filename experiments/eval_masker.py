"""Evaluates a trained masker against white noise and the hand-made baselines, at the same level.

    python -m experiments.eval_masker --masker=/tmp/masker --out=/tmp/masker_eval_out \\
        --corpora=udi,udi:/tmp/eval/common_voice --commands=/tmp/eval/speech_commands

For every corpus (a task's embedded corpus, or task:FOLDER in a public layout, e.g. one
written by scripts/make_eval_corpora.py that the masker never trained on), every attacker
family (--models; the adaptive adversary: trained from scratch on masked audio, tested on
masked audio, group K-fold) and every noise (--noises: white, speech_shaped, babble and
masker, all at --noise_spl), one attack run (maskgan_jax.attack.run_attack) is written to
OUT/attack/*.jsonl; its summary carries the pooled accuracy and a cluster-bootstrap interval
over speakers. The commands corpus (--commands) gets the same attack (command accuracy:
the adaptive recogniser's) and the STOI of --utility_clips commands under each noise, with a
speaker-clustered interval. OUT/table.md holds the table; a rerun reuses finished runs.
"""
from __future__ import annotations

import os

from absl import app, flags

from experiments import cli

FLAGS = flags.FLAGS
flags.DEFINE_string("masker", None, "Trained masker workdir (experiments.train_masker).")
flags.DEFINE_string("out", None, "Output folder (attack runs, utility, table.md).")
flags.DEFINE_list("corpora", ["udi"], "Private-task corpora: TASK (embedded) or TASK:FOLDER (public layout).")
flags.DEFINE_string("commands", "commands", "Commands corpus: 'commands' (embedded), a folder, or '' for none.")
flags.DEFINE_list("models", ["probe", "cnn"], "Attacker families (adaptive adversary).")
flags.DEFINE_list("noises", ["none", "white", "speech_shaped", "babble", "masker"],
                  "Noises; 'masker' is --masker (none: the clean baseline).")
flags.DEFINE_float("noise_spl", 45.0, "Level of every noise, dB SPL.")
flags.DEFINE_string("config", "fast", "Named attack config (experiments/configs/attack.py).")
flags.DEFINE_integer("folds", 3, "Group K-fold folds.")
flags.DEFINE_integer("min_steps", None, "Override of the config's minimum optimiser steps per fold.")
flags.DEFINE_integer("utility_clips", 48, "Command clips scored for STOI per noise.")
flags.DEFINE_string("cache_dir", None, "Embedded corpora and array stores.")
flags.DEFINE_enum("data_size", "default", ["default", "tiny"], "Size of the embedded corpora.")
flags.DEFINE_integer("seed", 0, "Seed of folds, initialisation and noise.")


def _spec(noise: str) -> str:
    return f"masker:{os.path.abspath(FLAGS.masker)}" if noise == "masker" else noise


def _store(entry: str):
    from maskgan_jax.data import cache
    task, _, folder = entry.partition(":")
    return cache.open_task_store(task, folder or None, FLAGS.cache_dir, FLAGS.data_size, progress=False), task, \
        ("embedded " if not folder else "eval ") + task


def _attack(store, task, label, model, noise, log) -> list[dict]:
    """The attack run's records (folds, then the summary): reused when its file is complete."""
    from experiments.configs import attack as configs
    from maskgan_jax import attack, results
    name = f"{label.replace(' ', '_')}-{model}-{noise}.jsonl"
    path = os.path.join(FLAGS.out, "attack", name)
    over = {"min_steps": FLAGS.min_steps} if FLAGS.min_steps is not None else {}
    cfg = configs.get(FLAGS.config, model, task=task, noise=_spec(noise), noise_spl=FLAGS.noise_spl,
                      adversary="adaptive" if noise != "none" else "static", folds=FLAGS.folds, seed=FLAGS.seed,
                      **over)
    old = results.read_jsonl(path)
    if old and old[-1].get("kind") == "summary" and old[-1].get("config") == cfg.to_json():
        return old
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return attack.run_attack(cfg, store, path, log=log, room_dir=os.path.join(FLAGS.out, "rooms"))


def _versus_white(recs: list[dict], white: list[dict] | None):
    """Paired difference of accuracy, this noise − white, on the same test examples (cluster bootstrap)."""
    from maskgan_jax import attack, metrics
    if white is None or recs is white:
        return None
    rows_a, ca, groups = attack.pooled_outcomes([r for r in recs if r.get("kind") == "fold"])
    rows_b, cb, _ = attack.pooled_outcomes([r for r in white if r.get("kind") == "fold"])
    if not (rows_a.shape == rows_b.shape and (rows_a == rows_b).all()):
        return None
    return metrics.clustered_bootstrap_diff(ca, cb, groups, seed=FLAGS.seed)


def _stoi(store, noise):
    import jax
    import numpy as np

    from maskgan_jax import audio, intelligibility, keys, masking, metrics
    n = min(FLAGS.utility_clips, len(store))
    rows = np.sort(keys.randomness_sample(FLAGS.seed).permutation(len(store))[:n])
    clean = audio.int16_to_float(np.asarray(store.audio[rows]))
    program = masking.noise_program(_spec(noise), clean.shape[1], corpus=store)
    snr = masking.check_levels(FLAGS.noise_spl, 60.0, False)
    mixed, _ = jax.jit(masking.mix)(clean, program(keys.test_noise(FLAGS.seed), rows), np.float32(snr))
    s = intelligibility.intelligibility(clean, np.asarray(mixed), metrics=("stoi",))
    return metrics.clustered_mean_ci(s.stoi, np.asarray(store.groups)[rows].astype(str), seed=FLAGS.seed)


def _fmt(rec) -> str:
    lo, hi = rec["ci95"]
    ci = f" [{lo:.3f}, {hi:.3f}]" if lo is not None else ""
    return f"{rec['accuracy']:.3f}{ci}"


def main(argv):
    if not FLAGS.out or not FLAGS.masker:
        raise app.UsageError("--masker and --out are required")
    from maskgan_jax import masking, results
    try:
        for n in FLAGS.noises:
            masking.check_spec(_spec(n))
    except ValueError as e:
        raise app.UsageError(str(e)) from None

    def log(m):
        print(m, flush=True)

    entries = list(FLAGS.corpora) + ([f"commands:{FLAGS.commands}" if FLAGS.commands != "commands" else "commands"]
                                     if FLAGS.commands else [])
    rows, recs = [], []
    for entry in entries:
        store, task, label = _store(entry)
        for model in FLAGS.models:
            white = None
            for noise in FLAGS.noises:
                run = _attack(store, task, label, model, noise, log)
                white = run if noise == "white" else white
                s = run[-1]
                folds = [r for r in run if r.get("kind") == "fold"]
                # Folds whose kept parameters are the probe readout alone (step 0, or the fallback rule).
                kept = sum(bool(r.get("kept_probe")) or r.get("best_step") == 0 for r in folds)
                d = _versus_white(run, white)
                diff = f"{d.value:+.3f} [{d.ci95[0]:+.3f}, {d.ci95[1]:+.3f}]" if d is not None else ""
                recs.append({"corpus": label, "task": task, "model": model, "noise": noise, "summary": s,
                             "minus_white": d.to_dict() if d is not None else None, "kept_probe_folds": kept})
                rows.append(f"| {label} | {model} | {noise} | {_fmt(s)} | {diff} | {s.get('n_clusters', '')} | "
                            f"{kept}/{len(folds) if model != 'probe' else '-'} |")
                log(rows[-1])
        if task == "commands" and FLAGS.utility_clips > 0:
            for noise in (n for n in FLAGS.noises if n != "none"):
                e = _stoi(store, noise)
                recs.append({"corpus": label, "task": task, "noise": noise, "stoi": e.to_dict()})
                lo, hi = e.ci95
                rows.append(f"| {label} | STOI | {noise} | {e.value:.3f} [{lo:.3f}, {hi:.3f}] | | "
                            f"{e.n} of {min(FLAGS.utility_clips, len(store))} clips scored | |")
                log(rows[-1])
    results.write_jsonl_atomic(os.path.join(FLAGS.out, "summary.jsonl"), recs)
    table = ["| corpus | attacker | noise | accuracy (or STOI) [95 % CI] | minus white [95 % CI] | clusters "
             "| folds that kept the probe |", "|---|---|---|---|---|---|---|", *rows]
    with open(os.path.join(FLAGS.out, "table.md"), "w") as f:
        f.write("\n".join(table) + "\n")
    print("\n".join(table))


def run():
    """Console entry point (the same help and errors as python -m)."""
    cli.run(main, __name__)


if __name__ == "__main__":
    run()
