"""Inference attackers on log-mel spectrograms: CNN, RNN (GRU/LSTM) and CRNN, one head per attribute.

Every model maps a log-mel batch ``mel_BxMxF`` (dB, mels x frames) to a dict
``attribute -> logits [B, classes]``; a single-label task simply has one attribute.
The family and sizes mirror ``../shared/peers/attackers_torch.py`` so that speed
comparisons are like for like, with two stated differences: no BatchNorm (the input is
standardised per example instead, which keeps the step a pure function without batch
statistics); the CNN reads out the time-averaged map with its frequency axis kept
(``cnn_head="freq"``; ``"global"`` is the peer's global average); and the recurrent models
pool their outputs over time (``pool="mean"``) unless ``pool="last"`` asks for the peer's
last-step readout. The heads are a negligible share of the step's FLOPs.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import flax.linen as nn

from maskgan_jax import features
from maskgan_jax.models import layers
from maskgan_jax.vocab import MODEL_FAMILIES, NEURAL_FAMILIES

MODELS = NEURAL_FAMILIES
CELLS = ("gru", "lstm")
NORMS = ("none", "layer")
POOLS = ("mean", "last")
CNN_HEADS = ("freq", "global")


@dataclasses.dataclass(frozen=True)
class AttackerConfig:
    """Architecture and sizes of an attacker (the heads come from the task)."""
    model: str = "cnn"                       # cnn | rnn | crnn | probe (no neural layers)
    channels: tuple[int, ...] = (32, 64, 128, 128)   # conv blocks (cnn, crnn)
    hidden: int = 128                        # recurrent width (rnn, crnn)
    layers: int = 2                          # recurrent layers (rnn, crnn)
    cell: str = "gru"                        # gru | lstm
    norm: str = "none"                       # none | layer (after each conv)
    pool: str = "mean"                       # recurrent readout over time: mean | last
    cnn_head: str = "freq"                   # cnn readout: mean over time (freq) or time and freq (global)
    input_stats: bool = False                # readout also sees the input's per-band statistics
    dropout: float = 0.0                     # on the readout features, in training
    compute_dtype: str = "float32"           # float32 | bfloat16: the layers' compute dtype (parameters
                                             # float32; log-mel, statistics and logits float32)

    def __post_init__(self):
        if self.model not in MODEL_FAMILIES:
            raise ValueError(f"model={self.model!r}: expected one of {MODEL_FAMILIES}")
        if self.cell not in CELLS:
            raise ValueError(f"cell={self.cell!r}: expected one of {CELLS}")
        if self.norm not in NORMS:
            raise ValueError(f"norm={self.norm!r}: expected one of {NORMS}")
        if self.cnn_head not in CNN_HEADS:
            raise ValueError(f"cnn_head={self.cnn_head!r}: expected one of {CNN_HEADS}")
        if self.pool not in POOLS:
            raise ValueError(f"pool={self.pool!r}: expected one of {POOLS}")
        if self.model in ("cnn", "crnn") and not self.channels:
            raise ValueError(f"model={self.model} needs at least one conv channel count")
        if self.model in ("rnn", "crnn") and (self.hidden < 1 or self.layers < 1):
            raise ValueError("hidden and layers must be positive for recurrent models")
        layers.compute_dtype(self.compute_dtype)   # raises on an unknown dtype
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout={self.dropout} must be in [0, 1)")


# Dynamic range kept by `standardize` (librosa's power_to_db default).
TOP_DB = 80.0
# The readout's input statistics are log-mel dB values divided by this (order 1 inputs).
STATS_SCALE = 20.0
ABSENT_CLASS_LOGIT = -20.0
# Name prefix of the readout on the input statistics (one Dense per head).
PROBE_READOUT = "stats_head"


def standardize(mel_BxMxF: jax.Array, top_db: float | None = TOP_DB) -> jax.Array:
    """Per-example zero mean, unit variance over the whole spectrogram (level-invariant input).

    The log-mel (dB) is first floored at ``top_db`` below each example's maximum, as
    librosa's ``power_to_db(top_db=80)`` does: otherwise digital silence (zero-padded
    short clips reach the -100 dB floor of `features.log_mel_spectrogram`) dominates the
    mean and variance, and clean padded clips look nothing like the same clips with noise.
    """
    mel_BxMxF = features.floor_db(mel_BxMxF, top_db)
    mu = jnp.mean(mel_BxMxF, axis=(1, 2), keepdims=True)
    sd = jnp.std(mel_BxMxF, axis=(1, 2), keepdims=True)
    return (mel_BxMxF - mu) / (sd + 1e-5)


def max_pool_2x2(x_BxHxWxC: jax.Array) -> jax.Array:
    """2x2 max pooling, stride 2, floor on odd sizes (as torch's MaxPool2d(2))."""
    b, h, w, c = x_BxHxWxC.shape
    x = x_BxHxWxC[:, :h // 2 * 2, :w // 2 * 2]
    return x.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


class ConvBlock(nn.Module):
    """3x3 'same' convolution, optional LayerNorm, ReLU, 2x2 max pooling (NHWC)."""
    features: int
    norm: str = "none"
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        # NHWC with HWIO kernels is XLA:CPU's fast convolution layout.
        x = nn.Conv(self.features, (3, 3), padding="SAME", dtype=self.dtype)(x)
        if self.norm == "layer":
            x = nn.LayerNorm(dtype=self.dtype)(x)
        return max_pool_2x2(nn.relu(x))


class Recurrent(nn.Module):
    """One GRU or LSTM layer over time, batch-major [B, T, D] -> [B, T, H].

    The input projection of all time steps is one big matmul before the scan, so the
    sequential part is only the small hidden-to-hidden matmul (what cuDNN/oneDNN do).
    """
    hidden: int
    cell: str = "gru"
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x_BxTxD):
        h = self.hidden
        gates = 3 if self.cell == "gru" else 4
        xw = nn.Dense(gates * h, name="input", dtype=self.dtype)(x_BxTxD)   # [B, T, G*H]
        w_hh = self.param("recurrent", nn.initializers.orthogonal(), (h, gates * h)).astype(self.dtype)
        b_hh = self.param("recurrent_bias", nn.initializers.zeros, (gates * h,)).astype(self.dtype)
        xw_TxBxG = jnp.swapaxes(xw, 0, 1)
        b = x_BxTxD.shape[0]
        if self.cell == "gru":
            def step(hs, xt):
                hw = hs @ w_hh + b_hh
                xr, xz, xn = jnp.split(xt, 3, axis=-1)
                hr, hz, hn = jnp.split(hw, 3, axis=-1)
                r = jax.nn.sigmoid(xr + hr)
                z = jax.nn.sigmoid(xz + hz)
                n = jnp.tanh(xn + r * hn)
                hs = (1.0 - z) * n + z * hs
                return hs, hs
            carry = jnp.zeros((b, h), xw.dtype)
        else:
            def step(c_h, xt):
                c, hs = c_h
                i, f, g, o = jnp.split(xt + hs @ w_hh + b_hh, 4, axis=-1)
                c = jax.nn.sigmoid(f + 1.0) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
                hs = jax.nn.sigmoid(o) * jnp.tanh(c)
                return (c, hs), hs
            carry = (jnp.zeros((b, h), xw.dtype), jnp.zeros((b, h), xw.dtype))
        _, out_TxBxH = jax.lax.scan(step, carry, xw_TxBxG)
        return jnp.swapaxes(out_TxBxH, 0, 1)


class Attacker(nn.Module):
    """CNN / RNN / CRNN on a log-mel batch [B, mels, frames] -> {attribute: logits [B, C]}.

    With ``input_stats`` the readout also sees the probe's log-mel statistics
    (`features.log_mel_statistics`): its linear part can do what the probe does (and can start
    from the probe's fitted solution, `warm_start_readout`), the learnt features add to it.
    """
    config: AttackerConfig
    heads: tuple[tuple[str, int], ...]       # (attribute, number of classes) per head

    @nn.compact
    def __call__(self, mel_BxMxF, train: bool = False, dropout_key=None):
        cfg = self.config
        mel = mel_BxMxF.astype(jnp.float32)
        x = standardize(mel)
        # The probe's statistics (dB / STATS_SCALE), read by the last rows of each head's kernel.
        stats = features.log_mel_statistics(mel, TOP_DB) / STATS_SCALE if cfg.input_stats else None
        dtype = layers.compute_dtype(cfg.compute_dtype)
        x = x.astype(dtype)
        if cfg.model in ("cnn", "crnn"):
            x = x[..., None]                                      # [B, M, F, 1] NHWC
            for c in cfg.channels:
                x = ConvBlock(c, cfg.norm, dtype)(x)
        if cfg.model == "cnn" and cfg.cnn_head == "global":
            feat = jnp.mean(x, axis=(1, 2))                       # the peer's global average pool
        elif cfg.model == "cnn":
            # Pitch and timbre live at particular frequencies: keep the frequency axis.
            feat = jnp.mean(x, axis=2).reshape(x.shape[0], -1)
        else:
            if cfg.model == "crnn":
                b, m, f, c = x.shape
                x = jnp.transpose(x, (0, 2, 3, 1)).reshape(b, f, c * m)   # [B, frames', C*mels']
            else:
                x = jnp.swapaxes(x, 1, 2)                          # [B, frames, mels]
            for _ in range(cfg.layers):
                x = Recurrent(cfg.hidden, cfg.cell, dtype)(x)
            feat = x[:, -1] if cfg.pool == "last" else jnp.mean(x, axis=1)
        if cfg.dropout > 0 and train:
            keep = jax.random.bernoulli(dropout_key, 1.0 - cfg.dropout, feat.shape)
            feat = jnp.where(keep, feat / (1.0 - cfg.dropout), 0.0)
        # The readouts compute in float32 (a negligible share of the FLOPs; the logits feed the loss).
        feat = feat.astype(jnp.float32)
        if stats is None:
            return {name: nn.Dense(n, name=f"head_{name}")(feat) for name, n in self.heads}
        # Two readouts summed: the learnt features' (from zero, so that a warm-started model
        # starts exactly at the probe) and the statistics' (`PROBE_READOUT`, the probe's form).
        return {name: nn.Dense(n, name=f"head_{name}", kernel_init=nn.initializers.zeros)(feat)
                + nn.Dense(n, name=f"{PROBE_READOUT}_{name}")(stats) for name, n in self.heads}


def build(config: AttackerConfig, heads: Sequence[tuple[str, int]]) -> Attacker:
    """The attacker module for ``config`` with one softmax head per (attribute, classes)."""
    heads = tuple((str(a), int(n)) for a, n in heads)
    if config.model not in NEURAL_FAMILIES:
        raise ValueError(f"model={config.model!r} is not a neural attacker (the probe is maskgan_jax.probe)")
    if not heads or any(n < 2 for _, n in heads):
        raise ValueError(f"heads={heads}: every head needs at least 2 classes")
    return Attacker(config, heads)


def count_params(params) -> int:
    """Total number of parameters in a pytree."""
    return int(sum(x.size for x in jax.tree_util.tree_leaves(params)))


def forward_flops(config: AttackerConfig, heads: Sequence[tuple[str, int]], n_mels: int,
                  frames: int) -> float:
    """Multiply-add FLOPs (x2) of one example's forward pass (convs, recurrences, dense)."""
    fl = 0.0
    h, w, cin = n_mels, frames, 1
    if config.model in ("cnn", "crnn"):
        for c in config.channels:
            fl += 2.0 * h * w * 9 * cin * c
            h, w, cin = h // 2, w // 2, c
    if config.model == "cnn":
        feat = cin if config.cnn_head == "global" else cin * h
    else:
        d, t = (n_mels, frames) if config.model == "rnn" else (cin * h, w)
        g = 3 if config.cell == "gru" else 4
        for _ in range(config.layers):
            fl += 2.0 * t * (d * g * config.hidden + config.hidden * g * config.hidden)
            d = config.hidden
        feat = config.hidden
    fl += sum(2.0 * feat * n for _, n in heads)
    if config.input_stats:
        fl += sum(2.0 * (4 * n_mels + 1) * n for _, n in heads)
    return fl


def warm_start_readout(params: dict, probe_params: dict) -> dict:
    """``params`` with each head's statistics readout set to a fitted probe's solution.

    The probe computes logits ((x - mean) / scale) @ W + b on the raw statistics x; the model
    reads x / STATS_SCALE, so its statistics readout gets the kernel W * STATS_SCALE / scale and
    the bias b - (mean / scale) @ W (a class absent from the probe's training split a very low
    bias). With the learnt features' readout starting at zero, the model starts at the probe.
    """
    mean = jnp.asarray(probe_params["mean"], jnp.float32)
    scale = jnp.asarray(probe_params["scale"], jnp.float32)
    inner = dict(params["params"])
    for name, head in probe_params["heads"].items():
        w = jnp.asarray(head["w"], jnp.float32)
        b = jnp.asarray(head["b"], jnp.float32)
        present = jnp.asarray(head["present"], bool)
        layer = dict(inner[f"{PROBE_READOUT}_{name}"])
        if layer["kernel"].shape != w.shape:
            raise ValueError(f"head {name}: readout kernel {layer['kernel'].shape} does not fit the probe's {w.shape}")
        layer["kernel"] = w * (STATS_SCALE / scale)[:, None]
        layer["bias"] = jnp.where(present, b - (mean / scale) @ w, ABSENT_CLASS_LOGIT)
        inner[f"{PROBE_READOUT}_{name}"] = layer
    return {**params, "params": inner}
