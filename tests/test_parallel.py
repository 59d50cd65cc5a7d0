import jax
import jax.numpy as jnp
import numpy as np
import pytest

from maskgan_jax import parallel


def test_four_forced_devices_are_visible():
    assert jax.device_count() == 4, "tests/conftest.py should force 4 host devices"


@pytest.mark.parametrize("n", [1, 2, 4])
def test_sharded_mean_matches_host(n):
    mesh = parallel.make_mesh(n)
    x = np.arange(8 * 3, dtype=np.float32).reshape(8, 3)
    xs = parallel.shard_batch(x, mesh)
    assert len(xs.sharding.device_set) == n
    out = jax.jit(lambda a: jnp.mean(a ** 2, axis=0))(xs)
    np.testing.assert_allclose(np.asarray(out), np.mean(x ** 2, axis=0), rtol=1e-6)


def test_indivisible_batch_is_a_clear_error():
    mesh = parallel.make_mesh(4)
    with pytest.raises(ValueError, match="multiple of the device count 4"):
        parallel.shard_batch(np.zeros((6, 2), np.float32), mesh)


def test_too_many_devices_is_a_clear_error():
    with pytest.raises(ValueError, match="available"):
        parallel.make_mesh(64)
