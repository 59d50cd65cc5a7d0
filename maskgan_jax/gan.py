"""MaskGAN training: WGAN-GP (default) or minimax losses, one jitted step, data parallel, resumable.

One training step = ``n_critic`` critic updates then one generator update, all inside one
jitted, state-donating function (a `lax.fori_loop` over the critic updates). The target
noise is drawn on device inside the step (white by default, as in the paper; pink and
brown from `maskgan_jax.noise`; or random crops of a device-resident corpus of noise
files), so there is no input pipeline. Data parallelism is the sharded `jit` of
`maskgan_jax.parallel`: the batch axis of every generated array is split over the mesh's
``data`` axis and XLA all-reduces the gradients; random numbers are drawn for global
shapes, so any device count computes the same step.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import os
import time
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from maskgan_jax import checkpoint, keys, parallel, quality, results
from maskgan_jax.gan_targets import TARGETS, load_corpus, sample_target
from maskgan_jax.models import wavegan

log = logging.getLogger("maskgan_jax.gan")

LOSSES = ("wgan-gp", "minimax")
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
CHECKPOINT_DIR = "checkpoints"


@dataclasses.dataclass(frozen=True)
class GanConfig:
    """Everything that defines a MaskGAN run (written to ``workdir/config.json``)."""
    dim: int = 64
    slice_len: int = 32768
    batch_size: int = 64
    latent_dim: int = wavegan.LATENT_DIM
    loss: str = "wgan-gp"
    gp_weight: float = 10.0
    n_critic: int = 5
    learning_rate: float = 1e-4
    beta1: float = 0.5
    beta2: float = 0.9
    phase_shuffle_rad: int = wavegan.PHASE_SHUFFLE_RAD
    # Diversity the critic sees (both off = the reference WaveGAN critic): PacGAN packing of
    # `pack` clips per critic input, and ProGAN's minibatch stddev over groups of `mbstd_group`.
    pack: int = 1
    mbstd_group: int = 0
    # ... and the RMS waveform correlation between the clips of groups of `corr_group` clips.
    corr_group: int = 0
    # A second critic head on per-clip log-spectrum statistics over frames of this many samples (0 = off).
    spectral_frame: int = 0
    # ... and a smooth empirical CDF of each clip's samples at this many levels (0 = off).
    amplitude_points: int = 0
    # The generator as an odd function of its latent, (g(z) - g(-z)) / 2: no clip-independent part.
    antisymmetric: bool = False
    # Target noise: white|pink|brown (drawn on device) or dir:PATH (a folder of noise files).
    target: str = "white"
    # Target level: every target clip is scaled to this RMS (0.1 = -20 dBFS, well inside tanh's range).
    target_rms: float = 0.1
    steps: int = 1000
    seed: int = 0
    log_every: int = 10
    checkpoint_every: int = 100
    keep_checkpoints: int = 3
    # Clips of the noise-quality measures logged at every checkpoint (0 = none).
    quality_clips: int = 16
    # The dtype the generator and critic compute in (float32 | bfloat16); parameters, optimizer
    # states, losses and the gradient penalty's norms stay float32.
    compute_dtype: str = "float32"

    def validate(self) -> "GanConfig":
        """Raises ValueError naming the field for values the model or loss cannot take."""
        wavegan.generator_layers(self.dim, self.slice_len)
        checks = [
            (self.dim >= 1, "dim", "must be >= 1"),
            (self.batch_size >= 1, "batch_size", "must be >= 1"),
            (self.loss in LOSSES, "loss", f"must be one of {LOSSES}"),
            (self.n_critic >= 1, "n_critic", "must be >= 1"),
            (self.learning_rate > 0, "learning_rate", "must be > 0"),
            (0 < self.target_rms < 1, "target_rms", "must be in (0, 1)"),
            (self.target in TARGETS or self.target.startswith("dir:"), "target",
             f"must be one of {TARGETS} or dir:PATH"),
            (self.steps >= 0, "steps", "must be >= 0"),
            (self.pack >= 1 and self.batch_size % self.pack == 0, "pack", "must be >= 1 and divide batch_size"),
            (self.mbstd_group == 0 or (self.mbstd_group > 0 and (self.batch_size // self.pack) % self.mbstd_group == 0),
             "mbstd_group", "must be 0 (off) or divide batch_size // pack"),
            (self.corr_group == 0 or (self.corr_group >= 2 and self.batch_size % self.corr_group == 0),
             "corr_group", "must be 0 (off) or >= 2 and divide batch_size"),
            (self.spectral_frame == 0 or 16 <= self.spectral_frame <= self.slice_len // 4, "spectral_frame",
             "must be 0 (off) or between 16 and slice_len / 4"),
            (self.amplitude_points >= 0, "amplitude_points", "must be >= 0"),
            (self.quality_clips == 0 or self.quality_clips >= 2, "quality_clips", "must be 0 (off) or >= 2"),
            (self.compute_dtype in wavegan.layers.COMPUTE_DTYPES, "compute_dtype",
             f"must be one of {tuple(wavegan.layers.COMPUTE_DTYPES)}"),
            (self.log_every >= 1 and self.checkpoint_every >= 1 and self.keep_checkpoints >= 1,
             "log_every/checkpoint_every/keep_checkpoints", "must be >= 1"),
        ]
        for ok, name, msg in checks:
            if not ok:
                raise ValueError(f"{name}={getattr(self, name, '?')} {msg}")
        return self

    def to_json(self) -> dict:
        """A JSON-able dict of the fields (compute_dtype only when not float32, so that the configs
        and fingerprints of float32 runs read as before it existed)."""
        d = dataclasses.asdict(self)
        if d["compute_dtype"] == "float32":
            del d["compute_dtype"]
        return d

    @classmethod
    def from_json(cls, d: dict) -> "GanConfig":
        """The config from ``to_json`` output (unknown keys are an error)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown MaskGAN config fields {sorted(unknown)}")
        return cls(**d)


