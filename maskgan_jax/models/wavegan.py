"""WaveGAN generator and critic (Donahue et al. 2019), the MaskGAN noise model.

Layer table of the reference implementation, channels-last (NWC):

* Generator: z ~ U[-1, 1]^100 -> dense 16 x (mul*d) -> ReLU -> transposed convolutions
  (kernel 25, stride 4, 'SAME', ReLU), halving channels, -> 1 channel, tanh.
  mul = 16 for 16384 samples (5 upsampling layers), 32 for 32768 / 65536 (6 layers, the
  last with stride 2 / 4).
* Critic: convolutions (kernel 25, stride 4, 'SAME', LeakyReLU 0.2) with channels
  d, 2d, 4d, 8d, 16d (+ 32d with stride 2 / 4 for 32768 / 65536), phase shuffle of radius
  2 after layers 0-3, flatten, linear output.

No batch norm; Glorot-uniform kernels, zero biases. The strided and transposed
convolutions are the matmul forms of `layers` (the same numbers as XLA's convolutions).
"""
from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from maskgan_jax.models import layers

SLICE_LENS = (16384, 32768, 65536)
LATENT_DIM = 100
KERNEL = 25
PHASE_SHUFFLE_RAD = 2
# The critic's convolutions as im2col matmuls: their gradients (the gradient penalty
# differentiates twice) are matmuls and pads, where XLA CPU's convolution gradients were
# up to 30x slower.
_CRITIC_IMPL = "matmul"


def _check_slice_len(slice_len: int) -> None:
    if slice_len not in SLICE_LENS:
        raise ValueError(f"slice_len={slice_len} is not a WaveGAN slice length; use one of {SLICE_LENS}")


def generator_layers(dim: int, slice_len: int) -> list[tuple[int, int]]:
    """(output channels, stride) of the generator's transposed convolutions."""
    _check_slice_len(slice_len)
    if slice_len == 16384:
        return [(8 * dim, 4), (4 * dim, 4), (2 * dim, 4), (dim, 4), (1, 4)]
    last = 2 if slice_len == 32768 else 4
    return [(16 * dim, 4), (8 * dim, 4), (4 * dim, 4), (2 * dim, 4), (dim, 4), (1, last)]


def critic_layers(dim: int, slice_len: int) -> list[tuple[int, int]]:
    """(output channels, stride) of the critic's convolutions."""
    _check_slice_len(slice_len)
    table = [(dim, 4), (2 * dim, 4), (4 * dim, 4), (8 * dim, 4), (16 * dim, 4)]
    if slice_len != 16384:
        table.append((32 * dim, 2 if slice_len == 32768 else 4))
    return table


def sample_latent(key: jax.Array, batch: int, latent_dim: int = LATENT_DIM) -> jax.Array:
    """The generator's latent: uniform in [-1, 1], [batch, latent_dim]."""
    return jax.random.uniform(key, (batch, latent_dim), jnp.float32, -1.0, 1.0)


def phase_shuffle(x_BxLxC: jax.Array, key: jax.Array, rad: int = PHASE_SHUFFLE_RAD) -> jax.Array:
    """Shifts the whole batch by one random phase in [-rad, rad], filling with reflect padding."""
    if rad == 0:
        return x_BxLxC
    length = x_BxLxC.shape[1]
    shift = jax.random.randint(key, (), -rad, rad + 1)
    # Reflect-pad by rad on both sides and take a window whose start moves with the shift:
    # a shift of +k pads k on the left (reference: pad_l = max(phase, 0)) and drops k on the right.
    padded = jnp.pad(x_BxLxC, ((0, 0), (rad, rad), (0, 0)), mode="reflect")
    return jax.lax.dynamic_slice_in_dim(padded, rad - shift, length, axis=1)


def flops_per_clip(dim: int, slice_len: int) -> dict:
    """Multiply-add FLOPs (2 per MAC) of one clip through the generator and the critic (forward)."""
    mul = 16 if slice_len == 16384 else 32
    g = 2 * LATENT_DIM * 16 * mul * dim
    length, cin = 16, mul * dim
    for cout, s in generator_layers(dim, slice_len):
        g += 2 * length * cin * cout * KERNEL
        length, cin = length * s, cout
    c = 0
    length, cin = slice_len, 1
    for cout, s in critic_layers(dim, slice_len):
        length //= s
        c += 2 * length * cin * cout * KERNEL
        cin = cout
    c += 2 * length * cin
    return {"generator": g, "critic": c}


def _block(cin: int) -> int:
    # Narrow layers fold up to 4 positions into channels (layers.conv_transpose_1d's block):
    # measured 1.5-2.5x faster on a 2-core CPU for 16-32 input channels despite the extra zeros.
    return min(4, 128 // cin) if cin < 64 else 1


class Generator(nn.Module):
    """WaveGAN generator: latent [B, 100] -> waveform [B, slice_len] in [-1, 1]."""
    dim: int = 64
    slice_len: int = 32768
    latent_dim: int = LATENT_DIM
    kernel_init: Callable = nn.initializers.glorot_uniform()

    @nn.compact
    def __call__(self, z_BxZ: jax.Array) -> jax.Array:
        table = generator_layers(self.dim, self.slice_len)
        mul = 16 if self.slice_len == 16384 else 32
        x = nn.Dense(16 * mul * self.dim, kernel_init=self.kernel_init, name="dense")(z_BxZ)
        x = nn.relu(x.reshape(z_BxZ.shape[0], 16, mul * self.dim))
        for i, (cout, stride) in enumerate(table):
            x = layers.ConvTranspose1D(cout, KERNEL, stride, kernel_init=self.kernel_init, block=_block(x.shape[-1]),
                                       name=f"upconv_{i}")(x)
            x = nn.relu(x) if i < len(table) - 1 else jnp.tanh(x)
        return x[..., 0]


class Critic(nn.Module):
    """WaveGAN critic: waveform [B, slice_len] -> score [B] (a WGAN critic: no sigmoid)."""
    dim: int = 64
    slice_len: int = 32768
    phase_shuffle_rad: int = PHASE_SHUFFLE_RAD
    kernel_init: Callable = nn.initializers.glorot_uniform()

    @nn.compact
    def __call__(self, x_BxT: jax.Array, shuffle_key: jax.Array | None = None) -> jax.Array:
        """Scores a batch; ``shuffle_key`` None turns phase shuffle off (evaluation)."""
        if x_BxT.ndim != 2 or x_BxT.shape[1] != self.slice_len:
            raise ValueError(f"Critic expects [batch, {self.slice_len}] audio, got {x_BxT.shape}")
        x = x_BxT[..., None]
        keys = jax.random.split(shuffle_key, 4) if shuffle_key is not None else None
        for i, (cout, stride) in enumerate(critic_layers(self.dim, self.slice_len)):
            x = layers.ConvStrided1D(cout, KERNEL, stride, kernel_init=self.kernel_init,
                                     impl=_CRITIC_IMPL, name=f"conv_{i}")(x)
            x = nn.leaky_relu(x, 0.2)
            if i < 4 and keys is not None:
                x = phase_shuffle(x, keys[i], self.phase_shuffle_rad)
        x = x.reshape(x.shape[0], -1)
        return nn.Dense(1, kernel_init=self.kernel_init, name="logit")(x)[:, 0]
