"""The attacker's jitted train and eval steps on device log-mel, and the adversaries' front ends.

Audio reaches the devices as int16. Inside a step it is converted to float, mixed with the
batch's masking noise at the given SNR (`masking.mix`) when the phase hears masked audio,
passed through the adversary's front end (identity, or a denoiser registered with
`register_front_end`) and turned into a log-mel spectrogram. The noise and the SNR are
inputs, never constants, so one compiled program per (phase, masked, front end) serves every
noise source and level: `get_steps` caches a `Steps` per model/optimiser/front-end config.
"""
from __future__ import annotations

import functools
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import optax

from maskgan_jax import audio, denoise, features, masking, parallel, probe
from maskgan_jax import room as room_lib
from maskgan_jax.models import attackers

# name -> factory() -> jittable wave_BxT -> wave_BxT (float32 in [-1, 1])
_FRONT_ENDS: dict[str, Callable[[], Callable[[jax.Array], jax.Array]]] = {
    "none": lambda: (lambda wave: wave),
}


def register_front_end(name: str, factory: Callable[[], Callable[[jax.Array], jax.Array]]) -> None:
    """Adds an adversary front end: ``factory()`` returns a pure jittable wave_BxT -> wave_BxT."""
    _FRONT_ENDS[name] = factory


def _denoise_factory(method: str):
    return lambda: denoise.make_front_end(denoise.DenoiseConfig(method=method))


register_front_end("wiener", _denoise_factory("wiener"))
register_front_end("subtraction", _denoise_factory("subtraction"))


def front_ends() -> tuple[str, ...]:
    """Names of the registered front ends."""
    return tuple(_FRONT_ENDS)


def optimizer(cfg) -> optax.GradientTransformation:
    """AdamW with its learning rate injected per step (the host computes the schedule).

    With ``readout_init="probe"`` the statistics readout (the fitted probe) is kept fixed.
    """
    adamw = optax.inject_hyperparams(optax.adamw)(learning_rate=cfg.learning_rate, weight_decay=cfg.weight_decay)
    if cfg.readout_init != "probe":
        return adamw

    def labels(params):
        return jax.tree_util.tree_map_with_path(
            lambda path, _: "fixed" if any(getattr(k, "key", "").startswith(attackers.PROBE_READOUT)
                                           for k in path) else "trained", params)

    return optax.multi_transform({"trained": adamw, "fixed": optax.set_to_zero()}, labels)


def spec_augment(mel_BxMxF: jax.Array, key: jax.Array, time_masks: int, freq_masks: int,
                 width: float) -> jax.Array:
    """SpecAugment-style masking: bands of frames and of mel bins set to each clip's mean (dB).

    Each mask is up to ``width`` of the axis wide, at a uniform position, per example.
    """
    b, m, f = mel_BxMxF.shape
    fill = jnp.mean(mel_BxMxF, axis=(1, 2), keepdims=True)
    keep = jnp.ones(mel_BxMxF.shape, bool)
    for i, (axis, size) in enumerate([(2, f)] * time_masks + [(1, m)] * freq_masks):
        k_w, k_s = jax.random.split(jax.random.fold_in(key, i))
        w = jax.random.randint(k_w, (b,), 0, max(1, int(width * size)) + 1)
        start = jax.random.randint(k_s, (b,), 0, size) - w // 2
        pos = jnp.arange(size)
        hit = (pos[None] >= start[:, None]) & (pos[None] < (start + w)[:, None])      # [B, size]
        keep = keep & ~(hit[:, None, :] if axis == 2 else hit[:, :, None])
    return jnp.where(keep, mel_BxMxF, fill)


def random_shift(wave_BxT: jax.Array, key: jax.Array, fraction: float) -> jax.Array:
    """Each clip circularly shifted by up to ``fraction`` of its length either way."""
    t = wave_BxT.shape[1]
    most = int(fraction * t)
    shifts = jax.random.randint(key, (wave_BxT.shape[0],), -most, most + 1)
    return jax.vmap(lambda w, s: jnp.roll(w, s))(wave_BxT, shifts)


