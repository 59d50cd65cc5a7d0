"""WaveGAN architecture: the reference parameter counts, shapes, fast layers vs XLA's convolutions."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from maskgan_jax.models import layers, wavegan


def _count(module, x):
    shapes = jax.eval_shape(module.init, jax.random.key(0), x)
    return sum(int(np.prod(s.shape)) for s in jax.tree_util.tree_leaves(shapes))


@pytest.mark.parametrize("slice_len,g_params,d_params", [(32768, 73_149_953, 69_875_201),
                                                         (16384, 19_065_345, 17_427_969)])
def test_reference_parameter_counts(slice_len, g_params, d_params):
    # The counts of the reference WaveGAN (Donahue et al.) at d=64: any other number means a layer differs.
    z = jax.ShapeDtypeStruct((1, 100), jnp.float32)
    x = jax.ShapeDtypeStruct((1, slice_len), jnp.float32)
    assert _count(wavegan.Generator(64, slice_len), z) == g_params
    assert _count(wavegan.Critic(64, slice_len), x) == d_params


@pytest.mark.parametrize("slice_len", [16384, 32768, 65536])
def test_output_shapes(slice_len):
    g, c = wavegan.Generator(64, slice_len), wavegan.Critic(64, slice_len)
    z = jax.ShapeDtypeStruct((3, 100), jnp.float32)
    gp = jax.eval_shape(g.init, jax.random.key(0), z)
    out = jax.eval_shape(g.apply, gp, z)
    assert out.shape == (3, slice_len) and out.dtype == jnp.float32
    x = jax.ShapeDtypeStruct((3, slice_len), jnp.float32)
    cp = jax.eval_shape(c.init, jax.random.key(0), x)
    assert jax.eval_shape(c.apply, cp, x, jax.random.key(1)).shape == (3,)


def test_small_generator_runs_in_range():
    g = wavegan.Generator(2, 16384)
    z = wavegan.sample_latent(jax.random.key(0), 2)
    assert float(z.min()) >= -1.0 and float(z.max()) <= 1.0 and z.shape == (2, 100)
    p = jax.jit(g.init)(jax.random.key(1), z)
    y = jax.jit(g.apply)(p, z)
    assert y.shape == (2, 16384) and bool(jnp.all(jnp.abs(y) <= 1.0)) and float(jnp.std(y)) > 0


@pytest.mark.parametrize("stride,length,cin,cout", [(4, 16, 8, 5), (2, 33, 3, 4), (4, 7, 2, 1), (2, 16, 16, 1)])
@pytest.mark.parametrize("impl", ["conv", "matmul"])
def test_polyphase_transpose_equals_lax_conv_transpose(stride, length, cin, cout, impl):
    rng = np.random.default_rng(stride * 100 + length)
    x = jnp.asarray(rng.standard_normal((2, length, cin)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((25, cin, cout)), jnp.float32)
    got = layers.conv_transpose_1d(x, w, stride, precision="highest", impl=impl)
    want = layers.reference_conv_transpose_1d(x, w, stride)
    assert got.shape == (2, stride * length, cout)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-5)


@pytest.mark.parametrize("stride,length,cin,cout", [(4, 64, 3, 5), (2, 32, 3, 4), (4, 30, 2, 1), (4, 256, 1, 3)])
@pytest.mark.parametrize("impl", ["conv", "matmul"])
def test_space_to_depth_conv_equals_lax_conv(stride, length, cin, cout, impl):
    rng = np.random.default_rng(stride * 10 + length)
    x = jnp.asarray(rng.standard_normal((2, length, cin)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((25, cin, cout)), jnp.float32)
    got = layers.conv_strided_1d(x, w, stride, precision="highest", impl=impl)
    want = layers.reference_conv_strided_1d(x, w, stride)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-5)


def test_fast_critic_gradients_equal_xla_convolutions():
    # The gradient penalty differentiates the critic twice: the matmul form must agree there too.
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((2, 64, 3)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((25, 3, 4)), jnp.float32)

    def penalty(conv):
        def f(w):
            g = jax.grad(lambda x: jnp.sum(jnp.tanh(conv(x, w))))(x)
            return jnp.sum(g ** 2)
        return jax.grad(f)(w)

    fast = penalty(lambda x, w: layers.conv_strided_1d(x, w, 4, precision="highest", impl="matmul"))
    ref = penalty(lambda x, w: layers.reference_conv_strided_1d(x, w, 4))
    # float32 sums of ~400-sized terms: tolerance relative to the largest entry (exact in float64).
    np.testing.assert_allclose(fast, ref, rtol=0, atol=1e-5 * float(jnp.abs(ref).max()))


def _phase_shuffle_reference(x, phase):
    # The reference algorithm (WaveGAN's apply_phaseshuffle) in numpy: pad one side, crop.
    pad_l, pad_r = max(phase, 0), max(-phase, 0)
    padded = np.pad(x, ((0, 0), (pad_l, pad_r), (0, 0)), mode="reflect")
    return padded[:, pad_r:pad_r + x.shape[1]]


def test_phase_shuffle_matches_reference_and_is_one_shift_per_batch():
    x = np.arange(2 * 10 * 3, dtype=np.float32).reshape(2, 10, 3)
    seen = set()
    for i in range(40):
        key = jax.random.key(i)
        phase = int(jax.random.randint(key, (), -2, 3))
        seen.add(phase)
        np.testing.assert_array_equal(np.asarray(wavegan.phase_shuffle(jnp.asarray(x), key, 2)),
                                      _phase_shuffle_reference(x, phase))
    assert seen == {-2, -1, 0, 1, 2}


def test_glorot_uniform_kernels_and_zero_biases():
    g = wavegan.Generator(4, 16384)
    p = jax.jit(g.init)(jax.random.key(0), jnp.zeros((1, 100)))["params"]
    w = np.asarray(p["upconv_1"]["kernel"])  # [25, 32, 16]
    limit = np.sqrt(6.0 / (25 * 32 + 25 * 16))
    assert np.abs(w).max() <= limit and np.abs(w).max() > 0.95 * limit
    np.testing.assert_allclose(w.var(), limit ** 2 / 3, rtol=0.1)
    assert not np.any(np.asarray(p["upconv_1"]["bias"]))


def test_flops_count_matches_layer_table():
    f = wavegan.flops_per_clip(64, 32768)
    # Every upsampling layer costs 2*16*25*(32d)*(16d) MACs*2 except the tiny stride-2 output layer.
    per = 2 * 16 * 25 * 2048 * 1024
    assert f["generator"] == 2 * 100 * 32768 + 5 * per + 2 * 16384 * 64 * 1 * 25
    with pytest.raises(ValueError, match="slice_len=1000"):
        wavegan.generator_layers(64, 1000)