# Fields that may differ between a run and its resumption (they do not change the model or the math).
_RESUMABLE_FIELDS = ("steps", "log_every", "checkpoint_every", "keep_checkpoints", "quality_clips")


def models(config: GanConfig) -> tuple[wavegan.Generator, wavegan.Critic]:
    """The generator and critic of a config."""
    dtype = wavegan.layers.compute_dtype(config.compute_dtype)
    return (wavegan.Generator(config.dim, config.slice_len, config.latent_dim, antisymmetric=config.antisymmetric,
                              dtype=dtype),
            wavegan.Critic(config.dim, config.slice_len, config.phase_shuffle_rad, pack=config.pack,
                           mbstd_group=config.mbstd_group, corr_group=config.corr_group,
                           spectral_frame=config.spectral_frame, amplitude_points=config.amplitude_points,
                           spectral_level=config.target_rms, dtype=dtype))


def optimizer(config: GanConfig) -> optax.GradientTransformation:
    """Adam(lr, b1, b2), the same for both players."""
    return optax.adam(config.learning_rate, b1=config.beta1, b2=config.beta2)


def init_state(config: GanConfig, key: jax.Array | None = None) -> dict:
    """Fresh training state: params, optimizer states, step 0 and the run's base key (raw uint32)."""
    key = keys.root(config.seed) if key is None else key
    return _init_state(dataclasses.replace(config, **_NEUTRAL), key)


@functools.partial(jax.jit, static_argnums=0)
def _init_state(config: GanConfig, key: jax.Array) -> dict:
    # Jitted: op-by-op initialisation of the convolution stacks is much slower than one compile.
    k_g, k_d, k_run = jax.random.split(key, 3)
    gen, critic = models(config)
    g_params = gen.init(k_g, jnp.zeros((1, config.latent_dim)))["params"]
    init_batch = math.lcm(config.pack, max(config.corr_group, 1))  # the smallest batch the critic's options take
    d_params = critic.init(k_d, jnp.zeros((init_batch, config.slice_len)))["params"]
    opt = optimizer(config)
    return {"step": jnp.zeros((), jnp.int32), "g_params": g_params, "d_params": d_params,
            "g_opt": opt.init(g_params), "d_opt": opt.init(d_params),
            "key": jax.random.key_data(k_run)}