class Steps:
    """Jitted steps of one attacker (model, mel, optimiser, augmentation, front end) on one mesh.

    ``train(masked, front, room)`` and ``evaluate(masked, front, room)`` return the compiled
    programs ``(state|params, batch, key, mix_args[, lr]) -> ...``; a masked phase reads
    ``batch["noise"]`` (float32 [B, T], drawn by a `masking.NoiseProgram`) and mixes it in at
    ``mix_args[0]`` dB SNR (digital channel) or plays it through the room of each example
    (``batch["room"]``, room channel; speech and noise RMS levels ``mix_args[1:3]``).
    ``features(...)`` computes the probe's log-mel statistics the same way. The probe family
    has no neural model (``model`` is None).
    """

    def __init__(self, cfg, heads: Sequence[tuple[str, int]], clip_samples: int, mesh: jax.sharding.Mesh):
        self.cfg, self.heads, self.mesh, self.clip_samples = cfg, tuple(heads), mesh, clip_samples
        self.model = attackers.build(cfg.model, heads) if cfg.model.model != "probe" else None
        self.tx = optimizer(cfg)
        self._front = _FRONT_ENDS[cfg.front_end]()
        rep, dat = parallel.replicated_sharding(mesh), parallel.data_sharding(mesh)
        m = cfg.mel
        frames = 1 + clip_samples // m.hop_length

        def init(key):
            # One compiled program instead of eager op-by-op initialisation (slow for scans).
            params = self.model.init(key, jnp.zeros((1, m.n_mels, frames), jnp.float32))
            return {"params": params, "opt_state": self.tx.init(params), "step": jnp.zeros((), jnp.int32)}

        self._init = jax.jit(init, out_shardings=rep)
        self._jit = functools.partial(jax.jit, in_shardings=(rep, dat, rep, rep))
        self._programs: dict = {}

    def init(self, key: jax.Array) -> dict:
        """A fresh replicated train state {params, opt_state, step}."""
        return self._init(key)

    def train(self, masked: bool, front: bool, room: bool = False):
        """``(state, batch, key, mix_args, lr) -> (state, {loss, grad_norm, clipped})``, state donated."""
        k = ("train", masked, front, room)
        if k not in self._programs:
            rep, dat = parallel.replicated_sharding(self.mesh), parallel.data_sharding(self.mesh)
            self._programs[k] = jax.jit(functools.partial(self._train, masked=masked, front=front, room=room),
                                        in_shardings=(rep, dat, rep, rep, rep), out_shardings=(rep, rep),
                                        donate_argnums=(0,))
        return self._programs[k]

    def features(self, masked: bool, front: bool, room: bool = False):
        """``(batch, mix_args) -> probe features [B, D]`` of what the phase hears."""
        k = ("features", masked, front, room)
        if k not in self._programs:
            rep, dat = parallel.replicated_sharding(self.mesh), parallel.data_sharding(self.mesh)
            self._programs[k] = jax.jit(
                lambda batch, mix_args: probe.features(self.log_mel(batch, mix_args, masked, front, room)[0]),
                in_shardings=(dat, rep), out_shardings=dat)
        return self._programs[k]

    def evaluate(self, masked: bool, front: bool, room: bool = False):
        """``(params, batch, key, mix_args) -> {confusion/<attr>, correct/<attr>, all_correct, ..., clipped}``."""
        k = ("eval", masked, front, room)
        if k not in self._programs:
            self._programs[k] = self._jit(functools.partial(self._eval, masked=masked, front=front, room=room),
                                          out_shardings=parallel.replicated_sharding(self.mesh))
        return self._programs[k]

    def log_mel(self, batch: dict, mix_args, masked: bool, front: bool, room: bool = False, shift_key=None):
        """int16 audio -> (log-mel [B, M, F], clipped-sample count) as the phase hears it: with its
        noise (digital mix at ``mix_args[0]`` dB SNR, or through each example's room), its front end.

        With ``shift_key`` (training), the heard audio is also shifted at random in time.
        """
        wave = audio.int16_to_float(batch["audio"])
        clipped = jnp.zeros((), jnp.int32)
        if room:
            heard = room_lib.room_mix_rms(wave, batch["noise"] if masked else None, batch["room"],
                                          mix_args[1], mix_args[2])
            wave = heard.mic
            clipped = jnp.sum(heard.n_clipped * (batch["weight"] > 0))
        elif masked:
            wave, n_clip = masking.mix(wave, batch["noise"], mix_args[0])
            clipped = jnp.sum(n_clip * (batch["weight"] > 0))
        if front:
            wave = self._front(wave)
        if shift_key is not None and self.cfg.time_shift > 0:
            wave = random_shift(wave, shift_key, self.cfg.time_shift)
        m = self.cfg.mel
        return features.log_mel_spectrogram(wave, m.sample_rate, m.n_fft, m.hop_length, m.n_mels,
                                            m.fmin, m.fmax), clipped

    def loss(self, params, mel, batch, dropout_key=None):
        """Mean over heads of the masked softmax cross-entropy (labels -1 and padding left out).

        With ``dropout_key`` the model runs in training mode (dropout on its readout).
        """
        logits = self.model.apply(params, mel, dropout_key is not None, dropout_key)
        total = 0.0
        for name, _ in self.heads:
            y = batch["labels"][name]
            valid = ((y >= 0) & (batch["weight"] > 0)).astype(jnp.float32)
            ce = optax.softmax_cross_entropy_with_integer_labels(logits[name], jnp.maximum(y, 0))
            total = total + jnp.sum(ce * valid) / jnp.maximum(jnp.sum(valid), 1.0)
        return total / len(self.heads)

    def _train(self, state, batch, key, mix_args, lr, masked, front, room):
        # Augmentation keys: a function of the epoch key and the step.
        k_shift, k_mask, k_drop = jax.random.split(jax.random.fold_in(key, state["step"]), 3)
        cfg = self.cfg
        mel, clipped = self.log_mel(batch, mix_args, masked, front, room, k_shift if cfg.time_shift > 0 else None)
        if cfg.time_masks or cfg.freq_masks:
            mel = spec_augment(mel, k_mask, cfg.time_masks, cfg.freq_masks, cfg.mask_width)
        loss, grads = jax.value_and_grad(self.loss)(state["params"], mel, batch,
                                                    k_drop if cfg.model.dropout > 0 else None)
        opt_state = _with_learning_rate(state["opt_state"], lr)
        updates, opt_state = self.tx.update(grads, opt_state, state["params"])
        params = optax.apply_updates(state["params"], updates)
        return ({"params": params, "opt_state": opt_state, "step": state["step"] + 1},
                {"loss": loss, "grad_norm": optax.tree.norm(grads), "clipped": clipped})

    def _eval(self, params, batch, key, mix_args, masked, front, room):
        del key
        mel, clipped = self.log_mel(batch, mix_args, masked, front, room)
        logits = self.model.apply(params, mel)
        out = {"clipped": clipped}
        w = batch["weight"] > 0
        # Per-example loss (mean over the heads an example has labels for), summed with its square
        # for the validation loss's standard error.
        ce_sum = jnp.zeros(w.shape, jnp.float32)
        n_heads = jnp.zeros(w.shape, jnp.float32)
        for name, _ in self.heads:
            y = batch["labels"][name]
            valid = ((y >= 0) & w).astype(jnp.float32)
            ce_sum = ce_sum + optax.softmax_cross_entropy_with_integer_labels(logits[name], jnp.maximum(y, 0)) * valid
            n_heads = n_heads + valid
        per_example = ce_sum / jnp.maximum(n_heads, 1.0)
        has = (n_heads > 0).astype(jnp.float32)
        out.update(loss=jnp.sum(per_example * has), loss_sq=jnp.sum(jnp.square(per_example) * has),
                   n_loss=jnp.sum(has))
        all_ok = jnp.ones_like(w)
        any_label = jnp.zeros_like(w)
        for name, n in self.heads:
            y = batch["labels"][name]
            valid = (y >= 0) & w
            pred = jnp.argmax(logits[name], axis=-1)
            oh_true = jax.nn.one_hot(jnp.where(valid, y, -1), n, dtype=jnp.float32)
            oh_pred = jax.nn.one_hot(pred, n, dtype=jnp.float32)
            out[f"confusion/{name}"] = jnp.round(oh_true.T @ oh_pred).astype(jnp.int32)
            # Per example: 1 right, 0 wrong, -1 no label (pooled over folds for clustered intervals).
            out[f"correct/{name}"] = jnp.where(valid, (pred == y).astype(jnp.int8), jnp.int8(-1))
            all_ok = all_ok & ((pred == y) | ~valid)
            any_label = any_label | valid
        out["all_correct"] = jnp.sum(all_ok & any_label)
        out["any_label"] = jnp.sum(any_label)
        return out


