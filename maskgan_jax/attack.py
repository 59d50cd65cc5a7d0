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
import functools
import json
import time
from typing import Any, Callable

import numpy as np

from maskgan_jax import (attack_folds, attack_invert, attack_loop, attack_steps, keys, masking, metrics, parallel,
                         probe, results)
from maskgan_jax import room as room_lib
from maskgan_jax.data.batches import as_array_data
from maskgan_jax.models import attackers
from maskgan_jax.vocab import ADVERSARIES, CHANNELS, SAMPLE_RATE

FRONT_END_AT = ("test", "both")
SCHEDULES = ("constant", "cosine")
READOUT_INITS = ("random", "probe")


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
    noise: str = "none"                  # none | white | pink | brown | speech_shaped | babble | gan:DIR | dir:DIR
                                         # | masker:DIR
    noise_spl: float = 45.0
    speech_spl: float = 60.0
    allow_above_comfort: bool = False
    adversary: str = "static"            # static | adaptive | denoise (vocab.ADVERSARIES)
    channel: str = "digital"             # digital (sample-wise mix) | room (vocab.CHANNELS)
    rooms: int = 32                      # room channel: rooms in the bank (one drawn per example)
    room_seed: int = 0                   # room channel: seed of the bank's rooms
    front_end: str = "none"              # a registered front end (attack_steps.register_front_end)
    front_end_at: str = "test"           # test | both (also in training)
    invert_gan: str = ""                 # invert: the generator it knows (gan:DIR; default the cell's GAN noise)
    invert_starts: int = 2               # invert: latent-search starts per clip ...
    invert_steps: int = 60               # ... and Adam steps (invert.InvertConfig)
    folds: int = 5
    val_fraction: float = 0.15
    epochs: int = 30                     # at most this many passes over the training split ...
    min_steps: int = 0                   # ... but at least this many optimiser steps, whatever its size
    eval_every: int = 0                  # optimiser steps between validations (0: about 40 per run)
    patience: int = 5                    # validations without improvement before stopping (after min_steps)
    select_on: str = "accuracy"          # accuracy | loss: the validation figure that picks the kept parameters
    batch_size: int = 64
    learning_rate: float = 1e-3          # peak learning rate
    schedule: str = "constant"           # constant | cosine (linear warmup, cosine decay over the run)
    warmup_fraction: float = 0.0
    weight_decay: float = 0.0            # AdamW's decoupled weight decay
    time_shift: float = 0.0              # training: random circular shift, fraction of the clip
    time_masks: int = 0                  # training: SpecAugment masks over frames ...
    freq_masks: int = 0                  # ... and over mel bands,
    mask_width: float = 0.1              # each up to this fraction of its axis
    probe_l2_grid: tuple = probe.L2_GRID  # the probe family's regularisation grid (chosen on validation)
    readout_init: str = "random"         # random | probe: a neural readout on input statistics starts
                                         # from the probe fitted on the fold's training split
    seed: int = 0
    num_devices: int | None = None       # None: all local devices

    def validate(self) -> "AttackConfig":
        """Raises ValueError naming the bad flag."""
        masking.check_spec(self.noise)
        masking.check_levels(self.noise_spl, self.speech_spl, self.allow_above_comfort)
        if self.channel not in CHANNELS:
            raise ValueError(f"--channel={self.channel!r}: expected one of {', '.join(CHANNELS)}")
        if self.channel == "room" and self.rooms < 1:
            raise ValueError(f"--rooms={self.rooms} must be >= 1")
        if self.adversary not in ADVERSARIES:
            raise ValueError(f"--adversary={self.adversary!r}: expected one of {', '.join(ADVERSARIES)}")
        if self.front_end not in attack_steps.front_ends():
            raise ValueError(f"--front_end={self.front_end!r}: expected one of "
                             f"{', '.join(attack_steps.front_ends())}")
        if self.adversary == "invert":
            attack_invert.generator_spec(self)
            if self.channel != "digital" or self.invert_starts < 1 or self.invert_steps < 1:
                raise ValueError("--adversary=invert needs the digital channel and invert_starts, invert_steps >= 1")
        if self.adversary == "denoise" and self.front_end == "none":
            raise ValueError("--adversary=denoise needs a denoising --front_end (wiener or subtraction)")
        if self.front_end_at not in FRONT_END_AT:
            raise ValueError(f"front_end_at={self.front_end_at!r}: expected one of {FRONT_END_AT}")
        if self.folds < 1:
            raise ValueError(f"--folds={self.folds} must be >= 1 (1 = the corpus's own splits)")
        if self.epochs < 1 or self.patience < 1 or self.batch_size < 1:
            raise ValueError("--epochs, --patience and --batch_size must be positive")
        if self.min_steps < 0 or self.eval_every < 0:
            raise ValueError("--min_steps and --eval_every must be >= 0")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"--schedule={self.schedule!r}: expected one of {', '.join(SCHEDULES)}")
        if not (0.0 <= self.warmup_fraction < 1.0 and self.weight_decay >= 0.0 and 0.0 <= self.time_shift < 0.5
                and self.time_masks >= 0 and self.freq_masks >= 0 and 0.0 < self.mask_width < 1.0):
            raise ValueError("warmup_fraction in [0, 1), weight_decay >= 0, time_shift in [0, 0.5), "
                             "masks >= 0 and mask_width in (0, 1) are required")
        if self.select_on not in ("accuracy", "loss"):
            raise ValueError(f"select_on={self.select_on!r}: expected accuracy or loss")
        if self.readout_init not in READOUT_INITS:
            raise ValueError(f"readout_init={self.readout_init!r}: expected one of {READOUT_INITS}")
        if self.readout_init == "probe" and self.model.model != "probe" and not self.model.input_stats:
            raise ValueError("readout_init='probe' needs a readout on input statistics (input_stats=True)")
        if not self.probe_l2_grid or min(self.probe_l2_grid) <= 0:
            raise ValueError(f"probe_l2_grid={self.probe_l2_grid}: positive values required")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction={self.val_fraction} must be in (0, 1)")
        return self

    def to_json(self) -> dict:
        """The config as it reads back from a results file (tuples become lists); the model's
        compute_dtype only when not float32, so that float32 records and fingerprints read as
        before it existed."""
        d = json.loads(results.dumps(dataclasses.asdict(self)))
        if d["model"].get("compute_dtype") == "float32":
            del d["model"]["compute_dtype"]
        return d


