"""The ``probe`` attacker family: L2-regularised multinomial logistic regression on log-mel statistics.

It is the floor every neural attacker must clear. Features of one clip (``features``): the
log-mel (dB) floored ``top_db`` below the clip's peak, as `models.attackers.standardize`
floors it; per mel band the mean and standard deviation over time; the same for the
frame-to-frame first differences (deltas); and the overall level (mean dB of the floored
log-mel). That is 4·n_mels + 1 values. They are standardised with the training split's
statistics, and each attribute gets its own softmax head, fitted full-batch with L-BFGS
(deterministic: zero start, no sampling) in float32, or float64 under ``jax.enable_x64``.
Rows whose label is missing (-1) are left out of that attribute's head; a class that never
occurs in training gets no probability.

The objective of one head, with ``l2`` the regularisation strength::

    mean_i CE(W·x_i + b, y_i) + l2/2 · ||W||²      (b unpenalised)

which is scikit-learn's ``LogisticRegression(C=1/(l2·n))`` for three or more classes; for
two classes scikit-learn fits one (binomial) coefficient vector, and the same minimiser is
``C=2/(l2·n)``. ``fit_select`` picks ``l2`` per head from a grid by validation accuracy
(ties by validation log-loss).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from maskgan_jax import attack_folds, metrics
from maskgan_jax import features as mel_features

TOP_DB = 80.0
L2_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)
_ROW_BUCKET = 64
_CLASS_BUCKET = 8
# Logit of a class absent from training: far below any fitted logit, finite so that
# softmax and log-softmax stay exact.
_ABSENT_LOGIT = -1e9


# ----------------------------------------------------------------------------- features

def features(mel_BxMxF: jax.Array, top_db: float | None = TOP_DB) -> jax.Array:
    """Log-mel summary statistics [B, 4M+1]: band mean/std, delta mean/std, overall level (dB)
    (`features.log_mel_statistics`)."""
    return mel_features.log_mel_statistics(mel_BxMxF, top_db)


def feature_names(n_mels: int) -> list[str]:
    """Names of the ``features`` columns, in order."""
    return ([f"mean/{i}" for i in range(n_mels)] + [f"std/{i}" for i in range(n_mels)]
            + [f"delta_mean/{i}" for i in range(n_mels)] + [f"delta_std/{i}" for i in range(n_mels)]
            + ["level"])


@dataclasses.dataclass(frozen=True)
class MelSpec:
    """The log-mel the probe reads (the attackers' defaults)."""
    sample_rate: int = 16000
    n_fft: int = 1024
    hop_length: int = 256
    n_mels: int = 128
    fmin: float = 0.0
    fmax: float | None = None


def wave_features(wave_BxT: jax.Array, mel: MelSpec = MelSpec(), top_db: float | None = TOP_DB) -> jax.Array:
    """float audio [B, T] -> probe features [B, 4M+1] (log-mel as `features.log_mel_spectrogram`)."""
    log_mel = mel_features.log_mel_spectrogram(wave_BxT, mel.sample_rate, mel.n_fft, mel.hop_length,
                                               mel.n_mels, mel.fmin, mel.fmax)
    return features(log_mel, top_db)


def audio_features(audio_NxT, indices: Sequence[int], mel: MelSpec = MelSpec(), top_db: float | None = TOP_DB,
                   batch_size: int = 64, transform=None) -> np.ndarray:
    """Probe features [len(indices), D] of int16 store rows, a batch at a time.

    ``transform`` is an optional jittable float wave_BxT -> wave_BxT applied before the log-mel
    (e.g. masking noise, a denoiser); the last batch is padded to ``batch_size`` so one
    program is compiled.
    """
    idx = np.asarray(indices, np.int64)

    @jax.jit
    def run(pcm):
        wave = pcm.astype(jnp.float32) * (1.0 / 32768.0)
        if transform is not None:
            wave = transform(wave)
        return wave_features(wave, mel, top_db)

    out = []
    for s in range(0, idx.size, batch_size):
        part = idx[s:s + batch_size]
        take = np.concatenate([part, np.repeat(part[:1], batch_size - part.size)])
        order = np.argsort(take, kind="stable")          # sequential reads on a memmap
        pcm = np.empty((take.size, audio_NxT.shape[1]), np.int16)
        pcm[order] = np.asarray(audio_NxT[take[order]])
        out.append(np.asarray(run(pcm))[:part.size])
    if not out:
        return np.zeros((0, 4 * mel.n_mels + 1), np.float32)
    return np.concatenate(out).astype(np.float32)


# ----------------------------------------------------------------------------- the model

def fit_standardizer(features_NxD) -> dict:
    """Training-set mean and scale per feature (scale 1 where a feature is constant)."""
    x = np.asarray(features_NxD, np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"probe: expected training features [N>0, D], got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("probe: training features hold NaN or infinite values")
    sd = x.std(axis=0)
    return {"mean": x.mean(axis=0).astype(_float()),
            "scale": np.where(sd > 1e-8 * (1.0 + np.abs(x).max(axis=0)), sd, 1.0).astype(_float())}


def _float():
    """The fit's float type: float32, or float64 under ``jax.enable_x64`` (for tight reference checks)."""
    return np.dtype(jax.dtypes.canonicalize_dtype(np.float64))


def _head_objective(params, x_NxD, y_N, w_N, l2, present_K):
    logits = x_NxD @ params["w"] + params["b"]
    logits = jnp.where(present_K, logits, _ABSENT_LOGIT)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, jnp.maximum(y_N, 0))
    return jnp.sum(ce * w_N) / jnp.sum(w_N) + 0.5 * l2 * jnp.sum(params["w"] ** 2)


@jax.jit
def _fit_head(x_NxD, y_N, w_N, present_K, l2, max_iter, tol):
    """L-BFGS from zero until the gradient's norm is below ``tol`` or ``max_iter`` steps."""
    d, k = x_NxD.shape[1], present_K.shape[0]
    fun = lambda p: _head_objective(p, x_NxD, y_N, w_N, l2, present_K)  # noqa: E731
    params = {"w": jnp.zeros((d, k), x_NxD.dtype), "b": jnp.zeros((k,), x_NxD.dtype)}
    opt = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(fun)

    def step(carry):
        p, state = carry
        value, grad = value_and_grad(p, state=state)
        updates, state = opt.update(grad, state, p, value=value, grad=grad, value_fn=fun)
        return optax.apply_updates(p, updates), state

    def going(carry):
        _, state = carry
        count = optax.tree_utils.tree_get(state, "count")
        gnorm = optax.tree_utils.tree_norm(optax.tree_utils.tree_get(state, "grad"))
        return (count == 0) | ((count < max_iter) & (gnorm >= tol))

    params, state = jax.lax.while_loop(going, step, (params, opt.init(params)))
    grad = jax.grad(fun)(params)
    return params, fun(params), optax.tree_utils.tree_norm(grad), optax.tree_utils.tree_get(state, "count")


def _check_labels(labels: Mapping[str, np.ndarray], num_classes: Mapping[str, int], n: int) -> None:
    for name, y in labels.items():
        y = np.asarray(y)
        if name not in num_classes:
            raise ValueError(f"probe: no class count for attribute {name!r}")
        if y.shape != (n,):
            raise ValueError(f"probe: labels of {name!r} have shape {y.shape}, expected ({n},)")
        if y.size and (y.min() < -1 or y.max() >= num_classes[name]):
            raise ValueError(f"probe: labels of {name!r} outside -1..{num_classes[name] - 1}")


def fit(features_NxD, labels: Mapping[str, np.ndarray], num_classes: Mapping[str, int],
        l2: float | Mapping[str, float] = 1e-2, max_iter: int = 1000, tol: float = 1e-6) -> dict:
    """Fits one L2 softmax head per attribute (labels -1 are left out); returns the params.

    params = {"mean", "scale": the training standardiser [D],
              "heads": {attribute: {"w": [D, K], "b": [K], "present": [K] bool, "l2",
                                    "objective", "grad_norm", "iterations", "converged", "n"}}}
    """
    x = np.asarray(features_NxD, _float())
    _check_labels(labels, num_classes, x.shape[0] if x.ndim == 2 else -1)
    std = fit_standardizer(x)
    # Rows padded (with weight 0) to a multiple of _ROW_BUCKET: folds of nearby sizes share one program.
    pad = -x.shape[0] % _ROW_BUCKET
    xs = jnp.asarray(np.pad((x - std["mean"]) / std["scale"], ((0, pad), (0, 0))))
    heads = {}
    for name, y in labels.items():
        y = np.asarray(y, np.int32)
        k = int(num_classes[name])
        lam = float(l2[name] if isinstance(l2, Mapping) else l2)
        if not lam > 0:
            raise ValueError(f"probe: l2 must be positive, got {lam} for {name!r}")
        w = (y >= 0).astype(x.dtype)
        present = np.bincount(y[y >= 0], minlength=k)[:k] > 0
        if not present.any():
            raise ValueError(f"probe: attribute {name!r} has no labelled training rows")
        y, w = np.pad(y, (0, pad), constant_values=-1), np.pad(w, (0, pad))
        # Classes padded too (absent, so they get no probability and stay at zero).
        kp = k + (-k % _CLASS_BUCKET)
        p, obj, gnorm, count = _fit_head(xs, jnp.asarray(y), jnp.asarray(w), jnp.asarray(np.pad(present, (0, kp - k))),
                                         x.dtype.type(lam), jnp.int32(max_iter), x.dtype.type(tol))
        if not math.isfinite(float(obj)):
            raise FloatingPointError(f"probe: the fit of {name!r} diverged (objective {float(obj)})")
        heads[name] = {"w": np.asarray(p["w"])[:, :k], "b": np.asarray(p["b"])[:k], "present": present, "l2": lam,
                       "objective": float(obj), "grad_norm": float(gnorm), "iterations": int(count),
                       "converged": bool(float(gnorm) < tol), "n": int(w.sum())}
    return {"mean": std["mean"], "scale": std["scale"], "heads": heads}


def predict_logits(params: dict, features_NxD) -> dict[str, np.ndarray]:
    """attribute -> logits [N, K] (classes absent from training at a very low logit)."""
    x = (np.asarray(features_NxD, params["mean"].dtype) - params["mean"]) / params["scale"]
    out = {}
    for name, h in params["heads"].items():
        logits = x @ h["w"] + h["b"]
        out[name] = np.where(h["present"], logits, _ABSENT_LOGIT).astype(params["mean"].dtype)
    return out


def predict_proba(params: dict, features_NxD) -> dict[str, np.ndarray]:
    """attribute -> class probabilities [N, K]."""
    return {k: np.asarray(jax.nn.softmax(jnp.asarray(v), axis=-1))
            for k, v in predict_logits(params, features_NxD).items()}


def evaluate(params: dict, features_NxD, labels: Mapping[str, np.ndarray]) -> dict:
    """Per attribute: accuracy and mean log-loss over labelled rows, and per-row correctness (-1 unlabelled)."""
    logits = predict_logits(params, features_NxD)
    out = {}
    for name, lg in logits.items():
        y = np.asarray(labels[name], np.int64)
        ok = y >= 0
        correct = np.where(ok, (lg.argmax(axis=1) == y).astype(np.int8), -1).astype(np.int8)
        logp = np.asarray(jax.nn.log_softmax(jnp.asarray(lg), axis=-1))
        n = int(ok.sum())
        out[name] = {"accuracy": float(correct[ok].mean()) if n else None,
                     "log_loss": float(-logp[ok, y[ok]].mean()) if n else None,
                     "n": n, "correct": correct}
    return out


def fit_select(train: tuple, valid: tuple, num_classes: Mapping[str, int], grid: Sequence[float] = L2_GRID,
               max_iter: int = 1000, tol: float = 1e-6) -> tuple[dict, dict]:
    """Fits on ``train`` = (features, labels) for every l2 in ``grid``; per head keeps the l2 with the best
    validation accuracy on ``valid`` (ties: lower validation log-loss, then the larger l2).

    Returns (params fitted on train with the chosen l2 per head, {head: {"l2", "grid": [...]}}).
    """
    grid = sorted(float(g) for g in grid)
    if not grid:
        raise ValueError("probe.fit_select: empty l2 grid")
    xv, yv = valid
    scores: dict[str, list] = {name: [] for name in train[1]}
    fitted = []
    for lam in grid:
        p = fit(train[0], train[1], num_classes, lam, max_iter, tol)
        fitted.append(p)
        ev = evaluate(p, xv, yv)
        for name in scores:
            e = ev[name]
            scores[name].append({"l2": lam, "val_accuracy": e["accuracy"], "val_log_loss": e["log_loss"],
                                 "iterations": p["heads"][name]["iterations"]})
    chosen, info = {}, {}
    for name, rows in scores.items():
        # An attribute without validation labels falls back to the middle of the grid.
        if all(r["val_accuracy"] is None for r in rows):
            best = len(grid) // 2
        else:
            best = min(range(len(grid)), key=lambda i: (-rows[i]["val_accuracy"], rows[i]["val_log_loss"], -grid[i]))
        chosen[name] = best
        info[name] = {"l2": grid[best], "grid": rows}
    heads = {name: fitted[i]["heads"][name] for name, i in chosen.items()}
    return {"mean": fitted[0]["mean"], "scale": fitted[0]["scale"], "heads": heads}, info


# ----------------------------------------------------------------------------- cross-validation

def cross_validate(data, folds: int = 2, seed: int = 0, val_fraction: float = 0.15, mel: MelSpec = MelSpec(),
                   grid: Sequence[float] = L2_GRID, transform=None, batch_size: int = 64,
                   log=print) -> list[dict]:
    """The probe on the attack's folds (`attack_folds.fold_indices`, same seed -> same folds).

    ``data`` has .audio (int16 [N, T]), .labels, .groups, .splits, .classes (an array store or
    `attack.ArrayData`). Features are computed once for every clip; per fold the l2 is chosen
    on the validation split and the test outcomes are kept per example (``test_index``,
    ``correct[attribute]``: 1, 0, or -1 where the label is missing) for clustered intervals.
    """
    num_classes = {a: len(c) for a, c in data.classes.items()}
    labels = {a: np.asarray(data.labels[a], np.int32) for a in num_classes}
    splits = attack_folds.fold_indices(list(data.groups), list(data.splits), folds, seed, val_fraction)
    x = audio_features(data.audio, np.arange(data.audio.shape[0]), mel, batch_size=batch_size, transform=transform)
    groups = np.asarray(list(data.groups), dtype=object)
    records = []
    for f, sp in enumerate(splits):
        part = {k: (x[v], {a: y[v] for a, y in labels.items()}) for k, v in sp.items()}
        params, info = fit_select(part["train"], part["valid"], num_classes, grid)
        ev = evaluate(params, *part["test"])
        per_attr = {a: {"accuracy": e["accuracy"], "n": e["n"], "log_loss": e["log_loss"], "l2": info[a]["l2"],
                        "val_grid": info[a]["grid"]} for a, e in ev.items()}
        accs = [e["accuracy"] for e in ev.values() if e["accuracy"] is not None]
        rec = {"kind": "fold", "model": "probe", "fold": f, "folds": len(splits), "seed": seed,
               "n_train": int(sp["train"].size), "n_valid": int(sp["valid"].size), "n_test": int(sp["test"].size),
               "accuracy": float(np.mean(accs)) if accs else None, "per_attribute": per_attr,
               "test_index": sp["test"].tolist(), "test_groups": groups[sp["test"]].tolist(),
               "correct": {a: e["correct"].tolist() for a, e in ev.items()}}
        if len(ev) > 1:
            c = np.stack([e["correct"] for e in ev.values()])
            any_label = (c >= 0).any(axis=0)
            rec["all_correct_accuracy"] = float(((c != 0).all(axis=0) & any_label).sum() / max(any_label.sum(), 1))
        log(f"[probe] fold {f + 1}/{len(splits)}: test accuracy {rec['accuracy']:.4f} "
            + " ".join(f"{a}={v['accuracy']:.3f}(l2={v['l2']:g})" for a, v in per_attr.items()
                       if v["accuracy"] is not None))
        records.append(rec)
    return records


def summarize_folds(records: Sequence[dict], n_boot: int = 2000, seed: int = 0) -> dict:
    """Summary of ``cross_validate`` records: mean fold accuracy, and the pooled test outcomes'
    cluster-bootstrap 95 % interval (clusters = the fold groups) with the fold-level t interval beside it."""
    attrs = list(records[0]["correct"])
    correct = np.concatenate([np.stack([r["correct"][a] for a in attrs], axis=1) for r in records])
    groups = np.concatenate([np.asarray(r["test_groups"], dtype=object) for r in records])
    pooled = metrics.clustered_bootstrap_ci(correct, groups.astype(str), n_boot=n_boot, seed=seed)
    accs = [r["accuracy"] for r in records]
    t = metrics.mean_ci(accs)
    out = {"kind": "summary", "model": "probe", "accuracy": float(np.mean(accs)), "fold_accuracies": accs,
           "n_folds": len(records), "pooled_accuracy": pooled.value, "ci95": pooled.ci95,
           "ci_method": pooled.method, "n_boot": n_boot, "n_examples": pooled.n,
           "n_clusters": int(np.unique(groups.astype(str)).size), "t_ci95": t.ci95,
           "per_attribute_accuracy": {a: float(np.mean([r["per_attribute"][a]["accuracy"] for r in records]))
                                      for a in attrs},
           "per_attribute_ci95": {}}
    for j, a in enumerate(attrs):
        e = metrics.clustered_bootstrap_ci(correct[:, j], groups.astype(str), n_boot=n_boot, seed=seed)
        out["per_attribute_ci95"][a] = e.ci95
    if all("all_correct_accuracy" in r for r in records):
        out["all_correct_accuracy"] = float(np.mean([r["all_correct_accuracy"] for r in records]))
    return out
