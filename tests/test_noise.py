"""Reference noises: spectral slopes (fitted with scipy's Welch estimate), scale, determinism."""
import functools

import jax
import numpy as np
import pytest
import scipy.signal

from maskgan_jax import noise, parallel

KINDS = {
    "white_gaussian": (functools.partial(noise.white, kind="gaussian"), 0.0),
    "white_uniform": (functools.partial(noise.white, kind="uniform"), 0.0),
    "pink": (noise.pink, -1.0),
    "brown": (noise.brown, -2.0),
}


def _loglog_slope(x, fs=16000.0, fmin=40.0, fmax=6000.0):
    """Slope of log10 power against log10 frequency of the batch-averaged Welch spectrum.

    Bins are averaged in log-spaced bands first, so that every octave weighs the same.
    """
    freqs, psd = scipy.signal.welch(x, fs=fs, nperseg=4096, axis=-1)
    psd = psd.reshape(-1, psd.shape[-1]).mean(axis=0)
    edges = np.geomspace(fmin, fmax, 25)
    centres, powers = [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        band = (freqs >= lo) & (freqs < hi)
        if band.any():
            centres.append(np.log10(freqs[band]).mean())
            powers.append(np.log10(psd[band].mean()))
    return np.polyfit(centres, powers, 1)[0]


@pytest.mark.parametrize("name", list(KINDS))
def test_spectral_slope(name):
    fn, slope = KINDS[name]
    x = np.asarray(jax.jit(fn, static_argnums=1)(jax.random.key(3), (4, 4, 16384)))
    got = _loglog_slope(x)
    assert abs(got - slope) <= 0.1, f"{name}: log-log slope {got:.3f}, expected {slope} +- 0.1"


def test_slope_fit_tells_the_colours_apart():
    # The fit itself must separate the colours (a fit that always returned 0 would not).
    x = np.asarray(noise.brown(jax.random.key(0), (8, 16384)))
    assert _loglog_slope(x) < -1.5
    x = np.asarray(np.cumsum(noise.white(jax.random.key(0), (8, 16384)), axis=-1))
    assert _loglog_slope(x, fmin=100.0) < -1.5


@pytest.mark.parametrize("name", list(KINDS))
def test_deterministic_for_a_key(name):
    fn, _ = KINDS[name]
    a = np.asarray(fn(jax.random.key(7), (2, 1001)))
    b = np.asarray(jax.jit(fn, static_argnums=1)(jax.random.key(7), (2, 1001)))
    c = np.asarray(fn(jax.random.key(8), (2, 1001)))
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert not np.allclose(a, c)


@pytest.mark.parametrize("name", list(KINDS))
@pytest.mark.parametrize("shape", [(2,), (2, 3, 4097)])
def test_shapes_and_dtype(name, shape):
    fn, _ = KINDS[name]
    x = np.asarray(fn(jax.random.key(0), shape))
    assert x.shape == shape and x.dtype == np.float32 and np.isfinite(x).all()


def test_scales():
    key = jax.random.key(11)
    g = np.asarray(noise.white(key, (4, 65536)))
    assert abs(g.std() - 1.0) < 0.01 and abs(g.mean()) < 0.01
    u = np.asarray(noise.white(key, (4, 65536), kind="uniform"))
    assert abs(u.std() - 1.0) < 0.01 and np.abs(u).max() <= np.sqrt(3.0)
    for fn in (noise.pink, noise.brown):
        x = np.asarray(fn(key, (3, 5, 3001)))
        np.testing.assert_allclose(np.sqrt((x ** 2).mean(axis=-1)), 1.0, rtol=1e-5)
        np.testing.assert_allclose(x.mean(axis=-1), 0.0, atol=1e-5)  # the DC bin is zeroed


def test_batch_members_differ():
    x = np.asarray(noise.pink(jax.random.key(0), (4, 2048)))
    assert np.abs(np.corrcoef(x)[np.triu_indices(4, 1)]).max() < 0.5


@pytest.mark.parametrize("num_devices", [2, 4])
def test_sharded_batch_of_keys_stays_on_its_devices(num_devices):
    # As the attack step draws it: one key per clip, clips sharded over the mesh.
    mesh = parallel.make_mesh(num_devices)
    keys = jax.random.split(jax.random.key(4), 8)
    want = np.stack([np.asarray(noise.pink(k, (2048,))) for k in keys])
    fn = jax.jit(jax.vmap(lambda k: noise.pink(k, (2048,))),
                 out_shardings=parallel.data_sharding(mesh))
    sharded_keys = jax.device_put(keys, parallel.data_sharding(mesh))
    got = fn(sharded_keys)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5)
    hlo = fn.lower(sharded_keys).compile().as_text()
    for op in ("all-gather", "all-to-all", "collective-permute"):
        assert op not in hlo, f"sharded pink noise moves data between devices ({op})"


def test_bad_arguments():
    with pytest.raises(ValueError, match="kind"):
        noise.white(jax.random.key(0), (4,), kind="violet")
    with pytest.raises(ValueError, match="at least 2 samples"):
        noise.pink(jax.random.key(0), (3, 1))
    with pytest.raises(ValueError, match="shape"):
        noise.brown(jax.random.key(0), (-1, 8))
