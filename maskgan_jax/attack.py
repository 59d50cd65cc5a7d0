"""Inference attacks: one K-fold attack run, its config and its result records.

An attack trains an attacker family (CNN / RNN / CRNN on on-device log-mel) per fold and
tests it: folds are split by speaker/actor/artist (`attack_folds`), each fold trains with
early stopping on a validation split of its training groups (`attack_loop`) and reports
test accuracy, per-class recall and, for multi-attribute tasks, per-attribute and
all-attributes-correct accuracy. Adversaries (`vocab.ADVERSARIES`): ``static`` trains on
clean audio and is tested on masked audio; ``adaptive`` trains and is tested on masked
audio; ``denoise`` runs a denoising front end before its log-mel. The masking noise comes
from `masking` and is mixed inside the jitted steps (`attack_steps`).
"""
from __future__ import annotations

import dataclasses
import json
import time
from typing import Any, Callable

import numpy as np

from maskgan_jax import attack_folds, attack_loop, attack_steps, keys, masking, metrics, parallel, results
from maskgan_jax.data.batches import as_array_data
from maskgan_jax.models import attackers
from maskgan_jax.vocab import ADVERSARIES, SAMPLE_RATE

FRONT_END_AT = ("test", "both")


@dataclasses.dataclass(frozen=True)
class MelConfig:
    """The log-mel front end (DESIGN.md defaults)."""
    sample_rate: int = SAMPLE_RATE
    n_fft: int = 1024
    hop_length: int = 256
    n_mels: int = 128
    fmin: float = 0.0
    fmax: float | None = None


@dataclasses.dataclass(frozen=True)
class AttackConfig:
    """Everything one attack run needs besides its data (written next to every result)."""
    task: str = ""
    model: attackers.AttackerConfig = attackers.AttackerConfig()
    mel: MelConfig = MelConfig()
    noise: str = "none"                  # none | white | pink | brown | gan:DIR | dir:DIR
    noise_spl: float = 45.0
    speech_spl: float = 60.0
    allow_above_comfort: bool = False
    adversary: str = "static"            # static | adaptive | denoise (vocab.ADVERSARIES)
    front_end: str = "none"              # a registered front end (attack_steps.register_front_end)
    front_end_at: str = "test"           # test | both (also in training)
    folds: int = 5
    val_fraction: float = 0.15
    epochs: int = 30
    patience: int = 5
    batch_size: int = 64
    learning_rate: float = 1e-3
    seed: int = 0
    num_devices: int | None = None       # None: all local devices

    def validate(self) -> "AttackConfig":
        """Raises ValueError naming the bad flag."""
        masking.parse_noise(self.noise)
        masking.check_levels(self.noise_spl, self.speech_spl, self.allow_above_comfort)
        if self.adversary not in ADVERSARIES:
            raise ValueError(f"--adversary={self.adversary!r}: expected one of {', '.join(ADVERSARIES)}")
        if self.front_end not in attack_steps.front_ends():
            raise ValueError(f"--front_end={self.front_end!r}: expected one of "
                             f"{', '.join(attack_steps.front_ends())}")
        if self.adversary == "denoise" and self.front_end == "none":
            raise ValueError("--adversary=denoise needs a denoising --front_end (wiener or subtraction)")
        if self.front_end_at not in FRONT_END_AT:
            raise ValueError(f"front_end_at={self.front_end_at!r}: expected one of {FRONT_END_AT}")
        if self.folds < 1:
            raise ValueError(f"--folds={self.folds} must be >= 1 (1 = the corpus's own splits)")
        if self.epochs < 1 or self.patience < 1 or self.batch_size < 1:
            raise ValueError("--epochs, --patience and --batch_size must be positive")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction={self.val_fraction} must be in (0, 1)")
        return self

    def to_json(self) -> dict:
        """The config as it reads back from a results file (tuples become lists)."""
        return json.loads(results.dumps(dataclasses.asdict(self)))


# ----------------------------------------------------------------------------- records

