"""Runs the probe attacker on a task's corpus with the attack's folds, and writes JSON lines.

    python scripts/probe_folds.py --task=sei --data_dir=DIR --folds=2 [--seed=0] --out=FILE.jsonl

The folds are the attack binary's (``attack_folds.fold_indices`` with the same seed and
validation share), so the figures sit beside ``experiments.attack`` results on the same
splits. Without --data_dir the task's embedded corpus is used.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from maskgan_jax import attack, probe, results  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", required=True, choices=["mgi", "udi", "sei", "commands"])
    p.add_argument("--data_dir", default=None)
    p.add_argument("--cache_dir", default=None)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--val_fraction", type=float, default=attack.AttackConfig.val_fraction)
    p.add_argument("--grid", default=",".join(f"{g:g}" for g in probe.L2_GRID), help="l2 values to choose from")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    try:
        grid = tuple(float(g) for g in args.grid.split(","))
        data = attack.open_task_data(args.task, args.data_dir, args.cache_dir)
    except ValueError as e:
        p.error(str(e))
    t0 = time.perf_counter()
    folds = probe.cross_validate(data, args.folds, args.seed, args.val_fraction, grid=grid)
    summary = probe.summarize_folds(folds, seed=args.seed)
    config = {"task": args.task, "data_dir": args.data_dir, "folds": args.folds, "seed": args.seed,
              "val_fraction": args.val_fraction, "grid": grid, "mel": dataclasses.asdict(probe.MelSpec()),
              "top_db": probe.TOP_DB}
    summary.update({"task": args.task, "seed": args.seed, "seconds": time.perf_counter() - t0,
                    "corpus": getattr(data, "name", ""), "config": config, "versions": results.versions()})
    for r in folds:
        r.update({"task": args.task, "config": config})
    results.write_jsonl_atomic(args.out, folds + [summary])
    lo, hi = summary["ci95"]
    print(f"[probe] {args.task}: accuracy {summary['accuracy']:.4f} over {args.folds} folds; pooled "
          f"{summary['pooled_accuracy']:.4f} (95% cluster-bootstrap CI {lo:.4f}..{hi:.4f}, "
          f"{summary['n_clusters']} groups) in {summary['seconds']:.1f} s -> {args.out}")


if __name__ == "__main__":
    main()
