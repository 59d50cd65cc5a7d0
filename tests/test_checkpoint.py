"""orbax checkpoints: round trip, keep-last-k, and a resumed MaskGAN run equal to an uninterrupted one."""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs.maskgan import get_config
from maskgan_jax import checkpoint, gan, gan_load


def test_round_trip_and_keep_last_k(tmp_path):
    mngr = checkpoint.manager(tmp_path / "ck", max_to_keep=2)
    state = {"w": jnp.arange(6.0).reshape(2, 3), "step": jnp.int32(0), "key": jax.random.key_data(jax.random.key(3))}
    for step in (1, 2, 3):
        checkpoint.save(mngr, step, dict(state, step=jnp.int32(step)), {"note": step})
    mngr.wait_until_finished()
    assert sorted(mngr.all_steps()) == [2, 3]
    step, got, meta = checkpoint.restore(mngr, jax.eval_shape(lambda: state))
    assert step == 3 and meta == {"note": 3} and int(got["step"]) == 3
    np.testing.assert_array_equal(got["w"], state["w"])
    np.testing.assert_array_equal(got["key"], state["key"])
    mngr.close()
    with pytest.raises(checkpoint.CheckpointError, match="no checkpoint"):
        checkpoint.restore(checkpoint.manager(tmp_path / "empty"), jax.eval_shape(lambda: state))


def test_resumed_run_ends_with_the_same_parameters(tmp_path):
    cfg = get_config("tiny", steps=4, checkpoint_every=2, keep_checkpoints=2, log_every=1)
    full = gan.train(cfg, str(tmp_path / "full"), num_devices=1)
    # Pre-empted after 3 steps (last checkpoint at step 2 plus the stop checkpoint at 3), then resumed.
    gan.train(cfg, str(tmp_path / "cut"), num_devices=1, stop_after=3)
    resumed = gan.train(cfg, str(tmp_path / "cut"), num_devices=1)
    for a, b in zip(jax.tree_util.tree_leaves(jax.device_get(full)), jax.tree_util.tree_leaves(jax.device_get(resumed))):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert int(resumed["step"]) == 4
    lines = [json.loads(x) for x in open(tmp_path / "cut" / gan.METRICS_FILE)]
    quality_steps = [r["step"] for r in lines if r["kind"] == "quality"]
    lines = [r for r in lines if r["kind"] == "train"]
    assert [r["step"] for r in lines] == [1, 2, 3, 4]
    assert all(np.isfinite(r["d_loss"]) and r["steps_per_s"] > 0 and "eta_s" in r for r in lines)
    # Noise-quality measures at every checkpoint: step 2, the pre-emption at 3 and the end.
    assert quality_steps == [2, 3, 4]
    mngr = checkpoint.manager(tmp_path / "cut" / gan.CHECKPOINT_DIR)
    assert sorted(mngr.all_steps()) == [3, 4]
    mngr.close()
    # The generator of the finished run, as the attack code loads it.
    sample_fn, info = gan_load.load_noise_sampler(str(tmp_path / "cut"))
    assert info["step"] == 4 and info["config"]["dim"] == 4
    x = jax.jit(sample_fn, static_argnums=1)(jax.random.key(0), 3)
    assert x.shape == (3, 16384) and x.dtype == jnp.float32
    # A changed model flag is refused with the field named.
    with pytest.raises(ValueError, match="dim"):
        gan.train(get_config("tiny", dim=8, steps=5), str(tmp_path / "cut"), num_devices=1)
    assert os.path.exists(tmp_path / "cut" / gan.CONFIG_FILE)