def _record_base(cfg: AttackConfig, kind: str) -> dict:
    return {"kind": kind, "task": cfg.task, "model": cfg.model.model, "noise": cfg.noise,
            "noise_spl": cfg.noise_spl, "speech_spl": cfg.speech_spl, "adversary": cfg.adversary,
            "front_end": cfg.front_end, "seed": cfg.seed}


def summary_record(cfg: AttackConfig, fold_records: list[dict]) -> dict:
    """Mean accuracy over folds with a Student-t 95 % interval."""
    accs = [r["accuracy"] for r in fold_records]
    est = metrics.mean_ci(accs)
    rec = _record_base(cfg, "summary")
    rec.update({"accuracy": est.value, "ci95": est.ci95, "ci_method": est.method, "n_folds": len(accs),
                "fold_accuracies": accs})
    if all("all_correct_accuracy" in r for r in fold_records):
        rec["all_correct_accuracy"] = float(np.mean([r["all_correct_accuracy"] for r in fold_records]))
    attrs = fold_records[0]["per_attribute"].keys() if fold_records else []
    rec["per_attribute_accuracy"] = {a: float(np.mean([r["per_attribute"][a]["accuracy"] for r in fold_records]))
                                     for a in attrs}
    rec.update({"config": dataclasses.asdict(cfg), "versions": results.versions()})
    return rec


# ----------------------------------------------------------------------------- the run

def run_attack(config: AttackConfig, data: Any, out_path: str | None = None,
               log: Callable[[str], None] = print) -> list[dict]:
    """Runs the K-fold attack; returns (and writes atomically to ``out_path``) fold and summary records.

    Folds already in ``out_path`` with the same config are reused, so an interrupted run resumes.
    """
    cfg = config.validate()
    data = as_array_data(data)
    heads = [(a, len(data.classes[a])) for a in data.classes]
    mesh = parallel.make_mesh(cfg.num_devices)
    parallel.check_batch_size(cfg.batch_size, mesh, "--batch_size")
    clip = int(data.audio.shape[1])
    program = masking.noise_program(cfg.noise, clip, cfg.mel.sample_rate)
    snr = masking.check_levels(cfg.noise_spl, cfg.speech_spl, cfg.allow_above_comfort)
    steps = attack_steps.get_steps(cfg, heads, clip, mesh)
    train_hears, test_hears = attack_loop.hearings(cfg, program, snr)
    splits = attack_folds.fold_indices(data.groups, data.splits, cfg.folds, cfg.seed, cfg.val_fraction)
    cfg_dict = dataclasses.asdict(cfg)
    done = {}
    if out_path:
        for r in results.read_jsonl(out_path):
            if r.get("kind") == "fold" and r.get("config") == cfg.to_json():
                done[r["fold"]] = r
    test_key = keys.test_noise(cfg.seed)
    records = []
    for f, split in enumerate(splits):
        if f in done:
            log(f"[attack] fold {f + 1}/{len(splits)}: done already, reused")
            records.append(done[f])
            continue
        log(f"[attack] fold {f + 1}/{len(splits)}: train {split['train'].size}, "
            f"valid {split['valid'].size}, test {split['test'].size}")
        t0 = time.perf_counter()
        params, info = attack_loop.train_fold(steps, data, split, cfg.seed, f, train_hears, log)
        test = attack_loop.evaluate(steps, params, data, split["test"], test_key, test_hears)
        rec = _record_base(cfg, "fold")
        rec.update({"fold": f, "folds": len(splits), "n_train": int(split["train"].size),
                    "n_valid": int(split["valid"].size), "n_test": int(split["test"].size)})
        rec.update(test)
        rec.update(info)
        rec.update({"seconds": time.perf_counter() - t0, "devices": parallel.describe(mesh),
                    "noise_info": program.info if program else None, "corpus": data.name,
                    "config": cfg_dict, "versions": results.versions()})
        log(f"[attack] fold {f + 1}/{len(splits)}: test accuracy {rec['accuracy']:.4f}")
        records.append(rec)
        if out_path and parallel.is_main_process():
            results.write_jsonl_atomic(out_path, records)
    records.append(summary_record(cfg, records))
    if out_path and parallel.is_main_process():
        results.write_jsonl_atomic(out_path, records)
    return records
