"""Critic options that make diversity visible: PacGAN packing and the minibatch-stddev feature."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs.maskgan import get_config
from maskgan_jax import gan
from maskgan_jax.models import wavegan


def _count(module, x):
    shapes = jax.eval_shape(module.init, jax.random.key(0), x)
    return sum(int(np.prod(s.shape)) for s in jax.tree_util.tree_leaves(shapes))


def test_parameter_counts_grow_only_by_the_new_inputs():
    # The reference critic at d=64 has 69,875,201 parameters (tests/test_wavegan.py). Packing 2 clips
    # adds one input channel to the first kernel (25 x 64); the stddev channel adds one input per
    # position of the last feature map (32768 / 4^5 / 2 = 16 positions) to the output layer.
    x = jax.ShapeDtypeStruct((4, 32768), jnp.float32)
    assert _count(wavegan.Critic(64, 32768), x) == 69_875_201
    assert _count(wavegan.Critic(64, 32768, pack=2), x) == 69_875_201 + 25 * 64
    assert _count(wavegan.Critic(64, 32768, mbstd_group=2), x) == 69_875_201 + 16


def test_minibatch_stddev_is_progans_formula():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 5, 3)).astype(np.float32)
    got = np.asarray(wavegan.minibatch_stddev(jnp.asarray(x), 3))
    assert got.shape == (6, 5, 4)
    np.testing.assert_array_equal(got[..., :3], x)
    # ProGAN: groups of 3 strided members (i, i + 2, i + 4); population std over the group,
    # averaged over positions and channels, one value per group, given to each member.
    for i in range(6):
        members = x[[i % 2, i % 2 + 2, i % 2 + 4]].astype(np.float64)
        want = np.mean(np.sqrt(members.var(axis=0) + 1e-8))
        np.testing.assert_allclose(got[i, :, 3], want, rtol=1e-5)
    # A batch of one repeated input has (almost) no spread.
    rep = np.asarray(wavegan.minibatch_stddev(jnp.asarray(np.repeat(x[:1], 4, 0)), 4))
    assert np.all(rep[..., 3] < 1e-3)
    with pytest.raises(ValueError, match="group 4"):
        wavegan.minibatch_stddev(jnp.asarray(x), 4)


def test_packed_critic_pairs_consecutive_clips_as_channels():
    packed, single = wavegan.Critic(2, 16384, pack=2), wavegan.Critic(2, 16384)
    x = 0.1 * jax.random.normal(jax.random.key(1), (4, 16384))
    pp = packed.init(jax.random.key(2), x)["params"]
    assert pp["conv_0"]["kernel"].shape == (25, 2, 2)
    # With the second channel's kernel zeroed, a packed score is the unpacked critic's score of
    # the first clip of each pair (clips 0 and 2), with the first channel's kernel.
    sp = jax.tree_util.tree_map(lambda a: a, pp)
    k = pp["conv_0"]["kernel"]
    sp["conv_0"] = dict(pp["conv_0"], kernel=k[:, :1])
    zeroed = dict(pp, conv_0=dict(pp["conv_0"], kernel=k.at[:, 1].set(0.0)))
    got = packed.apply({"params": zeroed}, x)
    want = single.apply({"params": sp}, x[::2])
    assert got.shape == (2,)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="pack=2"):
        packed.apply({"params": pp}, x[:3])


def test_packed_gradient_penalty_is_one_norm_per_packed_input():
    cfg = get_config("tiny", dim=2, batch_size=4, pack=2)
    _, c = gan.models(cfg)
    cp = jax.jit(c.init)(jax.random.key(1), jnp.zeros((2, 16384)))["params"]
    real = 0.1 * jax.random.normal(jax.random.key(2), (4, 16384))
    fake = 0.1 * jax.random.normal(jax.random.key(3), (4, 16384))
    key = jax.random.key(4)

    @jax.jit
    def both(cp):
        _, parts = gan.critic_loss(cfg, cp, c, real, fake, key)
        # From the definition: one alpha per pair, the norm of the gradient of that pair's score
        # with respect to both of its clips.
        _, _, k_a, k_i = jax.random.split(key, 4)
        alpha = jnp.repeat(jax.random.uniform(k_a, (2, 1)), 2, axis=0)
        x_hat = real + alpha * (fake - real)
        norms = jnp.stack([jnp.linalg.norm(jax.grad(lambda x: c.apply({"params": cp}, x, k_i)[i])(x_hat)[2 * i:2 * i + 2])
                           for i in range(2)])
        return parts["gp"], jnp.mean((norms - 1) ** 2)

    got, want = map(float, both(cp))
    assert got == pytest.approx(want, rel=1e-4)


def test_config_checks_and_defaults():
    cfg = get_config("cpu")
    assert (cfg.pack, cfg.mbstd_group) == (1, 0)  # the reference critic unless asked
    with pytest.raises(ValueError, match="pack"):
        get_config("tiny", batch_size=4, pack=3)
    with pytest.raises(ValueError, match="mbstd_group"):
        get_config("tiny", batch_size=4, pack=2, mbstd_group=4)
    ok = get_config("tiny", batch_size=8, pack=2, mbstd_group=4)
    assert gan.GanConfig.from_json(ok.to_json()) == ok
    # Older runs' config.json files (without the new fields) still load, with the defaults.
    old = {k: v for k, v in cfg.to_json().items() if k not in ("pack", "mbstd_group", "quality_clips")}
    assert gan.GanConfig.from_json(old) == dataclasses.replace(cfg)


def test_antisymmetric_generator_is_the_odd_part_of_the_reference():
    ref, odd = wavegan.Generator(2, 16384), wavegan.Generator(2, 16384, antisymmetric=True)
    z = wavegan.sample_latent(jax.random.key(0), 3)
    params = jax.jit(ref.init)(jax.random.key(1), z)
    # The same parameters (and counts): only the output differs.
    assert jax.tree_util.tree_structure(params) == jax.tree_util.tree_structure(jax.eval_shape(odd.init,
                                                                                               jax.random.key(1), z))
    y = np.asarray(jax.jit(odd.apply)(params, z), np.float64)
    g_pos = np.asarray(jax.jit(ref.apply)(params, z), np.float64)
    g_neg = np.asarray(jax.jit(ref.apply)(params, -z), np.float64)
    np.testing.assert_allclose(y, 0.5 * (g_pos - g_neg), atol=1e-6)
    np.testing.assert_allclose(np.asarray(jax.jit(odd.apply)(params, -z)), -y, atol=1e-6)
    # The reference network's clips share most of their waveform; the odd part's mean over z is 0.
    assert np.abs(y.mean(axis=0)).mean() < np.abs(g_pos.mean(axis=0)).mean()


def test_minibatch_correlation_is_the_rms_of_numpys_pairwise_correlations():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 500))
    x[3] = -2.0 * x[1] + 0.1 * rng.standard_normal(500)  # group {1, 3, 5}: one pair nearly opposite
    got = np.asarray(wavegan.minibatch_correlation(jnp.asarray(x, jnp.float32), 3))
    for i in range(6):
        members = [i % 2, i % 2 + 2, i % 2 + 4]
        c = np.corrcoef(x[members])
        want = np.sqrt(np.mean(c[~np.eye(3, dtype=bool)] ** 2))
        assert got[i] == pytest.approx(want, rel=1e-4), i
    assert got[1] > 0.5 > 0.1 > got[0]
    x32 = jax.ShapeDtypeStruct((4, 32768), jnp.float32)
    assert _count(wavegan.Critic(64, 32768, corr_group=4), x32) == 69_875_201 + 16


def test_log_spectrum_stats_match_scipys_spectrogram():
    from scipy import signal
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 4096))
    got = np.asarray(wavegan.log_spectrum_stats(jnp.asarray(x, jnp.float32), 256))
    # Non-overlapping periodic-Hann frames, two-sided density (fs = 1) so no bin is doubled.
    _, _, s = signal.spectrogram(x, fs=1.0, window="hann", nperseg=256, noverlap=0, detrend=False,
                                 return_onesided=False, scaling="density", mode="psd")
    logp = np.log(s[:, :129, :] + 1e-3)  # [clips, bins, frames]
    want = np.concatenate([logp.mean(axis=2), logp.std(axis=2)], axis=1)
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-4)
    # A spectral head: two dense layers on the 2 x 129 statistics.
    x32 = jax.ShapeDtypeStruct((4, 32768), jnp.float32)
    assert _count(wavegan.Critic(64, 32768, spectral_frame=256), x32) == 69_875_201 + (258 * 1024 + 1024) + (1024 + 1)


def test_amplitude_cdf_approaches_the_empirical_cdf():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 20000))
    got = np.asarray(wavegan.amplitude_cdf(jnp.asarray(x, jnp.float32), 7, width=1e-3))
    levels = np.linspace(-3, 3, 7)
    want = np.mean(x[..., None] <= levels, axis=1)
    np.testing.assert_allclose(got, want, atol=2e-3)
    # The smooth CDF of a Gaussian at width w is the CDF of N(0, 1 + (w * pi / sqrt 3)^2) (logistic kernel ~ normal).
    smooth = np.asarray(wavegan.amplitude_cdf(jnp.asarray(x, jnp.float32), 7, width=0.1)).mean(axis=0)
    from scipy import stats
    np.testing.assert_allclose(smooth, stats.norm.cdf(levels / np.sqrt(1 + (0.1 * np.pi / np.sqrt(3)) ** 2)), atol=0.01)
    x32 = jax.ShapeDtypeStruct((4, 32768), jnp.float32)
    assert _count(wavegan.Critic(64, 32768, amplitude_points=13), x32) == 69_875_201 + (13 * 1024 + 1024) + (1024 + 1)