def _with_learning_rate(opt_state, lr):
    """The optimiser state with the injected learning rate set (inside multi_transform too)."""
    lr = jnp.asarray(lr, jnp.float32)

    def visit(state):
        if isinstance(state, optax.InjectHyperparamsState):
            return state._replace(hyperparams={**state.hyperparams, "learning_rate": lr})
        return state

    return jax.tree_util.tree_map(visit, opt_state, is_leaf=lambda x: isinstance(x, optax.InjectHyperparamsState))


def steps_key(cfg) -> tuple:
    """The config fields a `Steps` depends on (noise, level, seed and schedule do not enter it)."""
    return (cfg.model, cfg.mel, cfg.learning_rate, cfg.weight_decay, cfg.front_end, cfg.time_shift,
            cfg.time_masks, cfg.freq_masks, cfg.mask_width, cfg.readout_init)


_STEPS: dict = {}


def get_steps(cfg, heads: Sequence[tuple[str, int]], clip_samples: int, mesh) -> Steps:
    """The cached `Steps` for a config, heads, clip length and mesh (compiled programs reused)."""
    k = (steps_key(cfg), tuple((str(a), int(n)) for a, n in heads), int(clip_samples), mesh)
    if k not in _STEPS:
        _STEPS[k] = Steps(cfg, heads, clip_samples, mesh)
    return _STEPS[k]
