"""Exported MaskGAN generators: the generator's parameters alone, with their provenance and gate figures.

An export is a folder with three files: ``config.json`` (the run's `gan.GanConfig`),
``generator.npz`` (the generator's parameters; no optimizer state, no critic, no pickle)
and ``export.json`` (the training command and commit, the training time, the step and
the noise-quality gate's figures). `gan_load.load_noise_sampler`, and so ``--noise=gan:DIR``,
accepts it wherever a training workdir is accepted.

The package ships one export, the default MaskGAN (``maskgan_jax/assets/maskgan_default``);
`load_default` checks it against the gate when it is loaded.
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from typing import Callable

import jax
import numpy as np

from maskgan_jax import checkpoint, gan, gan_load, gan_targets, quality, results

log = logging.getLogger("maskgan_jax.gan_export")

DEFAULT_GENERATOR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets", "maskgan_default")


def provenance(argv: list[str] | None = None) -> dict:
    """The command line, the source tree's git commit (and whether it had local changes) and the time."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    def git(*args):
        try:
            return subprocess.run(["git", "-C", root, *args], capture_output=True, text=True, timeout=30,
                                  check=True).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    status = git("status", "--porcelain", "--untracked-files=no")
    argv = list(sys.argv if argv is None else argv)
    if argv and argv[0].endswith(".py"):
        argv[0] = "python -m " + os.path.splitext(os.path.relpath(argv[0], root))[0].replace(os.sep, ".")
    return {"command": " ".join(argv), "commit": git("rev-parse", "HEAD"),
            "dirty": bool(status) if status is not None else None,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def record_run(workdir: str, argv: list[str] | None = None) -> dict:
    """Appends this invocation's `provenance` to the workdir's metrics.jsonl (kind "run"); returns it."""
    rec = {"kind": "run", **provenance(argv)}
    os.makedirs(workdir, exist_ok=True)
    results.append_jsonl(os.path.join(workdir, gan.METRICS_FILE), rec)
    return rec


def runs_of(workdir: str) -> list[dict]:
    """The `record_run` records of a workdir, oldest first."""
    path = os.path.join(workdir, gan.METRICS_FILE)
    return [r for r in results.read_jsonl(path) if r.get("kind") == "run"] if os.path.exists(path) else []


def training_seconds(workdir: str) -> float:
    """Wall time spent training a workdir, summed over its runs (resumptions), from metrics.jsonl."""
    path = os.path.join(workdir, gan.METRICS_FILE)
    if not os.path.exists(path):
        return 0.0
    total, last = 0.0, 0.0
    for r in results.read_jsonl(path):
        if r.get("kind") != "train":
            continue
        if r["elapsed_s"] < last:  # a new run (resumption) restarted the clock
            total += last
        last = r["elapsed_s"]
    return total + last


def sample_clips(sample_fn: Callable, key: jax.Array, n: int, chunk: int = 16) -> np.ndarray:
    """``n`` clips from a jittable ``sample_fn(key, batch)``, in chunks (float32 [n, T])."""
    gen = jax.jit(sample_fn, static_argnums=1)
    parts, done = [], 0
    while done < n:
        b = min(chunk, n - done)
        parts.append(np.asarray(gen(jax.random.fold_in(key, done), b)))
        done += b
    return np.concatenate(parts)


def target_clips(config: gan.GanConfig, key: jax.Array, n: int, folder: str | None = None) -> np.ndarray:
    """``n`` clips of a run's training target at its level (float32 [n, slice_len]); a ``dir:``
    target needs its ``folder`` (`gan_load.target_folder`)."""
    corpus = None
    if config.target.startswith("dir:"):
        if folder is None:
            raise ValueError(f"target {config.target!r} needs its folder (gan_load.target_folder)")
        corpus = jax.numpy.asarray(gan_targets.load_corpus(folder, config.slice_len))
    return np.asarray(jax.jit(lambda k: gan_targets.sample_target(config, k, n, corpus))(key))


def check_gate(sample_fn: Callable, config: gan.GanConfig, num_clips: int = 64, seed: int = 0,
               classifier: bool = True, folder: str | None = None) -> dict:
    """The noise-quality gate of a generator against its training target, on ``num_clips`` clips each."""
    k_gen, k_target = jax.random.split(jax.random.key(seed))
    generated = sample_clips(sample_fn, k_gen, num_clips)
    if not np.isfinite(generated).all():
        raise FloatingPointError("the generator produced non-finite samples")
    target = target_clips(config, k_target, num_clips, folder)
    return quality.gate(generated, target, seed=seed, classifier=classifier)


def export_generator(workdir: str, out: str, step: int | None = None, gate_clips: int = 64, seed: int = 0) -> dict:
    """Writes the generator of a training workdir (latest checkpoint, or ``step``) to folder ``out``.

    Beside it, ``export.json`` records the step, the training time, the commands and commits
    that trained it (`record_run` records) and the gate's figures on ``gate_clips`` clips
    (0 skips the gate). Returns that record.
    """
    config, g_params, got_step = gan_load.load_generator(workdir, step)
    g_params = jax.device_get(g_params)
    os.makedirs(out, exist_ok=True)
    checkpoint.save_tree_npz(os.path.join(out, gan_load.GENERATOR_FILE), g_params)
    results.write_text_atomic(os.path.join(out, gan.CONFIG_FILE), json.dumps(config.to_json(), indent=1))
    n_params = int(sum(np.size(x) for x in jax.tree_util.tree_leaves(g_params)))
    info = {"kind": "maskgan_export", "step": int(got_step), "workdir": os.path.abspath(workdir),
            "training_seconds": training_seconds(workdir), "generator_parameters": n_params,
            "generator_bytes": os.path.getsize(os.path.join(out, gan_load.GENERATOR_FILE)),
            "trained_by": runs_of(workdir), "exported_by": provenance(), "gate": None}
    if gate_clips:
        sample_fn, _ = gan_load.load_noise_sampler(out)
        t0 = time.perf_counter()
        folder = gan_load.target_folder(config, workdir) if config.target.startswith("dir:") else None
        info["gate"] = check_gate(sample_fn, config, gate_clips, seed=seed, folder=folder)
        info["gate_seconds"] = time.perf_counter() - t0
    results.write_text_atomic(os.path.join(out, gan_load.EXPORT_INFO_FILE), json.dumps(info, indent=1))
    return info


def verify(folder: str, num_clips: int = 32, seed: int = 1, classifier: bool = False) -> dict:
    """Re-checks an exported generator against the gate (a cheap check by default: 32 clips, no classifier)."""
    sample_fn, info = gan_load.load_noise_sampler(folder)
    return check_gate(sample_fn, gan.GanConfig.from_json(info["config"]), num_clips, seed=seed,
                      classifier=classifier)


def load_default(verify_gate: bool = True, num_clips: int = 32, strict: bool = False,
                 folder: str = DEFAULT_GENERATOR) -> tuple[Callable, dict]:
    """The default MaskGAN's ``(sample_fn, info)``; with ``verify_gate``, ``info['gate']`` is a fresh
    cheap gate check (warning, or with ``strict`` raising, when it fails)."""
    if not gan_load.is_exported_generator(folder):
        raise FileNotFoundError(f"no exported MaskGAN generator in {folder}")
    sample_fn, info = gan_load.load_noise_sampler(folder)
    info = dict(info, folder=folder)
    if verify_gate:
        rep = verify(folder, num_clips)
        info["gate"] = rep
        if not rep["passed"]:
            msg = f"the MaskGAN in {folder} fails the noise-quality gate on {num_clips} clips: {rep['failed']}"
            if strict:
                raise ValueError(msg)
            log.warning(msg)
    return sample_fn, info