# ---------------------------------------------------------------------------- losses


def _global_norm(tree) -> jax.Array:
    return optax.tree.norm(tree)


def critic_loss(config: GanConfig, d_params, critic: nn.Module, real_BxT, fake_BxT, key) -> tuple[jax.Array, dict]:
    """Critic loss and its parts (WGAN-GP: E[D(fake)] - E[D(real)] + λ·GP; minimax: BCE on logits)."""
    k_r, k_f, k_a, k_i = jax.random.split(key, 4)
    d_real = critic.apply({"params": d_params}, real_BxT, k_r)
    d_fake = critic.apply({"params": d_params}, fake_BxT, k_f)
    if config.loss == "minimax":
        loss = jnp.mean(jax.nn.softplus(-d_real)) + jnp.mean(jax.nn.softplus(d_fake))
        return loss, {"d_loss": loss, "gp": jnp.zeros(()), "wdist": jnp.mean(d_real) - jnp.mean(d_fake)}
    # A packed critic input (PacGAN) is one point of the penalty: one alpha, one gradient norm.
    pack = getattr(critic, "pack", 1)
    n = real_BxT.shape[0] // pack
    alpha = jax.random.uniform(k_a, (n, 1))
    alpha = jnp.repeat(alpha, pack, axis=0) if pack > 1 else alpha
    interp = real_BxT + alpha * (fake_BxT - real_BxT)
    grad = jax.grad(lambda x: jnp.sum(critic.apply({"params": d_params}, x, k_i)))(interp)
    slopes = jnp.sqrt(jnp.sum(jnp.square(grad.reshape(n, -1)), axis=1) + 1e-12)
    gp = jnp.mean(jnp.square(slopes - 1.0))
    wdist = jnp.mean(d_real) - jnp.mean(d_fake)
    loss = -wdist + config.gp_weight * gp
    return loss, {"d_loss": loss, "gp": gp, "wdist": wdist}


def generator_loss(config: GanConfig, g_params, d_params, gen: nn.Module, critic: nn.Module, z_BxZ, key,
                   constrain: Callable = lambda x: x) -> tuple[jax.Array, jax.Array]:
    """Generator loss (WGAN: -E[D(G(z))]; minimax: non-saturating -log D(G(z))) and the fakes."""
    fake = constrain(gen.apply({"params": g_params}, z_BxZ))
    d_fake = critic.apply({"params": d_params}, fake, key)
    loss = jnp.mean(jax.nn.softplus(-d_fake)) if config.loss == "minimax" else -jnp.mean(d_fake)
    return loss, fake


# ---------------------------------------------------------------------------- the step


def make_train_step(config: GanConfig, mesh=None) -> Callable:
    """The pure step ``(state, corpus, key) -> (state, metrics)``, jitted with state donation.

    With a ``mesh``, the batch axis of every generated batch is sharded over its ``data``
    axis and the state is replicated (XLA inserts the gradient all-reduce). Cached per
    (config, mesh), so a resumed run in the same process reuses the compiled step.
    """
    # Fields that do not enter the step are normalised away so that they share a cache entry.
    return _make_train_step(dataclasses.replace(config, **_NEUTRAL), mesh)


_NEUTRAL = {"steps": 0, "log_every": 1, "checkpoint_every": 1, "keep_checkpoints": 1, "seed": 0, "quality_clips": 0}


