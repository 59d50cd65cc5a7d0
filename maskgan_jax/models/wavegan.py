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

Beyond the reference, two options let the critic see diversity across clips (both off by
default, and then the critic is the reference's): PacGAN packing (Lin et al. 2018), where
``pack`` consecutive clips enter the critic together as channels and get one score, and
ProGAN's minibatch standard deviation (Karras et al. 2018), one extra feature channel before
the output layer holding the across-group spread of the last convolution's features. A
critic that judges clips one at a time cannot reject a generator that ignores its latent:
one fixed realisation of white noise is a perfectly typical white clip.
"""
from __future__ import annotations

from typing import Any, Callable

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


def minibatch_stddev(x_BxLxC: jax.Array, group: int) -> jax.Array:
    """Appends ProGAN's minibatch-stddev channel: the mean over features of the std across each group.

    Groups are strided (members i, i + B/g, ...), as in ProGAN; ``group`` must divide the batch.
    """
    b, length, c = x_BxLxC.shape
    g = min(group, b)
    if b % g:
        raise ValueError(f"minibatch stddev: group {g} does not divide the critic batch {b}")
    y = x_BxLxC.reshape(g, b // g, length, c)
    std = jnp.sqrt(jnp.var(y, axis=0) + 1e-8)  # [B/g, L, C]
    s = jnp.tile(jnp.mean(std, axis=(1, 2)), g)  # [B], member i of group i % (B/g)
    return jnp.concatenate([x_BxLxC, jnp.broadcast_to(s[:, None, None], (b, length, 1))], axis=-1)


def minibatch_correlation(x_BxT: jax.Array, group: int) -> jax.Array:
    """Per input [B]: the RMS Pearson correlation between the different clips of its group.

    Groups are strided as in `minibatch_stddev`. Independent white clips of T samples give
    ~1/sqrt(T); one waveform played with any gain or sign gives 1.
    """
    b, t = x_BxT.shape
    g = min(group, b)
    if b % g:
        raise ValueError(f"minibatch correlation: group {g} does not divide the critic batch {b}")
    if g < 2:  # a lone clip has no pair
        return jnp.zeros((b,), x_BxT.dtype)
    y = x_BxT.reshape(g, b // g, t)
    y = y - jnp.mean(y, axis=-1, keepdims=True)
    y = y * jax.lax.rsqrt(jnp.sum(jnp.square(y), axis=-1, keepdims=True) + 1e-12)
    c = jnp.einsum("imt,jmt->mij", y, y)  # [B/g, g, g]
    off = 1.0 - jnp.eye(g, dtype=c.dtype)
    rho = jnp.sqrt(jnp.sum(jnp.square(c) * off, axis=(1, 2)) / (g * (g - 1)) + 1e-12)
    return jnp.tile(rho, g)


def log_spectrum_stats(x_BxT: jax.Array, frame: int) -> jax.Array:
    """Per clip [B, 2 * (frame // 2 + 1)]: mean and std over Hann-windowed frames of the log power spectrum."""
    b, t = x_BxT.shape
    n = t // frame
    win = 0.5 - 0.5 * jnp.cos(2 * jnp.pi * jnp.arange(frame) / frame)
    frames = x_BxT[:, :n * frame].reshape(b, n, frame) * win
    # Floor 30 dB below the power per bin of white noise at RMS 1: bounded gradients for near-silent bins.
    p = jnp.log(jnp.square(jnp.abs(jnp.fft.rfft(frames, axis=-1))) / (0.375 * frame) + 1e-3)
    return jnp.concatenate([jnp.mean(p, axis=1), jnp.std(p, axis=1)], axis=-1)


def amplitude_cdf(x_BxT: jax.Array, points: int, span: float = 3.0, width: float = 0.1) -> jax.Array:
    """Per clip [B, points]: a smooth empirical CDF of the sample values at ``points`` levels in [-span, span]."""
    levels = jnp.linspace(-span, span, points)
    return jnp.mean(jax.nn.sigmoid((levels[None, None, :] - x_BxT[..., None]) / width), axis=1)


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
    """WaveGAN generator: latent [B, 100] -> waveform [B, slice_len] in [-1, 1].

    ``antisymmetric`` outputs (g(z) - g(-z)) / 2 of the reference network g: an odd function
    of the (symmetric) latent, so the mean clip over latents is exactly zero. The reference
    network's ReLUs give every clip a large shared component, the same waveform whatever
    z; a per-clip critic cannot see it, and it is what the collapsed MaskGAN played.
    """
    dim: int = 64
    slice_len: int = 32768
    latent_dim: int = LATENT_DIM
    kernel_init: Callable = nn.initializers.glorot_uniform()
    antisymmetric: bool = False
    dtype: Any = jnp.float32    # compute dtype; parameters are float32 and so is the waveform out

    @nn.compact
    def __call__(self, z_BxZ: jax.Array) -> jax.Array:
        b = z_BxZ.shape[0]
        if self.antisymmetric:
            z_BxZ = jnp.concatenate([z_BxZ, -z_BxZ])  # one pass of the network for both signs
        table = generator_layers(self.dim, self.slice_len)
        mul = 16 if self.slice_len == 16384 else 32
        x = nn.Dense(16 * mul * self.dim, kernel_init=self.kernel_init, dtype=self.dtype, name="dense")(z_BxZ)
        x = nn.relu(x.reshape(z_BxZ.shape[0], 16, mul * self.dim))
        for i, (cout, stride) in enumerate(table):
            x = layers.ConvTranspose1D(cout, KERNEL, stride, kernel_init=self.kernel_init, block=_block(x.shape[-1]),
                                       dtype=self.dtype, name=f"upconv_{i}")(x)
            x = nn.relu(x) if i < len(table) - 1 else jnp.tanh(x)
        x = x.astype(jnp.float32)
        if self.antisymmetric:
            return 0.5 * (x[:b, :, 0] - x[b:, :, 0])
        return x[..., 0]


class Critic(nn.Module):
    """WaveGAN critic: waveform [B, slice_len] -> score [B // pack] (a WGAN critic: no sigmoid).

    ``pack`` > 1 scores each run of ``pack`` consecutive clips jointly (PacGAN);
    ``mbstd_group`` > 0 adds the minibatch-stddev channel over groups of that many inputs;
    ``corr_group`` > 0 adds a channel holding the log of `minibatch_correlation` over groups
    of that many clips (averaged over a packed input's clips); ``spectral_frame`` > 0 adds a second
    head, a small MLP on `log_spectrum_stats` of each clip (frames of that many samples),
    whose score is added to the convolutional critic's (a fixed spectral front end, as in
    multi-resolution STFT discriminators, gives the generator a gradient for every band);
    ``amplitude_points`` > 0 adds `amplitude_cdf` at that many levels to that head's input (or
    makes the head with it alone); ``spectral_level`` is the RMS of real clips, which that
    head's input is divided by.
    """
    dim: int = 64
    slice_len: int = 32768
    phase_shuffle_rad: int = PHASE_SHUFFLE_RAD
    kernel_init: Callable = nn.initializers.glorot_uniform()
    pack: int = 1
    mbstd_group: int = 0
    corr_group: int = 0
    spectral_frame: int = 0
    amplitude_points: int = 0
    spectral_level: float = 0.1
    # Compute dtype of the convolutions and dense layers (parameters float32). The diversity and
    # spectral features are computed in float32 from the float32 input; the score is float32.
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x_BxT: jax.Array, shuffle_key: jax.Array | None = None) -> jax.Array:
        """Scores a batch; ``shuffle_key`` None turns phase shuffle off (evaluation)."""
        if x_BxT.ndim != 2 or x_BxT.shape[1] != self.slice_len:
            raise ValueError(f"Critic expects [batch, {self.slice_len}] audio, got {x_BxT.shape}")
        if x_BxT.shape[0] % self.pack:
            raise ValueError(f"Critic with pack={self.pack} needs a batch that it divides, got {x_BxT.shape[0]}")
        # Packed clips become channels: [B / pack, T, pack].
        x = x_BxT.reshape(-1, self.pack, self.slice_len).transpose(0, 2, 1)
        if self.corr_group > 0:
            # On a log scale (independent clips ~ -5, one waveform 0): the output layer needs no
            # large weight, which Adam would take thousands of steps to grow, to act on it.
            rho = jnp.log(jnp.mean(minibatch_correlation(x_BxT, self.corr_group).reshape(-1, self.pack), axis=1)
                          + 1e-6)
        keys = jax.random.split(shuffle_key, 4) if shuffle_key is not None else None
        for i, (cout, stride) in enumerate(critic_layers(self.dim, self.slice_len)):
            x = layers.ConvStrided1D(cout, KERNEL, stride, kernel_init=self.kernel_init,
                                     impl=_CRITIC_IMPL, dtype=self.dtype, name=f"conv_{i}")(x)
            x = nn.leaky_relu(x, 0.2)
            if i < 4 and keys is not None:
                x = phase_shuffle(x, keys[i], self.phase_shuffle_rad)
        if self.mbstd_group > 0:
            x = minibatch_stddev(x, self.mbstd_group)
        if self.corr_group > 0:
            x = jnp.concatenate([x, jnp.broadcast_to(rho[:, None, None].astype(x.dtype), (*x.shape[:2], 1))],
                                axis=-1)
        x = x.reshape(x.shape[0], -1)
        score = nn.Dense(1, kernel_init=self.kernel_init, dtype=self.dtype, name="logit")(x)[:, 0]
        score = score.astype(jnp.float32)
        if self.spectral_frame > 0 or self.amplitude_points > 0:
            # Scaled by the real clips' level, not each clip's own: a per-clip normalisation has
            # gradients ~1/RMS, which blew the gradient penalty up for near-silent early clips.
            unit = x_BxT / self.spectral_level
            feats = []
            if self.spectral_frame > 0:
                feats.append(log_spectrum_stats(unit, self.spectral_frame))
            if self.amplitude_points > 0:
                feats.append(amplitude_cdf(unit, self.amplitude_points))
            s = jnp.concatenate(feats, axis=-1)
            s = nn.leaky_relu(nn.Dense(16 * self.dim, kernel_init=self.kernel_init, dtype=self.dtype,
                                       name="spectral_hidden")(s), 0.2)
            s = nn.Dense(1, kernel_init=self.kernel_init, dtype=self.dtype, name="spectral_logit")(s)[:, 0]
            s = s.astype(jnp.float32)
            score = score + jnp.mean(s.reshape(-1, self.pack), axis=1)
        return score
