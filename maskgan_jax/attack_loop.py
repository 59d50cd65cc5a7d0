"""The attacker's host loop: what each phase hears, training with early stopping, evaluation.

A phase (train, valid, test) hears clean or masked audio, with or without the adversary's
front end (`Hearing`). Masked batches get their noise from a `masking.NoiseProgram` keyed
by the phase's key and the examples' store rows (`keys`), and the SNR travels into the
step as an input, so the same compiled steps serve every noise and level.
"""
from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any, Callable

import jax
import numpy as np
import optax

from maskgan_jax import attack_folds, keys, masking, parallel, probe
from maskgan_jax import room as room_lib
from maskgan_jax.attack_steps import Steps
from maskgan_jax.data.batches import ArrayData, host_batches, prefetch_to_mesh
from maskgan_jax.models import attackers


@dataclasses.dataclass(frozen=True)
class RoomChannel:
    """The room channel on device: a bank's response spectra for one clip length and the levels."""
    spectra: Any                 # room.PathSpectra [R, bins] on device
    n_rooms: int
    speech_rms: float            # the talker's speech, 1 m away (playback calibration)
    noise_rms: float             # the masker at the listener

    @classmethod
    def make(cls, bank, clip: int, speech_spl: float, noise_spl: float) -> "RoomChannel":
        """From a RIR bank (`room.build_rir_bank`) for clips of ``clip`` samples."""
        return cls(_spectra(bank, clip), bank.n_rooms, float(room_lib.level_rms(speech_spl)),
                   float(room_lib.level_rms(noise_spl)))


_SPECTRA: dict = {}


def _spectra(bank, clip: int):
    """A bank's response spectra for one clip length, computed once per bank and length."""
    k = (id(bank), clip)
    if k not in _SPECTRA:
        _SPECTRA.clear()   # one bank at a time: the spectra are large
        _SPECTRA[k] = (bank, bank.spectra(clip))
    return _SPECTRA[k][1]


@functools.lru_cache(maxsize=8)
def _room_picker(n_rooms: int):
    return jax.jit(lambda spectra, key, index_B: room_lib.select(
        spectra, room_lib.room_index(keys.per_example(key, index_B), n_rooms)))


@dataclasses.dataclass(frozen=True)
class Hearing:
    """What one phase hears: clean audio, or noise from ``noise`` at ``snr_db``; the front end or not;
    the digital mix, or speech and masker through a room (``room``) per example."""
    noise: masking.NoiseProgram | None = None
    snr_db: float = 0.0
    front: bool = False
    room: RoomChannel | None = None

    @property
    def masked(self) -> bool:
        """True when the phase hears masking noise."""
        return self.noise is not None

    @property
    def mode(self) -> tuple[bool, bool, bool]:
        """(masked, front end, room): which compiled variant of the steps this phase uses."""
        return self.masked, self.front, self.room is not None

    @property
    def args(self) -> np.ndarray:
        """The steps' ``mix_args``: [SNR dB, speech RMS, noise RMS] (the last two for the room)."""
        r = self.room
        return np.asarray([self.snr_db, r.speech_rms if r else 0.0, r.noise_rms if r else 0.0], np.float32)

    def with_noise(self, batch: dict, key: jax.Array) -> dict:
        """The device batch with this phase's noise and rooms for its rows (keyed by the rows)."""
        out = batch
        if self.noise is not None:
            out = {**out, "noise": self.noise(key, batch["index"])}
        if self.room is not None:
            out = {**out, "room": _room_picker(self.room.n_rooms)(self.room.spectra, key, batch["index"])}
        return out


CLEAN = Hearing()


def hearings(cfg, noise: masking.NoiseProgram | None, snr_db: float,
             room: RoomChannel | None = None) -> tuple[Hearing, Hearing]:
    """(training/validation, test) hearing of an attack config.

    The static adversary trains on clean audio and is tested on masked audio; the adaptive
    adversary trains on masked audio too; the denoising adversary trains and is tested on
    masked audio through its front end. Another adversary's front end runs at test time,
    and in training when ``front_end_at == "both"``. In the room channel every phase hears
    the room (clean cells hear reverberant speech).
    """
    front = cfg.front_end != "none"
    train_noise = noise if cfg.adversary in ("adaptive", "denoise") else None
    train = Hearing(train_noise, snr_db if train_noise is not None else 0.0,
                    front and (cfg.front_end_at == "both" or cfg.adversary == "denoise"), room)
    test = Hearing(noise, snr_db if noise is not None else 0.0, front, room)
    return train, test