@functools.lru_cache(maxsize=8)
def _make_train_step(config: GanConfig, mesh) -> Callable:
    gen, critic = models(config)
    opt = optimizer(config)
    b = config.batch_size
    if mesh is not None:
        parallel.check_batch_size(b, mesh)
        data = parallel.data_sharding(mesh)
        constrain = lambda x: jax.lax.with_sharding_constraint(x, data)  # noqa: E731
    else:
        constrain = lambda x: x  # noqa: E731

    def step(state, corpus, key):
        d_params, d_opt = state["d_params"], state["d_opt"]
        g_params = state["g_params"]

        def critic_update(i, carry):
            d_params, d_opt, _ = carry
            k_z, k_x, k_d = jax.random.split(jax.random.fold_in(key, i), 3)
            z = constrain(wavegan.sample_latent(k_z, b, config.latent_dim))
            fake = constrain(gen.apply({"params": g_params}, z))
            real = constrain(sample_target(config, k_x, b, corpus))
            (_, parts), grads = jax.value_and_grad(
                lambda p: critic_loss(config, p, critic, real, fake, k_d), has_aux=True)(d_params)
            updates, d_opt = opt.update(grads, d_opt, d_params)
            parts = dict(parts, d_grad_norm=_global_norm(grads),
                         real_rms=jnp.sqrt(jnp.mean(jnp.square(real))))
            return optax.apply_updates(d_params, updates), d_opt, parts

        zero = jnp.zeros((), jnp.float32)
        init_parts = {"d_loss": zero, "gp": zero, "wdist": zero, "d_grad_norm": zero, "real_rms": zero}
        d_params, d_opt, parts = jax.lax.fori_loop(0, config.n_critic, critic_update,
                                                   (d_params, d_opt, init_parts))

        k_z, k_d = jax.random.split(jax.random.fold_in(key, config.n_critic), 2)
        z = constrain(wavegan.sample_latent(k_z, b, config.latent_dim))
        (g_loss, fake), g_grads = jax.value_and_grad(
            lambda p: generator_loss(config, p, d_params, gen, critic, z, k_d, constrain), has_aux=True)(g_params)
        updates, g_opt = opt.update(g_grads, state["g_opt"], g_params)
        g_params = optax.apply_updates(g_params, updates)
        new_state = {"step": state["step"] + 1, "g_params": g_params, "d_params": d_params,
                     "g_opt": g_opt, "d_opt": d_opt, "key": state["key"]}
        fake_rms = jnp.sqrt(jnp.mean(jnp.square(fake)))
        metrics = dict(parts, g_loss=g_loss, g_grad_norm=_global_norm(g_grads), fake_rms=fake_rms,
                       # Variance across the batch, averaged over time: ~0 when every z gives the same clip.
                       fake_batch_var=jnp.mean(jnp.var(fake, axis=0)),
                       fake_peak=jnp.max(jnp.abs(fake)))
        return new_state, metrics

    if mesh is None:
        return jax.jit(step, donate_argnums=(0,))
    repl = parallel.replicated_sharding(mesh)
    return jax.jit(step, donate_argnums=(0,), in_shardings=(repl, repl, repl), out_shardings=(repl, repl))


def step_key(state: dict, step: int) -> jax.Array:
    """The key of training step ``step`` (a function of the run's base key and the step only)."""
    return keys.gan_step(state["key"], step)


# ---------------------------------------------------------------------------- guards


_GUARDED = ("d_loss", "g_loss", "d_grad_norm", "g_grad_norm", "gp", "fake_rms")


def check_metrics(metrics: dict, step: int, config: GanConfig) -> list[str]:
    """Raises FloatingPointError on non-finite values; returns warnings about silence or collapse."""
    bad = [k for k in _GUARDED if k in metrics and not math.isfinite(float(metrics[k]))]
    if bad:
        raise FloatingPointError(
            f"training step {step}: non-finite {', '.join(bad)} "
            f"({', '.join(f'{k}={metrics[k]}' for k in bad)}); lower --learning_rate or resume from an earlier checkpoint")
    warnings = []
    target = config.target_rms
    if float(metrics["fake_rms"]) < 0.1 * target:
        warnings.append(f"step {step}: generated RMS {float(metrics['fake_rms']):.2e} is far below the target's "
                        f"{target:.2e} (near silence)")
    if float(metrics["fake_batch_var"]) < 1e-3 * target ** 2:
        warnings.append(f"step {step}: generated clips barely vary across the batch "
                        f"(variance {float(metrics['fake_batch_var']):.2e}): mode collapse?")
    return warnings


