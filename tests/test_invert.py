"""The adversary that knows the masker: latent search on generators whose answer is known.

A linear generator g(z) = z @ W makes the least-squares search a projection onto the row
space of W, so the residual, the gain-scaled latent and the removed energy have closed
forms (numpy's solve in float64); white noise in its place is the control, whose removed
share of energy is Beta(Z/2, (T-Z)/2) distributed, mean Z/T.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from maskgan_jax import invert as inv
from maskgan_jax import levels, noise
from maskgan_jax.models import wavegan

SNR = 15.0


def linear(params, z):
    return z @ params


def squashed(params, z):
    return 0.5 * jnp.tanh(z @ params)


def _speechlike(seed: int, batch: int, length: int) -> np.ndarray:
    """Voiced syllables: harmonics of a gliding pitch under a 4 Hz envelope, plus a little breath."""
    rng = np.random.default_rng(seed)
    t = np.arange(length) / 16000.0
    out = []
    for _ in range(batch):
        f0 = rng.uniform(100, 250) * (1 + 0.1 * np.sin(2 * np.pi * rng.uniform(1, 3) * t))
        phase = 2 * np.pi * np.cumsum(f0) / 16000.0
        voiced = sum(np.sin(k * phase + rng.uniform(0, 2 * np.pi)) / k for k in range(1, 6))
        env = np.maximum(np.sin(2 * np.pi * 4.0 * t + rng.uniform(0, 2 * np.pi)), 0.0)
        out.append(0.1 * env * voiced + 0.002 * rng.standard_normal(length))
    return np.asarray(out, np.float32)


def _mix(clean, noise_):
    """levels' mix at SNR (numpy, the convention of mix_at_snr_jax), checked unclipped."""
    mix, clipped = levels.mix_at_snr(np.asarray(clean), np.asarray(noise_), SNR)
    assert np.all(clipped == 0)
    return jnp.asarray(mix)