def _attributes(steps: Steps) -> list[str]:
    return [a for a, _ in steps.heads]


def _batches(steps: Steps, data: ArrayData, idx: np.ndarray, rng=None):
    return prefetch_to_mesh(host_batches(data, idx, steps.cfg.batch_size, _attributes(steps), rng), steps.mesh)


def evaluate(steps: Steps, params, data: ArrayData, idx: np.ndarray, key: jax.Array,
             hearing: Hearing = CLEAN) -> dict:
    """Accuracy over rows ``idx``: per attribute accuracy and recall, all-correct, mean, and the
    per-example outcomes (``outcomes``: store rows and, per attribute, 1 right / 0 wrong / -1 unlabelled)."""
    totals: dict[str, np.ndarray] = {}
    rows, correct = [], {a: [] for a in _attributes(steps)}
    fn = steps.evaluate(*hearing.mode)
    for b in _batches(steps, data, idx):
        # parallel.to_host: under several processes the per-example arrays span every process.
        out = parallel.to_host(fn(params, hearing.with_noise(b, key), key, hearing.args))
        real = parallel.to_host(b["weight"]) > 0
        rows.append(parallel.to_host(b["index"])[real])
        for k, v in out.items():
            if k.startswith("correct/"):
                correct[k[len("correct/"):]].append(np.asarray(v)[real])
            else:
                totals[k] = totals[k] + np.asarray(v) if k in totals else np.asarray(v)
    out = summarize(totals, steps.heads, data.classes)
    n = max(float(totals.get("n_loss", 0.0)), 1.0)
    mean = float(totals.get("loss", 0.0)) / n
    out["loss"] = mean
    out["loss_se"] = float(np.sqrt(max(float(totals.get("loss_sq", 0.0)) / n - mean ** 2, 0.0) / n))
    out["outcomes"] = outcomes(data, np.concatenate(rows) if rows else np.zeros(0, np.int64),
                               {a: np.concatenate(v) if v else np.zeros(0, np.int8) for a, v in correct.items()})
    return out


def outcomes(data: ArrayData, rows: np.ndarray, correct: dict[str, np.ndarray]) -> dict:
    """Per-example test outcomes as JSON-able lists: store rows, their fold group (speaker, actor,
    artist: the clusters of the bootstrap intervals), and 1 right / 0 wrong / -1 unlabelled per attribute."""
    rows = np.asarray(rows, np.int64)
    return {"index": rows.tolist(), "group": attack_folds.item_groups(data.groups)[rows].astype(str).tolist(),
            "correct": {a: np.asarray(v, np.int8).tolist() for a, v in correct.items()}}


def summarize(totals: dict, heads, classes: dict[str, list[str]]) -> dict:
    """Turns summed confusion matrices into accuracies and per-class recalls.

    ``accuracy`` is the mean of the per-attribute accuracies; with several attributes,
    ``all_correct_accuracy`` is the share of examples with at least one label whose every
    labelled attribute is predicted right (missing labels neither count nor fail).
    """
    per_attr = {}
    for name, _ in heads:
        cm = np.asarray(totals[f"confusion/{name}"], np.int64)
        n = int(cm.sum())
        rows = cm.sum(axis=1)
        recall = {c: (float(cm[i, i] / rows[i]) if rows[i] else None) for i, c in enumerate(classes[name])}
        per_attr[name] = {"accuracy": float(np.trace(cm) / n) if n else None, "n": n,
                          "recall": recall, "confusion": cm.tolist()}
    accs = [v["accuracy"] for v in per_attr.values() if v["accuracy"] is not None]
    out = {"accuracy": float(np.mean(accs)) if accs else None, "per_attribute": per_attr,
           "clipped_samples": int(totals.get("clipped", 0))}
    if len(heads) > 1:
        any_label = int(totals["any_label"])
        out["all_correct_accuracy"] = float(totals["all_correct"] / any_label) if any_label else None
    else:
        out["per_class_recall"] = per_attr[heads[0][0]]["recall"]
    return out