# ---------------------------------------------------------------------------- the loop


# The checkpoint measures always use the same latents and target draw, so that their
# changes between checkpoints are the generator's, not the sample's.
_QUALITY_KEY = 0x51A7


def quality_sampler(config: GanConfig) -> Callable:
    """Jitted ``(g_params, corpus) -> (generated, target)``, each [quality_clips, slice_len], on fixed keys."""
    gen, _ = models(config)
    n = max(config.quality_clips, 2)

    @jax.jit
    def draw(g_params, corpus):
        k_z, k_t = jax.random.split(jax.random.key(_QUALITY_KEY))
        fake = gen.apply({"params": g_params}, wavegan.sample_latent(k_z, n, config.latent_dim))
        return fake, sample_target(config, k_t, n, corpus)

    return draw


def _last_quality(metrics_path: str) -> dict | None:
    if not os.path.exists(metrics_path):
        return None
    recs = [r for r in results.read_jsonl(metrics_path) if r.get("kind") == "quality"]
    return recs[-1] if recs else None


def _write_config(workdir: str, config: GanConfig) -> None:
    path = os.path.join(workdir, CONFIG_FILE)
    if os.path.exists(path):
        with open(path) as f:
            old = GanConfig.from_json(json.load(f))
        diff = [f.name for f in dataclasses.fields(GanConfig)
                if f.name not in _RESUMABLE_FIELDS and getattr(old, f.name) != getattr(config, f.name)]
        if diff:
            raise ValueError(f"{path} was written by a run with different {', '.join(diff)} "
                             f"({', '.join(f'{k}={getattr(old, k)!r}' for k in diff)}); "
                             f"use a new --workdir or the same flags to resume")
    if parallel.is_main_process():
        results.write_text_atomic(path, json.dumps(config.to_json(), indent=1))


def read_config(workdir: str) -> GanConfig:
    """The config a MaskGAN run in ``workdir`` was trained with."""
    path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found: {workdir!r} is not a MaskGAN workdir (run train_maskgan first)")
    with open(path) as f:
        return GanConfig.from_json(json.load(f))


def abstract_state(config: GanConfig, mesh=None) -> Any:
    """Shapes/dtypes (and replicated shardings with a mesh) of the training state, for restoring."""
    shapes = jax.eval_shape(lambda: init_state(config))
    if mesh is None:
        return shapes
    repl = parallel.replicated_sharding(mesh)
    return jax.tree_util.tree_map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=repl), shapes)


