"""The adversary that knows the masker: search the generator's latent, subtract what it explains.

By Kerckhoffs's principle the attacker may hold the noise generator ``g`` (its weights). A
masked recording is ``mix = s + a * g(z*)``: speech plus one generated clip, scaled by the
mixing convention of `levels.mix_at_snr_jax` so that it sits ``snr_db`` below the speech.
For each recording the attacker searches the latent for the generated noise that best
explains it, subtracts it and hands the rest (the residual) to its classifier.

Objective and gain. For a latent z the residual energy with the least-squares gain is
``min_a ||m - a g(z)||^2 = ||m||^2 (1 - cos^2(m, g(z)))``, so the search maximises the
squared cosine between the recording and the generated noise; it is scale-free (the
learning rate does not depend on the level) and its gradient never vanishes for a bad
start the way a clamped gain's would. The known level (gain ``"level"``) fixes |a| instead,
and the residual energy is then ``||m||^2 - 2 sqrt(E) ||m|| |cos| + E`` for the noise energy
E, which is also decreasing in |cos|: the best latent is the same under either gain, only
the amount subtracted differs. The default gain is the least-squares one (closed form per
slice, signed): it minimises the stated objective exactly, it never adds energy (the
residual is never louder than the recording, so a poor fit, as on white noise, subtracts
little rather than a wrong clip at full level), it needs neither the speech level nor an
assumption that speech and noise are uncorrelated, and the sign admits a recording chain
that inverts polarity. ``"level"`` uses what the attacker knows: with speech and noise
uncorrelated, ``||m||^2 = ||s||^2 (1 + r)``, r = 10^(-snr/10), so the noise energy is
``E = ||m||^2 r / (1 + r)`` and one gain per clip (signed per slice) gives the fitted noise
that energy.

Slices. A generator whose slices are shorter than the recording makes clips of
``ceil(T / slice_len)`` independent slices, each with its own latent (the last one cut to
length). Each slice is fitted on its own segment with its own least-squares gain: the true
model has one gain per clip, so this adds ``n - 1`` degrees of freedom to ``n (Z + 1)``,
and in exchange the slices are separate problems whose best start is chosen per slice.

Search. Adam on z from ``starts`` uniform starts per slice, a cosine-decayed learning rate
over a fixed number of steps (one compiled program), and after each step z is projected
back onto [-1, 1]^Z (clipping; a tanh reparametrisation would slow the many coordinates of a
uniform latent that lie near +-1 to a crawl). All recordings, slices and starts go through
the generator as one batch; Adam is element-wise, so one optimiser over the stacked latents
is the same as one per start. The start with the smallest final objective wins per slice.

Cost: every step runs the generator forward and backward on B x N x starts clips, so the
search costs about 3 x steps x starts generator passes per slice; the residual of a recording
depends only on it and its key, so an attack can compute it once per recording and keep it
rather than search again in every epoch.

The procedure does not care where the noise came from: applied to white-masked audio it is
the control, and what it removes there is what a Z-dimensional family explains of any
signal (for a linear generator exactly the projection onto a Z-dimensional subspace, about
Z/T of the energy).
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from maskgan_jax.models import wavegan

GAINS = ("lstsq", "level")
# Energies below this are treated as silence (matches levels.POWER_FLOOR's role).
_EPS = 1e-20

GeneratorFn = Callable[[Any, jax.Array], jax.Array]


@dataclasses.dataclass(frozen=True)
class InvertConfig:
    """Latent-search settings (static under jit)."""
    starts: int = 4                  # random starts per slice
    steps: int = 200                 # Adam steps (fixed: one compiled program)
    learning_rate: float = 0.05      # peak Adam step on z in [-1, 1]
    final_lr_fraction: float = 0.05  # cosine decay to this fraction of the peak
    gain: str = "lstsq"              # lstsq (per-slice least squares) | level (the known SNR)
    seed: int = 0                    # the starts' seed when the caller gives no keys

    def validate(self) -> "InvertConfig":
        """Raises ValueError naming the bad field."""
        if self.starts < 1 or self.steps < 0:
            raise ValueError(f"invert starts ({self.starts}) must be >= 1 and steps ({self.steps}) >= 0")
        if not self.learning_rate > 0 or not 0.0 <= self.final_lr_fraction <= 1.0:
            raise ValueError(f"invert learning_rate ({self.learning_rate}) must be > 0 and "
                             f"final_lr_fraction ({self.final_lr_fraction}) in [0, 1]")
        if self.gain not in GAINS:
            raise ValueError(f"invert gain must be one of {GAINS}, got {self.gain!r}")
        return self


class Inversion(NamedTuple):
    """What the search returns, per recording (B) and slice (N)."""
    residual_BxT: jax.Array    # mix - noise: the attacker's input
    noise_BxT: jax.Array       # the fitted noise, gain applied
    removed_db_B: jax.Array    # 10 log10(||mix||^2 / ||residual||^2)
    z_BxNxZ: jax.Array         # the best latent per slice
    gain_BxN: jax.Array        # the gain applied to each slice
    fit_BxN: jax.Array         # cos^2(segment, generated slice): the share of the segment it explains


def _as_keys(keys, batch: int, seed: int) -> jax.Array:
    """Per-example typed keys [B] from None (the seed), one key, or a batch of keys (typed or raw)."""
    if keys is None:
        keys = jax.random.key(seed)
    keys = jnp.asarray(keys) if not isinstance(keys, jax.Array) else keys
    if not jax.dtypes.issubdtype(keys.dtype, jax.dtypes.prng_key):
        keys = jax.random.wrap_key_data(keys)
    if keys.ndim == 0:
        # One key: example i gets fold_in(key, i), so its starts do not depend on the batch size.
        return jax.vmap(lambda i: jax.random.fold_in(keys, i))(jnp.arange(batch))
    if keys.shape != (batch,):
        raise ValueError(f"invert needs one key or {batch} per-example keys, got key shape {keys.shape}")
    return keys


def _check_mix(mix_BxT) -> jax.Array:
    m = jnp.asarray(mix_BxT)
    if m.ndim != 2 or m.shape[1] == 0:
        raise ValueError(f"invert expects recordings [batch, T] with T > 0, got shape {m.shape}")
    if not jnp.issubdtype(m.dtype, jnp.floating):
        raise ValueError(f"invert expects float audio, got dtype {m.dtype}")
    return m.astype(jnp.float32)


def slice_len_of(generator_fn: GeneratorFn, params, latent_dim: int) -> int:
    """The generator's output length for one latent (abstract evaluation, no FLOPs)."""
    out = jax.eval_shape(generator_fn, params, jax.ShapeDtypeStruct((1, latent_dim), jnp.float32))
    if len(out.shape) != 2 or out.shape[0] != 1:
        raise ValueError(f"the generator must map z [B, {latent_dim}] to noise [B, L], got shape {out.shape}")
    return int(out.shape[1])


