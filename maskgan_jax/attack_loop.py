"""The attacker's host loop: what each phase hears, training with early stopping, evaluation.

A phase (train, valid, test) hears clean or masked audio, with or without the adversary's
front end (`Hearing`). Masked batches get their noise from a `masking.NoiseProgram` keyed
by the phase's key and the examples' store rows (`keys`), and the SNR travels into the
step as an input, so the same compiled steps serve every noise and level.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable

import jax
import numpy as np

from maskgan_jax import keys, masking, parallel
from maskgan_jax.attack_steps import Steps
from maskgan_jax.data.batches import ArrayData, host_batches, prefetch_to_mesh


@dataclasses.dataclass(frozen=True)
class Hearing:
    """What one phase hears: clean audio, or noise from ``noise`` at ``snr_db``; the front end or not."""
    noise: masking.NoiseProgram | None = None
    snr_db: float = 0.0
    front: bool = False

    @property
    def masked(self) -> bool:
        """True when the phase hears masking noise."""
        return self.noise is not None

    def with_noise(self, batch: dict, key: jax.Array) -> dict:
        """The device batch with this phase's noise for its rows (unchanged when clean)."""
        if self.noise is None:
            return batch
        return {**batch, "noise": self.noise(key, batch["index"])}


CLEAN = Hearing()


def hearings(cfg, noise: masking.NoiseProgram | None, snr_db: float) -> tuple[Hearing, Hearing]:
    """(training/validation, test) hearing of an attack config.

    static and denoise adversaries train on clean audio and are tested on masked audio; the
    adaptive adversary trains on masked audio too. The front end runs at test time, and in
    training when ``front_end_at == "both"``.
    """
    front = cfg.front_end != "none"
    train_noise = noise if cfg.adversary == "adaptive" else None
    train = Hearing(train_noise, snr_db if train_noise is not None else 0.0,
                    front and cfg.front_end_at == "both")
    test = Hearing(noise, snr_db if noise is not None else 0.0, front)
    return train, test


def _attributes(steps: Steps) -> list[str]:
    return [a for a, _ in steps.heads]


def evaluate(steps: Steps, params, data: ArrayData, idx: np.ndarray, key: jax.Array,
             hearing: Hearing = CLEAN) -> dict:
    """Accuracy over rows ``idx``: per attribute accuracy and recall, all-correct, mean."""
    totals: dict[str, np.ndarray] = {}
    fn = steps.evaluate(hearing.masked, hearing.front)
    for b in prefetch_to_mesh(host_batches(data, idx, steps.cfg.batch_size, _attributes(steps)), steps.mesh):
        out = jax.device_get(fn(params, hearing.with_noise(b, key), key, hearing.snr_db))
        for k, v in out.items():
            totals[k] = totals[k] + np.asarray(v) if k in totals else np.asarray(v)
    return summarize(totals, steps.heads, data.classes)


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


def train_fold(steps: Steps, data: ArrayData, split: dict, seed: int, fold: int,
               hearing: Hearing = CLEAN, log: Callable[[str], None] = print) -> tuple[Any, dict]:
    """Trains with early stopping on the validation split; returns (best params, training info).

    Validation hears what training hears (``hearing``).
    """
    cfg = steps.cfg
    fold_key = keys.fold(seed, fold)
    state = steps.init(keys.init(fold_key))
    rng = keys.batch_order(seed, fold)
    val_key = keys.valid_noise(fold_key)
    step = steps.train(hearing.masked, hearing.front)
    best, best_acc, best_epoch, history = None, -1.0, -1, []
    for epoch in range(cfg.epochs):
        t0 = time.perf_counter()
        key = keys.epoch(fold_key, epoch)
        losses = []
        for b in prefetch_to_mesh(host_batches(data, split["train"], cfg.batch_size, _attributes(steps), rng),
                                  steps.mesh):
            state, m = step(state, hearing.with_noise(b, key), key, hearing.snr_db)
            losses.append(m["loss"])
        loss = float(np.mean(jax.device_get(losses)))
        if not np.isfinite(loss):
            raise FloatingPointError(f"attack training diverged at epoch {epoch}: loss {loss}")
        val = evaluate(steps, state["params"], data, split["valid"], val_key, hearing)
        history.append({"epoch": epoch, "loss": loss, "val_accuracy": val["accuracy"],
                        "seconds": time.perf_counter() - t0})
        acc = val["accuracy"] if val["accuracy"] is not None else 0.0
        log(f"[attack] epoch {epoch}: loss {loss:.4f} val acc {acc:.4f} ({history[-1]['seconds']:.1f}s)")
        if acc > best_acc:
            best, best_acc, best_epoch = jax.device_get(state["params"]), acc, epoch
        elif epoch - best_epoch >= cfg.patience:
            break
    return parallel.replicate(best, steps.mesh), {"best_epoch": best_epoch, "val_accuracy": best_acc,
                                                  "epochs_trained": len(history), "history": history}
