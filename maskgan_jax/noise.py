"""Reference noises from ``jax.random``: white (Gaussian or uniform), pink (1/f), brown (1/f^2).

Shapes are ``(..., T)``: any leading batch dims, time last, any length. Output is float32
at a fixed scale so that levels are set afterwards (``levels.scale_to_spl``):
white noise has unit variance in expectation (Gaussian N(0, 1), or uniform on
[-sqrt(3), sqrt(3)]); pink and brown are scaled to exactly unit RMS per clip, because
their low-frequency power makes the RMS of a finite clip vary widely between draws.
Same key, same noise; all functions are jittable (``shape`` is static) and vmappable,
and a batch drawn from keys sharded over a device mesh stays sharded (the pink/brown
FFT included).
"""
from __future__ import annotations

import functools
import math
from typing import Sequence

import jax
import jax.numpy as jnp
from jax.experimental.custom_partitioning import custom_partitioning
from jax.sharding import NamedSharding, PartitionSpec as P

_SQRT3 = math.sqrt(3.0)


def _shape(shape: Sequence[int] | int) -> tuple[int, ...]:
    shape = (shape,) if isinstance(shape, int) else tuple(int(s) for s in shape)
    if not shape or any(s < 0 for s in shape):
        raise ValueError(f"noise shape must be (..., T) with non-negative sizes, got {shape}")
    return shape


def white(key, shape: Sequence[int] | int, kind: str = "gaussian"):
    """White noise (flat power spectrum), unit variance: kind "gaussian" or "uniform"."""
    shape = _shape(shape)
    if kind == "gaussian":
        return jax.random.normal(key, shape, jnp.float32)
    if kind == "uniform":
        return jax.random.uniform(key, shape, jnp.float32, -_SQRT3, _SQRT3)
    raise ValueError(f"white noise kind must be 'gaussian' or 'uniform', got {kind!r}")


def _shape_spectrum(x, exponent: float):
    """White noise [..., T] -> power ~ 1/f**exponent along the last axis, unit RMS per clip."""
    t = x.shape[-1]
    spec = jnp.fft.rfft(x, axis=-1)
    # iota, not arange: custom_partitioning bodies may not capture constant arrays.
    k = jax.lax.iota(jnp.float32, spec.shape[-1])
    # The 1/f law diverges at DC: the DC bin is zeroed, so every clip has zero mean
    # (no offset pushed to a loudspeaker) and the power law holds from the first bin on.
    gain = jnp.where(k > 0, jnp.maximum(k, 1.0) ** (-exponent / 2.0), 0.0)
    y = jnp.fft.irfft(spec * gain, n=t, axis=-1)
    rms = jnp.sqrt(jnp.mean(y * y, axis=-1, keepdims=True))
    return (y / rms).astype(jnp.float32)


@functools.lru_cache(maxsize=None)
def _shaper(exponent: float):
    """`_shape_spectrum` as an op that keeps its batch sharding and batches under vmap.

    XLA's SPMD partitioner replicates FFTs whose batch dims are sharded (openxla/xla#24);
    custom_partitioning lets each device shape its own clips, and custom_vmap (which
    custom_partitioning lacks) folds a vmapped axis into the leading dims.
    """
    def impl(x):
        return _shape_spectrum(x, exponent)

    def sharding(mesh, arg_shapes):
        spec = tuple(arg_shapes[0].sharding.spec)
        rank = len(arg_shapes[0].shape)
        lead = (spec + (None,) * rank)[:rank - 1]
        return NamedSharding(mesh, P(*lead, None))

    def partition(mesh, arg_shapes, result_shape):
        s = sharding(mesh, arg_shapes)
        return mesh, impl, s, (s,)

    op = custom_partitioning(impl)
    op.def_partition(partition=partition,
                     infer_sharding_from_operands=lambda mesh, arg_shapes, _: sharding(mesh, arg_shapes),
                     sharding_rule="... t -> ... t", need_replication_factors=("t",))

    @jax.custom_batching.custom_vmap
    def batched(x):
        return op(x)

    @batched.def_vmap
    def _vmap_rule(axis_size, in_batched, x):
        del axis_size, in_batched  # the op works on any leading dims
        return batched(x), True

    return batched


def _shaped(key, shape, exponent: float, name: str):
    """Gaussian white noise whose power spectrum is shaped by 1/f**exponent, unit RMS per clip."""
    shape = _shape(shape)
    if shape[-1] < 2:
        raise ValueError(f"{name} noise needs at least 2 samples along the last axis, got shape {shape}")
    return _shaper(float(exponent))(jax.random.normal(key, shape, jnp.float32))


def pink(key, shape: Sequence[int] | int):
    """Pink noise (power ~ 1/f), zero mean, unit RMS per clip along the last axis."""
    return _shaped(key, shape, 1.0, "pink")


def brown(key, shape: Sequence[int] | int):
    """Brown (red) noise (power ~ 1/f^2), zero mean, unit RMS per clip along the last axis."""
    return _shaped(key, shape, 2.0, "brown")


def unit_rms(y):
    """``y`` scaled to exactly unit RMS over all its samples (a silent input stays ~0)."""
    return y * jax.lax.rsqrt(jnp.mean(y * y) + 1e-20)


def filtered_gaussian(gain_F, key, length: int):
    """One clip [length] of white Gaussian noise filtered by the real spectral gain ``gain_F``
    (``length // 2 + 1`` rfft bins), at unit RMS; differentiable in ``gain_F``."""
    spec = jnp.fft.rfft(jax.random.normal(key, (length,), jnp.float32)) * gain_F
    return unit_rms(jnp.fft.irfft(spec, n=length)).astype(jnp.float32)
