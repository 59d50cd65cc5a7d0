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

from maskgan_jax import audio, denoise, features, masking, parallel
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


class Steps:
    """Jitted steps of one attacker (model, mel, optimiser, front end) on one mesh.

    ``train(masked, front)`` and ``evaluate(masked, front)`` return the compiled programs
    ``(state|params, batch, key, snr_db) -> ...``; a masked phase reads ``batch["noise"]``
    (float32 [B, T], drawn by a `masking.NoiseProgram`) and mixes it in at ``snr_db``.
    """

    def __init__(self, cfg, heads: Sequence[tuple[str, int]], clip_samples: int, mesh: jax.sharding.Mesh):
        self.cfg, self.heads, self.mesh, self.clip_samples = cfg, tuple(heads), mesh, clip_samples
        self.model = attackers.build(cfg.model, heads)
        self.tx = optax.adam(cfg.learning_rate)
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

    def train(self, masked: bool, front: bool):
        """``(state, batch, key, snr_db) -> (state, {loss, grad_norm, clipped})``, state donated."""
        k = ("train", masked, front)
        if k not in self._programs:
            self._programs[k] = self._jit(functools.partial(self._train, masked=masked, front=front),
                                          out_shardings=(parallel.replicated_sharding(self.mesh),) * 2,
                                          donate_argnums=(0,))
        return self._programs[k]

    def evaluate(self, masked: bool, front: bool):
        """``(params, batch, key, snr_db) -> {confusion/<attr>, all_correct, any_label, clipped}``."""
        k = ("eval", masked, front)
        if k not in self._programs:
            self._programs[k] = self._jit(functools.partial(self._eval, masked=masked, front=front),
                                          out_shardings=parallel.replicated_sharding(self.mesh))
        return self._programs[k]

    def log_mel(self, batch: dict, snr_db, masked: bool, front: bool):
        """int16 audio -> (log-mel [B, M, F], clipped-sample count) with optional noise and front end."""
        wave = audio.int16_to_float(batch["audio"])
        clipped = jnp.zeros((), jnp.int32)
        if masked:
            wave, n_clip = masking.mix(wave, batch["noise"], snr_db)
            clipped = jnp.sum(n_clip * (batch["weight"] > 0))
        if front:
            wave = self._front(wave)
        m = self.cfg.mel
        return features.log_mel_spectrogram(wave, m.sample_rate, m.n_fft, m.hop_length, m.n_mels,
                                            m.fmin, m.fmax), clipped

    def loss(self, params, mel, batch):
        """Mean over heads of the masked softmax cross-entropy (labels -1 and padding left out)."""
        logits = self.model.apply(params, mel)
        total = 0.0
        for name, _ in self.heads:
            y = batch["labels"][name]
            valid = ((y >= 0) & (batch["weight"] > 0)).astype(jnp.float32)
            ce = optax.softmax_cross_entropy_with_integer_labels(logits[name], jnp.maximum(y, 0))
            total = total + jnp.sum(ce * valid) / jnp.maximum(jnp.sum(valid), 1.0)
        return total / len(self.heads)

    def _train(self, state, batch, key, snr_db, masked, front):
        del key  # the batch's noise was drawn with it; kept in the signature for augmentations
        mel, clipped = self.log_mel(batch, snr_db, masked, front)
        loss, grads = jax.value_and_grad(self.loss)(state["params"], mel, batch)
        updates, opt_state = self.tx.update(grads, state["opt_state"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        return ({"params": params, "opt_state": opt_state, "step": state["step"] + 1},
                {"loss": loss, "grad_norm": optax.tree.norm(grads), "clipped": clipped})

    def _eval(self, params, batch, key, snr_db, masked, front):
        del key
        mel, clipped = self.log_mel(batch, snr_db, masked, front)
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


def steps_key(cfg) -> tuple:
    """The config fields a `Steps` depends on (noise, level, seed and schedule do not enter it)."""
    return (cfg.model, cfg.mel, cfg.learning_rate, cfg.front_end)


_STEPS: dict = {}


def get_steps(cfg, heads: Sequence[tuple[str, int]], clip_samples: int, mesh) -> Steps:
    """The cached `Steps` for a config, heads, clip length and mesh (compiled programs reused)."""
    k = (steps_key(cfg), tuple((str(a), int(n)) for a, n in heads), int(clip_samples), mesh)
    if k not in _STEPS:
        _STEPS[k] = Steps(cfg, heads, clip_samples, mesh)
    return _STEPS[k]