def plan(cfg, n_train: int) -> tuple[int, int]:
    """(optimiser steps, steps between validations) of one fold: at least ``min_steps`` steps
    whatever the training split's size, at most ``epochs`` passes beyond that."""
    per_epoch = max(1, -(-n_train // cfg.batch_size))
    total = max(cfg.min_steps, cfg.epochs * per_epoch)
    every = cfg.eval_every or max(per_epoch, -(-total // 40))
    return total, every


def learning_rate(cfg, total: int):
    """The schedule ``step -> learning rate`` (host side; the step receives it as an input)."""
    if cfg.schedule == "constant":
        return lambda step: cfg.learning_rate
    warmup = int(round(cfg.warmup_fraction * total))
    sched = optax.warmup_cosine_decay_schedule(0.0, cfg.learning_rate, max(warmup, 1), max(total, warmup + 1),
                                               end_value=0.01 * cfg.learning_rate)
    return lambda step: float(sched(step))


def _score(cfg, val: dict) -> tuple:
    """How a validation result ranks (higher is better): by accuracy then loss, or by loss then accuracy."""
    acc = val["accuracy"] if val["accuracy"] is not None else 0.0
    return (-val["loss"], acc) if cfg.select_on == "loss" else (acc, -val["loss"])


def train_fold(steps: Steps, data: ArrayData, split: dict, seed: int, fold: int,
               hearing: Hearing = CLEAN, log: Callable[[str], None] = print) -> tuple[Any, dict]:
    """Trains for the planned optimiser steps, validating every few steps; returns (best params, info).

    The kept parameters are those with the best validation accuracy (ties: lower validation
    loss), or the lowest validation loss with ``select_on="loss"``. After ``min_steps``,
    ``patience`` validations without improvement end the fold. A readout warm-started from
    the probe falls back to the probe (step 0) unless the kept step beats it on validation
    loss by more than one standard error.
    Validation hears what training hears (``hearing``).
    """
    cfg = steps.cfg
    fold_key = keys.fold(seed, fold)
    state = steps.init(keys.init(fold_key))
    rng = keys.batch_order(seed, fold)
    val_key = keys.valid_noise(fold_key)
    step_fn = steps.train(*hearing.mode)
    total, every = plan(cfg, int(split["train"].size))
    lr_of = learning_rate(cfg, total)
    best, best_score, best_step, best_epoch, history = None, None, -1, -1, []
    done, epoch, losses, since, t0 = 0, 0, [], 0, time.perf_counter()
    stop = False
    warm, start = None, None
    if cfg.readout_init == "probe":
        # The statistics readout is the probe fitted on this fold's training split (kept fixed,
        # `attack_steps.optimizer`): training starts where the probe ends and learns what to add,
        # and step 0 (the probe itself) is a candidate for the kept parameters.
        probe_params, warm = probe_train(steps, data, split, seed, fold, hearing)
        state = {**state, "params": parallel.replicate(
            attackers.warm_start_readout(jax.device_get(state["params"]), probe_params), steps.mesh)}
        val = evaluate(steps, state["params"], data, split["valid"], val_key, hearing)
        best, best_score, best_step, best_epoch = jax.device_get(state["params"]), _score(cfg, val), 0, 0
        history.append({"step": 0, "epoch": 0, "loss": None, "val_accuracy": val["accuracy"],
                        "val_loss": val["loss"], "val_loss_se": val["loss_se"], "seconds": time.perf_counter() - t0})
        start = (best, val)
    while done < total and not stop:
        key = keys.epoch(fold_key, epoch)
        for b in _batches(steps, data, split["train"], rng):
            state, m = step_fn(state, hearing.with_noise(b, key), key, hearing.args, lr_of(done))
            losses.append(m["loss"])
            done += 1
            if done % every and done < total:
                continue
            loss = float(np.mean(jax.device_get(losses)))
            losses = []
            if not np.isfinite(loss):
                raise FloatingPointError(f"attack training diverged at step {done}: loss {loss}")
            val = evaluate(steps, state["params"], data, split["valid"], val_key, hearing)
            acc = val["accuracy"] if val["accuracy"] is not None else 0.0
            history.append({"step": done, "epoch": epoch, "loss": loss, "val_accuracy": val["accuracy"],
                            "val_loss": val["loss"], "val_loss_se": val["loss_se"],
                            "seconds": time.perf_counter() - t0})
            log(f"[attack] step {done}/{total}: loss {loss:.4f} val acc {acc:.4f} val loss {val['loss']:.4f}")
            score = _score(cfg, val)
            if best_score is None or score > best_score:
                best, best_score, best_step, best_epoch, since = jax.device_get(state["params"]), score, done, epoch, 0
            else:
                since += 1
                if done >= cfg.min_steps and since >= cfg.patience:
                    stop = True
            if stop or done >= total:
                break
        epoch += 1
    kept_probe = False
    if warm is not None and best_step != 0:
        # One-standard-error rule: the learnt part is kept only when it beats the probe (step 0)
        # on validation loss by more than the standard error; with a few validation clips the
        # best step is otherwise as likely luck as learning.
        best_hist = next(h for h in history if h["step"] == best_step)
        if start[1]["loss"] - best_hist["val_loss"] <= best_hist["val_loss_se"]:
            best, best_step, best_epoch, kept_probe = start[0], 0, 0, True
    return parallel.replicate(best, steps.mesh), {
        "best_step": best_step, "best_epoch": best_epoch, "kept_probe": kept_probe,
        "val_accuracy": next((h["val_accuracy"] for h in history if h["step"] == best_step), None),
        "steps_trained": done,
        "steps_planned": total, "epochs_trained": epoch + (0 if stop or done >= total else 1),
        "history": history, "readout_init": warm["l2"] if warm else None}


# ----------------------------------------------------------------------------- the probe family

def _features(steps: Steps, data: ArrayData, idx: np.ndarray, key: jax.Array, hearing: Hearing):
    fn = steps.features(*hearing.mode)
    rows, feats = [], []
    for b in _batches(steps, data, idx):
        real = np.asarray(jax.device_get(b["weight"])) > 0
        feats.append(np.asarray(jax.device_get(fn(hearing.with_noise(b, key), hearing.args)))[real])
        rows.append(np.asarray(jax.device_get(b["index"]))[real])
    return np.concatenate(rows), np.concatenate(feats)


def _labels(steps: Steps, data: ArrayData, rows: np.ndarray) -> dict:
    return {a: np.asarray(data.labels[a], np.int32)[rows] for a in _attributes(steps)}


def probe_train(steps: Steps, data: ArrayData, split: dict, seed: int, fold: int,
                hearing: Hearing = CLEAN) -> tuple[dict, dict]:
    """Fits the probe on the training split's features (what ``hearing`` hears), l2 chosen on validation."""
    fold_key = keys.fold(seed, fold)
    parts = []
    for idx, key in ((split["train"], keys.epoch(fold_key, 0)), (split["valid"], keys.valid_noise(fold_key))):
        rows, x = _features(steps, data, idx, key, hearing)
        parts.append((x, _labels(steps, data, rows)))
    params, info = probe.fit_select(parts[0], parts[1], dict(steps.heads), steps.cfg.probe_l2_grid)
    return params, {"l2": {a: v["l2"] for a, v in info.items()}, "val_grid": info,
                    "val_accuracy": float(np.mean([max(r["val_accuracy"] or 0.0 for r in v["grid"])
                                                   for v in info.values()]))}


def probe_evaluate(steps: Steps, params: dict, data: ArrayData, idx: np.ndarray, key: jax.Array,
                   hearing: Hearing = CLEAN) -> dict:
    """The fitted probe on rows ``idx`` (what ``hearing`` hears): the same summary as `evaluate`."""
    rows, x = _features(steps, data, idx, key, hearing)
    y = _labels(steps, data, rows)
    logits = probe.predict_logits(params, x)
    totals: dict = {}
    correct = {}
    all_ok = np.ones(rows.size, bool)
    any_label = np.zeros(rows.size, bool)
    for a, n in steps.heads:
        valid = y[a] >= 0
        pred = np.argmax(logits[a], axis=-1)
        cm = np.zeros((n, n), np.int64)
        np.add.at(cm, (y[a][valid], pred[valid]), 1)
        totals[f"confusion/{a}"] = cm
        correct[a] = np.where(valid, pred == y[a], -1).astype(np.int8)
        all_ok &= (pred == y[a]) | ~valid
        any_label |= valid
    totals["all_correct"] = int((all_ok & any_label).sum())
    totals["any_label"] = int(any_label.sum())
    out = summarize(totals, steps.heads, data.classes)
    out["outcomes"] = outcomes(data, rows, correct)
    return out


# ----------------------------------------------------------------------------- any family

def fit(steps: Steps, data: ArrayData, split: dict, seed: int, fold: int, hearing: Hearing = CLEAN,
        log: Callable[[str], None] = print) -> tuple[Any, dict]:
    """Trains one fold's attacker (a neural family with `train_fold`, the probe with `probe_train`)."""
    if steps.model is None:
        return probe_train(steps, data, split, seed, fold, hearing)
    return train_fold(steps, data, split, seed, fold, hearing, log)


def test(steps: Steps, params, data: ArrayData, idx: np.ndarray, key: jax.Array, hearing: Hearing = CLEAN) -> dict:
    """Tests one fold's attacker on rows ``idx`` (`evaluate` or `probe_evaluate`)."""
    if steps.model is None:
        return probe_evaluate(steps, params, data, idx, key, hearing)
    return evaluate(steps, params, data, idx, key, hearing)