def _row_space_projection(w_ZxT: np.ndarray, x_BxT: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(coefficients c with x ~ c @ W, projection c @ W) in float64."""
    w = np.asarray(w_ZxT, np.float64)
    x = np.asarray(x_BxT, np.float64)
    c = np.linalg.solve(w @ w.T, w @ x.T).T
    return c, c @ w


def _removed_db(mix, residual):
    m = np.asarray(mix, np.float64)
    r = np.asarray(residual, np.float64)
    return 10 * np.log10(np.sum(m ** 2, -1) / np.sum(r ** 2, -1))


def _linear_problem(z_dim=8, length=4096, batch=3, seed=0):
    rng = np.random.default_rng(seed)
    w = jnp.asarray(rng.standard_normal((z_dim, length)) / np.sqrt(z_dim), jnp.float32)
    z_true = jnp.asarray(rng.uniform(-1, 1, (batch, z_dim)), jnp.float32)
    clean = jnp.asarray(_speechlike(seed + 1, batch, length))
    noise_ = linear(w, z_true)
    mix = _mix(clean, noise_)
    gain_true = np.asarray(levels.noise_gain(clean, noise_, SNR))
    return w, z_true, clean, mix, gain_true


CFG = inv.InvertConfig(starts=2, steps=200)


def test_linear_generator_recovers_latent_speech_and_removed_energy():
    w, z_true, clean, mix, gain_true = _linear_problem()
    out = inv.invert(linear, w, mix, CFG, latent_dim=8)
    c, proj = _row_space_projection(w, mix)
    # The least-squares optimum is the projection onto W's row space (z only up to scale).
    np.testing.assert_allclose(np.asarray(out.residual_BxT), np.asarray(mix) - proj, atol=2e-5)
    np.testing.assert_allclose(np.asarray(out.gain_BxN[:, 0, None] * out.z_BxNxZ[:, 0]), c, rtol=1e-3, atol=1e-4)
    # By linearity the coefficients are the noise's (gain x z*) plus the speech's own.
    c_clean, _ = _row_space_projection(w, clean)
    np.testing.assert_allclose(c, gain_true[:, None] * np.asarray(z_true) + c_clean, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(np.asarray(out.removed_db_B), _removed_db(mix, np.asarray(mix) - proj), atol=1e-3)
    # What is left is the speech less its own share in the row space (about Z/T of it): residual - s = -P s.
    _, proj_clean = _row_space_projection(w, clean)
    np.testing.assert_allclose(np.asarray(out.residual_BxT - clean), -proj_clean, atol=2e-5)
    share = np.sum(proj_clean ** 2, -1) / np.sum(np.asarray(clean, np.float64) ** 2, -1)
    assert np.all(share < 3 * 8 / 4096), share
    # The noise sits 15 dB below the speech: removing it takes 10 log10(1 + 10^-1.5) ~ 0.135 dB off the mix.
    np.testing.assert_allclose(np.asarray(out.removed_db_B), _removed_db(mix, clean), atol=0.02)
    np.testing.assert_allclose(np.asarray(out.fit_BxN[:, 0]), 1 - 10 ** (-np.asarray(out.removed_db_B) / 10), rtol=1e-3)


def test_level_gain_subtracts_the_noise_energy_the_snr_implies():
    w, z_true, clean, mix, _ = _linear_problem(seed=3)
    out = inv.invert(linear, w, mix, inv.InvertConfig(starts=2, steps=200, gain="level"), latent_dim=8, snr_db=SNR)
    r = 10 ** (-SNR / 10)
    energy = np.sum(np.asarray(mix, np.float64) ** 2, -1) * r / (1 + r)
    np.testing.assert_allclose(np.sum(np.asarray(out.noise_BxT, np.float64) ** 2, -1), energy, rtol=1e-4)
    # Same latent direction as least squares (cos^2 is maximised either way), the level sets the size.
    _, proj = _row_space_projection(w, mix)
    cos = np.sum(np.asarray(out.noise_BxT) * proj, -1) / np.linalg.norm(np.asarray(out.noise_BxT), axis=-1) \
        / np.linalg.norm(proj, axis=-1)
    assert np.all(cos > 1 - 1e-5), cos
    assert np.all(inv.noise_reduction_db(clean, mix, out.residual_BxT) > 10.0)
    with pytest.raises(ValueError, match="snr_db"):
        inv.invert(linear, w, mix, inv.InvertConfig(gain="level"), latent_dim=8)


def test_white_noise_control_removes_only_what_a_z_dim_family_explains():
    z_dim, length, batch = 16, 2048, 16
    rng = np.random.default_rng(5)
    w = jnp.asarray(rng.standard_normal((z_dim, length)), jnp.float32)
    clean = jnp.asarray(_speechlike(6, batch, length))
    mix = _mix(clean, noise.white(jax.random.key(7), (batch, length)))
    out = inv.invert(linear, w, mix, CFG, latent_dim=z_dim)
    _, proj = _row_space_projection(w, mix)
    np.testing.assert_allclose(np.asarray(out.removed_db_B), _removed_db(mix, np.asarray(mix) - proj), atol=1e-3)
    # Share of energy removed ~ Beta(Z/2, (T-Z)/2): mean Z/T, sd ~ sqrt(2Z)/T per clip.
    share = 1 - 10 ** (-np.asarray(out.removed_db_B) / 10)
    assert abs(share.mean() - z_dim / length) < 4 * np.sqrt(2 * z_dim) / length / np.sqrt(batch), share
    assert np.all(out.removed_db_B < 0.1)
    assert np.all(inv.noise_reduction_db(clean, mix, out.residual_BxT) < 0.0)


def test_nonlinear_generator_noise_is_recovered_from_a_few_starts():
    z_dim, length, batch = 4, 8192, 4
    rng = np.random.default_rng(8)
    w = jnp.asarray(rng.standard_normal((z_dim, length)), jnp.float32)  # tanh well into saturation
    z_true = jnp.asarray(rng.uniform(-1, 1, (batch, z_dim)), jnp.float32)
    clean = jnp.asarray(_speechlike(9, batch, length))
    noise_ = squashed(w, z_true)
    mix = _mix(clean, noise_)
    out = inv.invert(squashed, w, mix, inv.InvertConfig(starts=4, steps=300), latent_dim=z_dim)
    # The optimum explains the recording at least as well as the true latent does.
    g_true = np.asarray(noise_, np.float64)
    m = np.asarray(mix, np.float64)
    fit_true = np.sum(m * g_true, -1) ** 2 / np.sum(g_true ** 2, -1) / np.sum(m ** 2, -1)
    assert np.all(np.asarray(out.fit_BxN[:, 0]) >= fit_true - 1e-6), (out.fit_BxN, fit_true)
    # g is odd, so -z* with a negative gain is the same noise: the signed gain finds either.
    # The latent's radius trades against the gain where tanh is near linear: compare directions.
    z_signed = np.asarray(out.z_BxNxZ[:, 0]) * np.sign(np.asarray(out.gain_BxN))
    zt = np.asarray(z_true)
    cos = np.sum(z_signed * zt, -1) / np.linalg.norm(z_signed, axis=-1) / np.linalg.norm(zt, axis=-1)
    assert np.all(cos > 0.95), cos
    # What it misses is the speech's share in the family's tangent space, about Z/T of the
    # speech energy; against noise 15 dB below the speech that is sqrt(Z/T / 10^-1.5) ~ 0.12 of the noise.
    scaled = np.asarray(levels.noise_gain(clean, noise_, SNR))[:, None] * np.asarray(noise_)
    rel = np.linalg.norm(np.asarray(out.noise_BxT) - scaled, axis=-1) / np.linalg.norm(scaled, axis=-1)
    assert np.all(rel < 2 * np.sqrt(z_dim / length / 10 ** (-SNR / 10))), rel
    assert np.all(inv.noise_reduction_db(clean, mix, out.residual_BxT) > 12.0)


def test_same_seed_same_numbers_and_per_example_keys():
    rng = np.random.default_rng(10)
    w = jnp.asarray(rng.standard_normal((4, 512)), jnp.float32)
    mix = jnp.asarray(rng.standard_normal((3, 512)), jnp.float32) * 0.1
    cfg = inv.InvertConfig(starts=2, steps=20, seed=11)
    a = inv.invert(squashed, w, mix, cfg, latent_dim=4)
    b = inv.invert(squashed, w, mix, cfg, latent_dim=4)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    c = inv.invert(squashed, w, mix, inv.InvertConfig(starts=2, steps=20, seed=12), latent_dim=4)
    assert not np.allclose(np.asarray(a.z_BxNxZ), np.asarray(c.z_BxNxZ))
    # No keys = the seed folded in per example; an example's result does not depend on its batch.
    keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(11), i))(jnp.arange(3))
    d = inv.invert(squashed, w, mix, cfg, keys=keys, latent_dim=4)
    np.testing.assert_array_equal(np.asarray(a.residual_BxT), np.asarray(d.residual_BxT))
    e = inv.invert(squashed, w, mix[::-1], cfg, keys=keys[::-1], latent_dim=4)
    np.testing.assert_allclose(np.asarray(e.residual_BxT[::-1]), np.asarray(a.residual_BxT), atol=1e-6)
    raw = inv.invert(squashed, w, mix, cfg, keys=jax.random.key_data(keys), latent_dim=4)
    np.testing.assert_array_equal(np.asarray(raw.residual_BxT), np.asarray(d.residual_BxT))
    with pytest.raises(ValueError, match="per-example keys"):
        inv.invert(squashed, w, mix, cfg, keys=keys[:2], latent_dim=4)


def test_shapes_batch_starts_and_slices():
    w = jnp.ones((4, 100), jnp.float32)
    mix = jnp.zeros((3, 250), jnp.float32).at[:, ::7].set(0.1)
    out = inv.invert(linear, w, mix, inv.InvertConfig(starts=5, steps=3), latent_dim=4)
    assert out.residual_BxT.shape == out.noise_BxT.shape == (3, 250)
    assert out.removed_db_B.shape == (3,)
    assert out.z_BxNxZ.shape == (3, 3, 4)
    assert out.gain_BxN.shape == out.fit_BxN.shape == (3, 3)
    assert out.residual_BxT.dtype == jnp.float32
    assert np.all(np.abs(np.asarray(out.z_BxNxZ)) <= 1.0)
    for x in out:
        assert np.all(np.isfinite(np.asarray(x)))
    with pytest.raises(ValueError, match=r"\[batch, T\]"):
        inv.invert(linear, w, mix[0], latent_dim=4)
    with pytest.raises(ValueError, match="starts"):
        inv.invert(linear, w, mix, inv.InvertConfig(starts=0), latent_dim=4)
    with pytest.raises(ValueError, match="gain"):
        inv.InvertConfig(gain="oracle").validate()


def test_multi_slice_generator_fits_each_slice_with_its_own_latent():
    z_dim, slice_len, length, batch = 4, 4096, 10000, 2   # three slices, the last cut to 1808 samples
    rng = np.random.default_rng(13)
    w = jnp.asarray(rng.standard_normal((z_dim, slice_len)), jnp.float32)
    z_true = jnp.asarray(rng.uniform(-1, 1, (batch, 3, z_dim)), jnp.float32)
    noise_ = linear(w, z_true).reshape(batch, 3 * slice_len)[:, :length]
    clean = jnp.asarray(_speechlike(14, batch, length))
    mix = _mix(clean, noise_)
    out = inv.invert(linear, w, mix, CFG, latent_dim=z_dim)
    assert out.z_BxNxZ.shape == (batch, 3, z_dim)
    # Closed form: each segment projected on W's row space (the last on W cut to its length).
    m = np.asarray(mix)
    expect = np.concatenate([m[:, i * slice_len:(i + 1) * slice_len]
                             - _row_space_projection(np.asarray(w)[:, :min(slice_len, length - i * slice_len)],
                                                     m[:, i * slice_len:(i + 1) * slice_len])[1]
                             for i in range(3)], axis=-1)
    np.testing.assert_allclose(np.asarray(out.residual_BxT), expect, atol=5e-5)
    assert np.all(inv.noise_reduction_db(clean, mix, out.residual_BxT) > 10.0)


def test_front_end_runs_inside_a_jitted_step_with_caller_keys():
    w, _, _, mix, _ = _linear_problem(length=1024, seed=15)
    cfg = inv.InvertConfig(starts=2, steps=50)
    front = inv.make_front_end(linear, w, cfg, snr_db=SNR, latent_dim=8)
    keys = jax.random.split(jax.random.key(16), mix.shape[0])

    @jax.jit
    def attack_step(wave, keys):
        return jnp.sum(jnp.square(front(wave, keys)), axis=-1)

    direct = inv.invert(linear, w, mix, cfg, keys=keys, latent_dim=8).residual_BxT
    np.testing.assert_allclose(np.asarray(attack_step(mix, keys)), np.sum(np.asarray(direct) ** 2, -1), rtol=1e-5)
    np.testing.assert_array_equal(np.asarray(front(mix, keys)), np.asarray(direct))
    with pytest.raises(ValueError, match=r"z \[B, 5\]"):
        inv.make_front_end(lambda p, z: z[None], w, cfg, latent_dim=5)


def _glorot_params(module, seed):
    """Glorot-normal kernels, zero biases, drawn by numpy from the parameter shapes (no compiled init)."""
    shapes = jax.eval_shape(module.init, jax.random.key(0), jnp.zeros((1, wavegan.LATENT_DIM)))["params"]
    rng = np.random.default_rng(seed)

    def fill(leaf):
        if len(leaf.shape) == 1:
            return jnp.zeros(leaf.shape, leaf.dtype)
        receptive = int(np.prod(leaf.shape[:-2]))
        scale = np.sqrt(2.0 / (receptive * (leaf.shape[-2] + leaf.shape[-1])))
        return jnp.asarray(scale * rng.standard_normal(leaf.shape), leaf.dtype)
    return jax.tree_util.tree_map(fill, shapes)


def test_tiny_wavegan_generator_noise_is_found_and_white_is_not():
    gen = wavegan.Generator(dim=2, slice_len=16384)
    params = _glorot_params(gen, 0)
    gfn = inv.wavegan_generator_fn(gen)
    assert inv.slice_len_of(gfn, params, wavegan.LATENT_DIM) == 16384
    clean = jnp.asarray(_speechlike(17, 1, 16384))
    gan_noise = jax.jit(gfn)(params, wavegan.sample_latent(jax.random.key(18), 1))
    white = noise.white(jax.random.key(19), (1, 16384))
    mix = jnp.concatenate([_mix(clean, gan_noise), _mix(clean, white)])
    out = inv.invert(gfn, params, mix, inv.InvertConfig(starts=2, steps=30))
    for x in out:
        assert np.all(np.isfinite(np.asarray(x)))
    removed = np.asarray(out.removed_db_B)
    nr = inv.noise_reduction_db(jnp.concatenate([clean, clean]), mix, out.residual_BxT)
    # 0.135 dB is all of the noise at 15 dB SNR; white gives up about nothing (< Z/T = 0.6 %).
    assert removed[0] > 0.05 and nr[0] > 3.0, (removed, nr)
    assert 0.0 <= removed[1] < 10 * np.log10(1 / (1 - 100 / 16384)) and nr[1] < 0.5, (removed, nr)