def _level_energy(mix_BxT: jax.Array, snr_db) -> jax.Array:
    """The noise energy per clip implied by the known SNR, speech and noise uncorrelated."""
    r = 10.0 ** (-jnp.asarray(snr_db, jnp.float32) / 10.0)
    r = jnp.broadcast_to(r, mix_BxT.shape[:1])
    return jnp.sum(jnp.square(mix_BxT), axis=-1) * r / (1.0 + r)


def _search(generator_fn: GeneratorFn, params, mix_BxT, keys_B, snr_db, *, config: InvertConfig,
            latent_dim: int) -> Inversion:
    cfg = config
    batch, length = mix_BxT.shape
    slice_len = slice_len_of(generator_fn, params, latent_dim)
    n = -(-length // slice_len)
    seg_BxNxL = jnp.pad(mix_BxT, ((0, 0), (0, n * slice_len - length))).reshape(batch, n, slice_len)
    mask_NxL = jnp.asarray((np.arange(n * slice_len) < length).reshape(n, slice_len), jnp.float32)
    seg_energy_BxN = jnp.sum(jnp.square(seg_BxNxL), axis=-1)

    def generate(z_BxNxSxZ):
        flat = z_BxNxSxZ.reshape(-1, latent_dim)
        out = generator_fn(params, flat).astype(jnp.float32)
        # Samples past the recording's end are not heard: they take no part in the fit.
        return out.reshape(*z_BxNxSxZ.shape[:-1], slice_len) * mask_NxL[None, :, None, :]

    def correlations(z_BxNxSxZ):
        g = generate(z_BxNxSxZ)
        gm = jnp.einsum("bnsl,bnl->bns", g, seg_BxNxL, precision=jax.lax.Precision.HIGHEST)
        gg = jnp.sum(jnp.square(g), axis=-1)
        return g, gm, gg

    def misfit(gm, gg):
        # 1 - cos^2: the share of each segment's energy the least-squares fit leaves.
        den = jnp.maximum(gg, _EPS) * jnp.maximum(seg_energy_BxN, _EPS)[..., None]
        return 1.0 - jnp.square(gm) / den

    z0 = jax.vmap(lambda k: jax.random.uniform(k, (n, cfg.starts, latent_dim), jnp.float32, -1.0, 1.0))(keys_B)
    schedule = optax.cosine_decay_schedule(cfg.learning_rate, max(cfg.steps, 1), alpha=cfg.final_lr_fraction)
    opt = optax.adam(schedule)

    def step(_, carry):
        z, state = carry
        # The problems are independent and Adam is element-wise: one sum, one optimiser.
        grad = jax.grad(lambda v: jnp.sum(misfit(*correlations(v)[1:])))(z)
        updates, state = opt.update(grad, state, z)
        return jnp.clip(optax.apply_updates(z, updates), -1.0, 1.0), state

    z, _ = jax.lax.fori_loop(0, cfg.steps, step, (z0, opt.init(z0)))

    g, gm, gg = correlations(z)
    best_BxN = jnp.argmin(misfit(gm, gg), axis=-1)

    def pick(x):
        idx = best_BxN.reshape(best_BxN.shape + (1,) * (x.ndim - 2))
        return jnp.take_along_axis(x, idx, axis=2)[:, :, 0]

    z_best, g, gm, gg = pick(z), pick(g), pick(gm), pick(gg)                          # [B, N, (Z|L)]
    fit = jnp.square(gm) / (jnp.maximum(gg, _EPS) * jnp.maximum(seg_energy_BxN, _EPS))
    if cfg.gain == "lstsq":
        gain = gm / jnp.maximum(gg, _EPS)
    else:
        energy_B = _level_energy(mix_BxT, snr_db)
        size = jnp.sqrt(energy_B / jnp.maximum(jnp.sum(gg, axis=-1), _EPS))
        gain = jnp.where(gm < 0, -1.0, 1.0) * size[:, None]
    noise = (gain[..., None] * g).reshape(batch, n * slice_len)[:, :length]
    residual = mix_BxT - noise
    removed = 10.0 * jnp.log10(jnp.maximum(jnp.sum(jnp.square(mix_BxT), -1), _EPS)
                               / jnp.maximum(jnp.sum(jnp.square(residual), -1), _EPS))
    return Inversion(residual, noise, removed, z_best, gain, fit)


@functools.lru_cache(maxsize=None)
def _compiled(generator_fn: GeneratorFn, config: InvertConfig, latent_dim: int):
    return jax.jit(functools.partial(_search, generator_fn, config=config, latent_dim=latent_dim))


def invert(generator_fn: GeneratorFn, params, mix_BxT, config: InvertConfig = InvertConfig(), *,
           keys=None, snr_db=None, latent_dim: int = wavegan.LATENT_DIM) -> Inversion:
    """Searches g's latent for the noise in each recording and subtracts it (see the module doc).

    ``generator_fn(params, z_BxZ) -> noise [B, L]``; ``keys``: None (the config's seed, folded
    in per example), one key, or per-example keys [B]; ``snr_db`` (scalar or [B]) is needed
    only by gain "level". Jittable: call it inside a jitted function with traced arrays.
    """
    cfg = config.validate()
    mix = _check_mix(mix_BxT)
    if cfg.gain == "level" and snr_db is None:
        raise ValueError("invert gain='level' needs the known snr_db")
    keys_B = _as_keys(keys, mix.shape[0], cfg.seed)
    snr = jnp.zeros((), jnp.float32) if snr_db is None else jnp.asarray(snr_db, jnp.float32)
    # The seed only makes keys (above): programs differing in it alone are one program.
    return _compiled(generator_fn, dataclasses.replace(cfg, seed=0), int(latent_dim))(params, mix, keys_B, snr)


def make_front_end(generator_fn: GeneratorFn, params, config: InvertConfig = InvertConfig(),
                   snr_db=None, latent_dim: int = wavegan.LATENT_DIM) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """A jittable ``(wave_BxT, keys) -> residual_BxT``: the attacker's front end with the generator held.

    ``keys`` are the caller's per-example keys [B] (or one key); ``snr_db`` is the level the
    attacker knows (used by gain "level"). The parameters stay arguments of the compiled
    search, so calling it outside a jit does not bake them into the program as constants.
    """
    cfg = config.validate()
    if cfg.gain == "level" and snr_db is None:
        raise ValueError("invert gain='level' needs the known snr_db")
    slice_len_of(generator_fn, params, latent_dim)  # fail here, not inside the attack's trace

    def front_end(wave_BxT: jax.Array, keys: jax.Array) -> jax.Array:
        return invert(generator_fn, params, wave_BxT, cfg, keys=keys, snr_db=snr_db,
                      latent_dim=latent_dim).residual_BxT

    return front_end


def wavegan_generator_fn(generator: wavegan.Generator) -> GeneratorFn:
    """``(params, z) -> noise`` for a WaveGAN generator module (params = its "params" collection)."""
    return _WaveGanFn(generator)


@dataclasses.dataclass(frozen=True)
class _WaveGanFn:
    # A hashable callable (a frozen module field), so the compiled search is cached per generator.
    generator: wavegan.Generator

    def __call__(self, params, z_BxZ):
        return self.generator.apply({"params": params}, z_BxZ)


def noise_reduction_db(clean_BxT, mix_BxT, residual_BxT) -> np.ndarray:
    """Evaluation with the clean audio known: 10 log10(||mix - clean||^2 / ||residual - clean||^2) per clip.

    How much of the masking noise the subtraction took away (> 0) or how much error it
    added (< 0); the attacker cannot compute it, the study can.
    """
    c = np.asarray(clean_BxT, np.float64)
    before = np.sum(np.square(np.asarray(mix_BxT, np.float64) - c), axis=-1)
    after = np.sum(np.square(np.asarray(residual_BxT, np.float64) - c), axis=-1)
    return 10.0 * np.log10(np.maximum(before, _EPS) / np.maximum(after, _EPS))