def train(config: GanConfig, workdir: str, num_devices: int | None = None, stop_after: int | None = None,
          log_fn: Callable[[str], None] | None = None) -> dict:
    """Trains (or resumes) a MaskGAN in ``workdir`` up to ``config.steps``; returns the final state.

    ``stop_after`` ends the run early after that many steps of this call (a checkpoint is
    written), as a pre-emption would. Metrics go to ``workdir/metrics.jsonl`` (one line per
    ``log_every`` steps), checkpoints to ``workdir/checkpoints``.
    """
    config.validate()
    say = log_fn or log.info

    def warn(msg):
        log.warning(msg) if log_fn is None else say("WARNING " + msg)

    os.makedirs(workdir, exist_ok=True)
    _write_config(workdir, config)
    mesh = parallel.make_mesh(num_devices)
    parallel.check_batch_size(config.batch_size, mesh, "batch_size")
    corpus = None
    if config.target.startswith("dir:"):
        corpus = parallel.replicate(jnp.asarray(load_corpus(config.target[4:], config.slice_len)), mesh)
    else:
        corpus = parallel.replicate(jnp.zeros((1,), jnp.float32), mesh)

    mngr = checkpoint.manager(os.path.join(workdir, CHECKPOINT_DIR), max_to_keep=config.keep_checkpoints)
    if checkpoint.latest_step(mngr) is not None:
        start, state, meta = checkpoint.restore(mngr, abstract_state(config, mesh))
        say(f"resumed from {workdir} at step {start}")
    else:
        state = parallel.replicate(init_state(config), mesh)
        start = 0
    step_fn = make_train_step(config, mesh)
    metrics_path = os.path.join(workdir, METRICS_FILE)
    end = config.steps if stop_after is None else min(config.steps, start + stop_after)
    flops = wavegan.flops_per_clip(config.dim, config.slice_len)
    say(f"MaskGAN {config.loss} d={config.dim} slice={config.slice_len} batch={config.batch_size} "
        f"on {parallel.describe(mesh)}; steps {start} -> {end}")

    draw_quality = quality_sampler(config) if config.quality_clips else None
    last_quality = _last_quality(metrics_path)

    def quality_side(step):
        # Quick noise-quality measures at a checkpoint; warns when one got worse since the last one.
        nonlocal last_quality
        fake, target = draw_quality(state["g_params"], corpus)
        q = quality.quick_measures(np.asarray(fake), np.asarray(target))
        rec = {"kind": "quality", "step": step, "clips": config.quality_clips, **q}
        if parallel.is_main_process():
            results.append_jsonl(metrics_path, rec)
        say(f"quality at step {step}: {quality.format_quick(q)}")
        for w in quality.worsened(last_quality, q):
            warn(f"step {step}: noise quality {w} since step {last_quality['step']}")
        last_quality = rec

    pending = None  # (step, metrics) of the last dispatched step: read after dispatching the next one
    t_start, t_last, n_last = time.perf_counter(), time.perf_counter(), start

    def host_side(step, metrics):
        nonlocal t_last, n_last
        metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
        warnings = check_metrics(metrics, step, config)  # raises on non-finite values at every step
        if step % config.log_every == 0 or step == end:
            for w in warnings:  # silence/collapse warnings only on logged steps: one line, not one per step
                warn(w)
            now = time.perf_counter()
            rate = (step - n_last) / max(now - t_last, 1e-9)
            eta = (end - step) / rate if rate > 0 else float("nan")
            t_last, n_last = now, step
            rec = {"kind": "train", "step": step, **metrics, "steps_per_s": rate, "eta_s": eta,
                   "elapsed_s": now - t_start}
            if parallel.is_main_process():
                results.append_jsonl(metrics_path, rec)
            say(f"step {step}/{end} d_loss {metrics['d_loss']:.4f} g_loss {metrics['g_loss']:.4f} "
                f"gp {metrics['gp']:.4f} rms {metrics['fake_rms']:.4f} (target {metrics['real_rms']:.4f}) "
                f"{rate:.3g} steps/s ETA {eta:.0f} s")

    for step in range(start + 1, end + 1):
        state, metrics = step_fn(state, corpus, step_key(state, step))
        if pending is not None:
            host_side(*pending)
        pending = (step, metrics)
        if step % config.checkpoint_every == 0 and step != end:
            checkpoint.save(mngr, step, state, {"config": config.to_json()})
            if draw_quality is not None:
                quality_side(step)
    if pending is not None:
        host_side(*pending)
    if end > start or checkpoint.latest_step(mngr) is None:
        checkpoint.save(mngr, end, state, {"config": config.to_json()}, force=True)
        if draw_quality is not None:
            quality_side(end)
    mngr.wait_until_finished()
    mngr.close()
    say(f"done: step {end}, {workdir}; flops/clip G {flops['generator']:.3g} D {flops['critic']:.3g}")
    return state
