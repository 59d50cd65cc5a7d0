"""Inference attacks: jitted attacker train/eval steps on device log-mel, K-fold cross-validation.

Audio travels to the devices as int16; inside the jitted steps it is converted, mixed with a
fresh masking-noise segment per example at a calibrated SNR (when the adversary hears masked
audio), passed through the adversary's front end (identity, or e.g. a denoiser registered
with `register_front_end`) and turned into a log-mel spectrogram. Two adversaries:
``static`` trains on clean audio and is tested on masked audio; ``adaptive`` trains and is
tested on masked audio. Folds are split by speaker/actor/artist; each fold trains with early
stopping on a validation split of its training groups and reports test accuracy, per-class
recall and, for multi-attribute tasks, per-attribute and all-attributes-correct accuracy.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import time
from typing import Any, Callable, Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from maskgan_jax import attack_folds, attack_noise, features, metrics, parallel, results
from maskgan_jax.models import attackers

ADVERSARIES = ("static", "adaptive")
FRONT_END_AT = ("test", "both")

# name -> factory() -> jittable wave_BxT -> wave_BxT (float32 in [-1, 1])
_FRONT_ENDS: dict[str, Callable[[], Callable[[jax.Array], jax.Array]]] = {
    "none": lambda: (lambda wave: wave),
}


def register_front_end(name: str, factory: Callable[[], Callable[[jax.Array], jax.Array]]) -> None:
    """Adds an adversary front end: ``factory()`` returns a pure jittable wave_BxT -> wave_BxT."""
    _FRONT_ENDS[name] = factory


def _denoise_factory(method: str):
    def factory():
        from maskgan_jax import denoise
        return denoise.make_front_end(denoise.DenoiseConfig(method=method))
    return factory


register_front_end("wiener", _denoise_factory("wiener"))
register_front_end("subtraction", _denoise_factory("subtraction"))


def front_ends() -> tuple[str, ...]:
    """Names of the registered front ends."""
    return tuple(_FRONT_ENDS)


@dataclasses.dataclass(frozen=True)
class MelConfig:
    """The log-mel front end (DESIGN.md defaults)."""
    sample_rate: int = 16000
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
    adversary: str = "static"            # static | adaptive
    front_end: str = "none"              # a registered front end (see register_front_end)
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
        attack_noise.parse_noise(self.noise)
        attack_noise.check_levels(self.noise_spl, self.speech_spl, self.allow_above_comfort)
        if self.adversary not in ADVERSARIES:
            raise ValueError(f"--adversary={self.adversary!r}: expected one of {ADVERSARIES}")
        if self.front_end not in _FRONT_ENDS:
            raise ValueError(f"--front_end={self.front_end!r}: expected one of {front_ends()}")
        if self.front_end_at not in FRONT_END_AT:
            raise ValueError(f"front_end_at={self.front_end_at!r}: expected one of {FRONT_END_AT}")
        if self.folds < 1:
            raise ValueError(f"--folds={self.folds} must be >= 1 (1 = the corpus's own splits)")
        if self.epochs < 1 or self.patience < 1 or self.batch_size < 1:
            raise ValueError("--epochs, --patience and --batch_size must be positive")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction={self.val_fraction} must be in (0, 1)")
        return self


@dataclasses.dataclass
class ArrayData:
    """What the attack reads: int16 audio [N, T] (a memmap is fine), labels, groups, splits, classes."""
    audio: Any
    labels: dict[str, np.ndarray]
    groups: Sequence[str]
    splits: Sequence[str]
    classes: dict[str, list[str]]
    name: str = ""


def as_array_data(data: Any) -> ArrayData:
    """Wraps a store (anything with .audio, .labels, .groups, .splits, .classes) as ArrayData."""
    if isinstance(data, ArrayData):
        return data
    missing = [a for a in ("audio", "labels", "groups", "splits", "classes") if not hasattr(data, a)]
    if missing:
        raise TypeError(f"attack data lacks {missing}; pass an array store or ArrayData")
    out = ArrayData(data.audio, {k: np.asarray(v, np.int32) for k, v in data.labels.items()},
                    list(data.groups), list(data.splits), {k: list(v) for k, v in data.classes.items()},
                    getattr(data, "name", ""))
    if out.audio.ndim != 2 or out.audio.dtype != np.int16:
        raise ValueError(f"attack audio must be int16 [N, T], got {out.audio.dtype} {out.audio.shape}")
    return out


# ----------------------------------------------------------------------------- steps

class Steps:
    """The jitted train and eval steps of one attack configuration on one mesh."""

    def __init__(self, cfg: AttackConfig, heads: Sequence[tuple[str, int]], clip_samples: int,
                 mesh: jax.sharding.Mesh, source: attack_noise.NoiseSource | None):
        self.cfg, self.heads, self.mesh, self.source = cfg, tuple(heads), mesh, source
        self.model = attackers.build(cfg.model, heads)
        self.tx = optax.adam(cfg.learning_rate)
        self.snr_db = attack_noise.check_levels(cfg.noise_spl, cfg.speech_spl, cfg.allow_above_comfort)
        self.clip_samples = clip_samples
        self.noise_arrays = parallel.replicate(source.arrays, mesh) if source else ()
        front = _FRONT_ENDS[cfg.front_end]()
        self._front_train = front if cfg.front_end_at == "both" else None
        self._front_test = front
        rep, dat = parallel.replicated_sharding(mesh), parallel.data_sharding(mesh)
        train_masked = source is not None and cfg.adversary == "adaptive"
        self.train_step = jax.jit(functools.partial(self._train, masked=train_masked),
                                  in_shardings=(rep, dat, rep, rep), out_shardings=(rep, rep),
                                  donate_argnums=(0,))
        # Validation hears what training hears; the test hears the masked audio (if any).
        self.eval_step = {
            phase: jax.jit(functools.partial(self._eval, masked=m, front=f),
                           in_shardings=(rep, dat, rep, rep), out_shardings=rep)
            for phase, m, f in (("valid", train_masked, self._front_train),
                                ("test", source is not None, self._front_test))}

    def log_mel(self, batch, key, noise_arrays, masked: bool, front):
        """int16 audio -> (log-mel [B, M, F], clipped-sample count) with optional noise and front end."""
        wave = batch["audio"].astype(jnp.float32) * (1.0 / 32768.0)
        clipped = jnp.zeros((), jnp.int32)
        if masked:
            wave, n_clip = attack_noise.mix(self.source, noise_arrays, wave, key, batch["index"], self.snr_db)
            clipped = jnp.sum(n_clip * (batch["weight"] > 0))
        if front is not None:
            wave = front(wave)
        m = self.cfg.mel
        return features.log_mel_spectrogram(wave, m.sample_rate, m.n_fft, m.hop_length, m.n_mels,
                                            m.fmin, m.fmax), clipped

    def init(self, key: jax.Array) -> dict:
        """A fresh replicated train state {params, opt_state, step}."""
        m = self.cfg.mel
        frames = 1 + self.clip_samples // m.hop_length
        if not hasattr(self, "_init"):
            # One compiled program instead of eager op-by-op initialisation (slow for scans).
            def init(key):
                params = self.model.init(key, jnp.zeros((1, m.n_mels, frames), jnp.float32))
                return {"params": params, "opt_state": self.tx.init(params), "step": jnp.zeros((), jnp.int32)}
            self._init = jax.jit(init, out_shardings=parallel.replicated_sharding(self.mesh))
        return self._init(key)

    def _loss(self, params, mel, batch):
        logits = self.model.apply(params, mel)
        total = 0.0
        for name, _ in self.heads:
            y = batch["labels"][name]
            valid = ((y >= 0) & (batch["weight"] > 0)).astype(jnp.float32)
            ce = optax.softmax_cross_entropy_with_integer_labels(logits[name], jnp.maximum(y, 0))
            # Missing labels (-1) and padding are masked out of the loss.
            total = total + jnp.sum(ce * valid) / jnp.maximum(jnp.sum(valid), 1.0)
        return total / len(self.heads)

    def _train(self, state, batch, key, noise_arrays, masked):
        mel, clipped = self.log_mel(batch, key, noise_arrays, masked, self._front_train)
        loss, grads = jax.value_and_grad(self._loss)(state["params"], mel, batch)
        updates, opt_state = self.tx.update(grads, state["opt_state"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        gnorm = optax.tree.norm(grads)
        return ({"params": params, "opt_state": opt_state, "step": state["step"] + 1},
                {"loss": loss, "grad_norm": gnorm, "clipped": clipped})

    def _eval(self, params, batch, key, noise_arrays, masked, front):
        mel, clipped = self.log_mel(batch, key, noise_arrays, masked, front)
        logits = self.model.apply(params, mel)
        out = {"clipped": clipped}
        w = batch["weight"] > 0
        all_ok = jnp.ones_like(w)
        any_label = jnp.zeros_like(w)
        for name, n in self.heads:
            y = batch["labels"][name]
            valid = (y >= 0) & w
            pred = jnp.argmax(logits[name], axis=-1)
            oh_true = jax.nn.one_hot(jnp.where(valid, y, -1), n, dtype=jnp.float32)
            oh_pred = jax.nn.one_hot(pred, n, dtype=jnp.float32)
            out[f"confusion/{name}"] = jnp.round(oh_true.T @ oh_pred).astype(jnp.int32)
            all_ok = all_ok & ((pred == y) | ~valid)
            any_label = any_label | valid
        out["all_correct"] = jnp.sum(all_ok & any_label)
        out["any_label"] = jnp.sum(any_label)
        return out


# ----------------------------------------------------------------------------- host loop

def _batches(data: ArrayData, idx: np.ndarray, batch_size: int, heads, shuffle_rng=None) -> Iterator[dict]:
    """Host batches (int16 audio, labels, store index, weight); the last one padded with weight 0."""
    order = shuffle_rng.permutation(idx) if shuffle_rng is not None else np.asarray(idx)
    for s in range(0, order.size, batch_size):
        part = order[s:s + batch_size]
        n = part.size
        take = np.concatenate([part, np.repeat(part[:1], batch_size - n)])
        # Sorted reads are sequential on a memmap; the batch order itself does not matter.
        srt = np.argsort(take, kind="stable")
        inv = np.empty_like(srt)
        inv[srt] = np.arange(srt.size)
        audio = np.asarray(data.audio[take[srt]])[inv]
        weight = np.zeros(batch_size, np.float32)
        weight[:n] = 1.0
        yield {"audio": audio, "index": take.astype(np.int32), "weight": weight,
               "labels": {a: np.asarray(data.labels[a][take], np.int32) for a, _ in heads}}


def _prefetched(it: Iterator[dict], mesh) -> Iterator[dict]:
    """Reads and places the next batch on the devices while the current one computes."""
    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        fut = ex.submit(lambda: next(it, None))
        while True:
            b = fut.result()
            if b is None:
                return
            fut = ex.submit(lambda: next(it, None))
            if jax.process_count() > 1:
                # Under several processes each one hands over its own slice of the global batch.
                n, i = jax.process_count(), jax.process_index()
                b = jax.tree_util.tree_map(lambda a: a[i * a.shape[0] // n:(i + 1) * a.shape[0] // n], b)
            yield parallel.shard_batch(b, mesh)


def evaluate(steps: Steps, params, data: ArrayData, idx: np.ndarray, key, phase: str = "test") -> dict:
    """Accuracy over ``idx`` (phase valid|test): per attribute accuracy and recall, all-correct, mean."""
    totals: dict[str, np.ndarray] = {}
    fn = steps.eval_step[phase]
    for b in _prefetched(_batches(data, idx, steps.cfg.batch_size, steps.heads), steps.mesh):
        out = jax.device_get(fn(params, b, key, steps.noise_arrays))
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


def train_fold(steps: Steps, data: ArrayData, split: dict, fold_key: jax.Array, seed: int, fold: int,
               log: Callable[[str], None] = print) -> tuple[Any, dict]:
    """Trains with early stopping on the validation split; returns (best params, training info)."""
    cfg = steps.cfg
    state = steps.init(jax.random.fold_in(fold_key, 0))
    rng = np.random.default_rng([seed, fold, 0x7472])
    val_key = jax.random.fold_in(fold_key, 3)
    best, best_acc, best_epoch, history = None, -1.0, -1, []
    for epoch in range(cfg.epochs):
        t0 = time.perf_counter()
        key = jax.random.fold_in(jax.random.fold_in(fold_key, 1), epoch)
        losses = []
        for b in _prefetched(_batches(data, split["train"], cfg.batch_size, steps.heads, rng), steps.mesh):
            state, m = steps.train_step(state, b, key, steps.noise_arrays)
            losses.append(m["loss"])
        loss = float(np.mean(jax.device_get(losses)))
        if not np.isfinite(loss):
            raise FloatingPointError(f"attack training diverged at epoch {epoch}: loss {loss}")
        val = evaluate(steps, state["params"], data, split["valid"], val_key, "valid")
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
    source = attack_noise.make_source(cfg.noise, clip, cfg.mel.sample_rate)
    steps = Steps(cfg, heads, clip, mesh, source)
    splits = attack_folds.fold_indices(data.groups, data.splits, cfg.folds, cfg.seed, cfg.val_fraction)
    cfg_dict = dataclasses.asdict(cfg)
    done = {}
    if out_path:
        for r in results.read_jsonl(out_path):
            if r.get("kind") == "fold" and r.get("config") == results_json(cfg_dict):
                done[r["fold"]] = r
    base_key = jax.random.key(cfg.seed)
    test_key = jax.random.fold_in(base_key, 2)   # the same noise per clip in every fold and adversary
    records = []
    for f, split in enumerate(splits):
        if f in done:
            log(f"[attack] fold {f + 1}/{len(splits)}: done already, reused")
            records.append(done[f])
            continue
        log(f"[attack] fold {f + 1}/{len(splits)}: train {split['train'].size}, "
            f"valid {split['valid'].size}, test {split['test'].size}")
        t0 = time.perf_counter()
        params, info = train_fold(steps, data, split, jax.random.fold_in(base_key, 1000 + f), cfg.seed, f,
                                  log)
        test = evaluate(steps, params, data, split["test"], test_key, "test")
        rec = _record_base(cfg, "fold")
        rec.update({"fold": f, "folds": len(splits), "n_train": int(split["train"].size),
                    "n_valid": int(split["valid"].size), "n_test": int(split["test"].size)})
        rec.update(test)
        rec.update(info)
        rec.update({"seconds": time.perf_counter() - t0, "devices": parallel.describe(mesh),
                    "noise_info": source.info if source else None, "corpus": data.name,
                    "config": cfg_dict, "versions": results.versions()})
        log(f"[attack] fold {f + 1}/{len(splits)}: test accuracy {rec['accuracy']:.4f}")
        records.append(rec)
        if out_path and parallel.is_main_process():
            results.write_jsonl_atomic(out_path, records)
    records.append(summary_record(cfg, records))
    if out_path and parallel.is_main_process():
        results.write_jsonl_atomic(out_path, records)
    return records


def results_json(obj: Any) -> Any:
    """``obj`` as it reads back from a results file (tuples become lists), for comparisons."""
    import json
    return json.loads(results.dumps(obj))


# ----------------------------------------------------------------------------- data

def default_cache_dir() -> str:
    """Where array stores are kept ($MASKGAN_JAX_CACHE or ~/.cache/maskgan_jax)."""
    import os
    return os.environ.get("MASKGAN_JAX_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "maskgan_jax")


def open_task_data(task: str, data_dir: str | None = None, cache_dir: str | None = None,
                   size: str = "default", seed: int = 0, progress: bool = True):
    """The array store of a task's corpus: ``data_dir`` if given, else the embedded corpus (generated once)."""
    import hashlib
    import os
    from maskgan_jax.data import layouts, store
    layouts.layout_of(task)  # validates the task name
    if data_dir is None:
        from maskgan_jax.data import synthetic
        parent = os.path.join(cache_dir, "embedded") if cache_dir else synthetic.default_root()
        # make_corpus reuses a folder whose manifest matches and regenerates otherwise.
        data_dir = synthetic.make_corpus(task, os.path.join(parent, f"{task}-{size}-seed{seed}"),
                                         seed=seed, size=size)
    elif not os.path.isdir(data_dir):
        raise ValueError(f"--data_dir={data_dir}: no such folder")
    corpus = layouts.load_corpus(data_dir, task)
    if progress:
        print(f"[attack] {corpus.summary()}")
        for path, reason in corpus.broken[:10]:
            print(f"[attack]   broken: {path}: {reason}")
    tag = hashlib.sha1(os.path.abspath(data_dir).encode()).hexdigest()[:12]
    return store.open_or_build_store(corpus, os.path.join(cache_dir or default_cache_dir(), "stores",
                                                          f"{task}-{tag}"), progress=progress)