# ----------------------------------------------------------------------------- records

def _record_base(cfg: AttackConfig, kind: str) -> dict:
    return {"kind": kind, "task": cfg.task, "model": cfg.model.model, "noise": cfg.noise,
            "noise_spl": cfg.noise_spl, "speech_spl": cfg.speech_spl, "adversary": cfg.adversary,
            "channel": cfg.channel, "front_end": cfg.front_end, "seed": cfg.seed}


def pooled_outcomes(fold_records: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(store rows [N], correct [N, attributes] 1/0/-1, group of each row) pooled over the folds' tests,
    sorted by row (so that two cells on the same examples line up)."""
    rows, correct, groups = [], [], []
    for r in fold_records:
        o = r["outcomes"]
        rows.append(np.asarray(o["index"], np.int64))
        groups.append(np.asarray(o["group"], dtype=str))
        correct.append(np.stack([np.asarray(v, np.int8) for v in o["correct"].values()], axis=1))
    rows = np.concatenate(rows)
    order = np.argsort(rows, kind="stable")
    return rows[order], np.concatenate(correct)[order], np.concatenate(groups)[order]


def summary_record(cfg: AttackConfig, fold_records: list[dict]) -> dict:
    """Accuracy of the pooled per-example test outcomes with a 95 % interval from a bootstrap over
    the fold groups (speakers, actors, artists), and the mean over folds with its Student-t
    interval beside it (``fold_mean_accuracy``, ``t_ci95``)."""
    accs = [r["accuracy"] for r in fold_records]
    t = metrics.mean_ci(accs)
    rec = _record_base(cfg, "summary")
    rec.update({"accuracy": t.value, "ci95": t.ci95, "ci_method": t.method, "t_ci95": t.ci95,
                "n_folds": len(accs), "fold_accuracies": accs})
    if fold_records and all("outcomes" in r for r in fold_records):
        _rows, correct, cluster = pooled_outcomes(fold_records)
        est = metrics.clustered_bootstrap_ci(correct, cluster, seed=cfg.seed)
        rec.update({"accuracy": est.value, "ci95": est.ci95, "ci_method": est.method,
                    "fold_mean_accuracy": t.value, "n_examples": int(correct.shape[0]),
                    "n_clusters": int(np.unique(cluster).size)})
    if all("all_correct_accuracy" in r for r in fold_records):
        rec["all_correct_accuracy"] = float(np.mean([r["all_correct_accuracy"] for r in fold_records]))
    attrs = fold_records[0]["per_attribute"].keys() if fold_records else []
    rec["per_attribute_accuracy"] = {a: float(np.mean([r["per_attribute"][a]["accuracy"] for r in fold_records]))
                                     for a in attrs}
    rec.update({"config": cfg.to_json(), "versions": results.versions()})
    return rec


# ----------------------------------------------------------------------------- the run

def room_channel(cfg: AttackConfig, clip: int, room_dir: str | None = None,
                 log: Callable[[str], None] = print) -> attack_loop.RoomChannel | None:
    """The room channel of a config (its RIR bank built once and cached in ``room_dir``), or None."""
    if cfg.channel != "room":
        return None
    bank = _rir_bank(cfg.room_seed, cfg.rooms, room_dir, log)
    return attack_loop.RoomChannel.make(bank, clip, cfg.speech_spl, cfg.noise_spl)


@functools.lru_cache(maxsize=4)
def _rir_bank(seed: int, n_rooms: int, room_dir: str | None, log) -> room_lib.RirBank:
    return room_lib.build_rir_bank(room_lib.RoomConfig(), seed, n_rooms, cache_dir=room_dir, log=log)


def adversary_data(cfg: AttackConfig, data, program, snr: float, cache_dir: str | None,
                   log: Callable[[str], None] = print):
    """(data, noise program, extra record fields) as the adversary works on them: the invert
    adversary works on its residuals of the masked clips (no further noise), every other on the corpus."""
    if cfg.adversary != "invert":
        return data, program, {}
    data, info = attack_invert.residual_data(cfg, data, program, snr, cache_dir, log)
    return data, None, {"invert": info}


def run_attack(config: AttackConfig, data: Any, out_path: str | None = None,
               log: Callable[[str], None] = print, room_dir: str | None = None) -> list[dict]:
    """Runs the K-fold attack; returns (and writes atomically to ``out_path``) fold and summary records.

    Folds already in ``out_path`` with the same config are reused, so an interrupted run resumes.
    The room channel's impulse responses (and the invert adversary's residuals) are cached
    in ``room_dir``.
    """
    cfg = config.validate()
    data = as_array_data(data)
    heads = [(a, len(data.classes[a])) for a in data.classes]
    mesh = parallel.make_mesh(cfg.num_devices)
    parallel.check_batch_size(cfg.batch_size, mesh, "--batch_size")
    clip = int(data.audio.shape[1])
    program = masking.noise_program(cfg.noise, clip, cfg.mel.sample_rate, corpus=data)
    snr = masking.check_levels(cfg.noise_spl, cfg.speech_spl, cfg.allow_above_comfort)
    steps = attack_steps.get_steps(cfg, heads, clip, mesh)
    data, heard, extra = adversary_data(cfg, data, program, snr, room_dir, log)
    train_hears, test_hears = attack_loop.hearings(cfg, heard, snr, room_channel(cfg, clip, room_dir, log))
    splits = attack_folds.fold_indices(data.groups, data.splits, cfg.folds, cfg.seed, cfg.val_fraction)
    cfg_dict = cfg.to_json()
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
        params, info = attack_loop.fit(steps, data, split, cfg.seed, f, train_hears, log)
        test = attack_loop.test(steps, params, data, split["test"], test_key, test_hears)
        rec = _record_base(cfg, "fold")
        rec.update({"fold": f, "folds": len(splits), "n_train": int(split["train"].size),
                    "n_valid": int(split["valid"].size), "n_test": int(split["test"].size)})
        rec.update(test)
        rec.update(info)
        rec.update({"seconds": time.perf_counter() - t0, "devices": parallel.describe(mesh),
                    "noise_info": program.info if program else None, "corpus": data.name, **extra,
                    "config": cfg_dict, "versions": results.versions()})
        log(f"[attack] fold {f + 1}/{len(splits)}: test accuracy {rec['accuracy']:.4f}")
        records.append(rec)
        if out_path and parallel.is_main_process():
            results.write_jsonl_atomic(out_path, records)
    records.append(summary_record(cfg, records))
    if out_path and parallel.is_main_process():
        results.write_jsonl_atomic(out_path, records)
    return records
