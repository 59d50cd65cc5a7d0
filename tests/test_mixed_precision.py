"""Mixed precision (compute_dtype=bfloat16): float32 parameters and optimizer state, finite losses
and gradient penalty, and losses within a stated tolerance of the float32 run."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import attack as attack_configs
from experiments.configs import maskgan as maskgan_configs
from maskgan_jax import gan
from maskgan_jax.models import attackers

STEPS = 3
# bfloat16 keeps 8 bits of mantissa (relative rounding 2^-8 ~ 0.4 %); through a dozen layers
# and a few optimiser steps the losses stay within a few per cent of float32's.
LOSS_RTOL = 0.05


def _run(config, state, steps=STEPS):
    step_fn = gan.make_train_step(config)
    out = []
    for i in range(1, steps + 1):
        state, m = step_fn(state, jnp.zeros((1,), jnp.float32), gan.step_key(state, i))
        out.append({k: float(v) for k, v in jax.device_get(m).items()})
    return state, out


def test_bf16_gan_steps_match_float32_and_keep_float32_state():
    f32 = maskgan_configs.get_config("tiny", steps=STEPS)
    bf16 = dataclasses.replace(f32, compute_dtype="bfloat16").validate()
    # One initial state for both: the parameters are float32 whatever the compute dtype (and the
    # init is compiled once).
    init = gan.init_state(f32)
    shapes = jax.eval_shape(lambda: gan.init_state(bf16))
    assert jax.tree_util.tree_map(lambda x: (x.shape, x.dtype), shapes) == \
        jax.tree_util.tree_map(lambda x: (x.shape, x.dtype), init)
    s32, m32 = _run(f32, jax.tree_util.tree_map(jnp.copy, init))
    s16, m16 = _run(bf16, init)
    # The parameters and Adam's moments stay float32, with the same structure.
    assert jax.tree_util.tree_structure(s16) == jax.tree_util.tree_structure(s32)
    for k in ("g_params", "d_params", "g_opt", "d_opt"):
        dtypes = {x.dtype for x in jax.tree_util.tree_leaves(s16[k]) if jnp.issubdtype(x.dtype, jnp.floating)}
        assert dtypes == {jnp.dtype(jnp.float32)}, (k, dtypes)
    for a, b in zip(m32, m16):
        for k in ("d_loss", "g_loss", "gp", "wdist", "d_grad_norm", "g_grad_norm", "fake_rms"):
            assert np.isfinite(b[k]), (k, b)
        for k in ("d_loss", "gp", "fake_rms"):
            np.testing.assert_allclose(b[k], a[k], rtol=LOSS_RTOL, err_msg=k)
        # g_loss = -E[D(G(z))] is a difference of small scores: compare on the critic's scale.
        assert abs(b["g_loss"] - a["g_loss"]) <= LOSS_RTOL * max(abs(a["d_loss"]), 1e-3), (a, b)
    # The bf16 run really computes in bf16 (else the test compares a run with itself).
    assert any(a["d_loss"] != b["d_loss"] for a, b in zip(m32, m16))
    # The generator's waveform is float32 whatever it computes in.
    gen, _ = gan.models(bf16)
    wave = gen.apply({"params": s16["g_params"]}, jnp.zeros((2, bf16.latent_dim)))
    assert wave.dtype == jnp.float32


def test_compute_dtype_is_checked_and_omitted_from_float32_configs():
    with pytest.raises(ValueError, match="compute_dtype"):
        maskgan_configs.get_config("tiny", compute_dtype="float16")
    # float32 configs read (and fingerprint) as they did before the field existed.
    assert "compute_dtype" not in maskgan_configs.get_config("tiny").to_json()
    assert maskgan_configs.get_config("tiny", compute_dtype="bfloat16").to_json()["compute_dtype"] == "bfloat16"
    cfg = attack_configs.get("tiny", "cnn")
    assert "compute_dtype" not in cfg.to_json()["model"]
    assert attack_configs.get("tiny", "cnn", compute_dtype="bfloat16").to_json()["model"]["compute_dtype"] == "bfloat16"
    with pytest.raises(ValueError, match="compute_dtype"):
        attack_configs.get("tiny", "cnn", compute_dtype="int8")


@pytest.mark.parametrize("model", ["cnn", "crnn"])
def test_bf16_attacker_loss_and_gradients_match_float32(model):
    base = attack_configs.get("tiny", model).model
    heads = (("label", 5),)
    mel = jax.random.normal(jax.random.key(0), (4, 32, 24)) * 10.0 - 40.0
    y = jnp.array([0, 1, 2, 3])

    def loss_and_grads(cfg):
        net = attackers.build(cfg, heads)
        params = net.init(jax.random.key(1), mel)["params"]

        def loss(p):
            logits = net.apply({"params": p}, mel)["label"]
            assert logits.dtype == jnp.float32
            return jnp.mean(-jax.nn.log_softmax(logits)[jnp.arange(4), y])

        return params, *jax.value_and_grad(loss)(params)

    p32, l32, g32 = loss_and_grads(base)
    p16, l16, g16 = loss_and_grads(dataclasses.replace(base, compute_dtype="bfloat16"))
    assert {x.dtype for x in jax.tree_util.tree_leaves(p16)} == {jnp.dtype(jnp.float32)}
    assert {x.dtype for x in jax.tree_util.tree_leaves(g16)} == {jnp.dtype(jnp.float32)}
    assert np.isfinite(float(l16))
    np.testing.assert_allclose(float(l16), float(l32), rtol=LOSS_RTOL)
    n32 = float(jnp.sqrt(sum(jnp.sum(g ** 2) for g in jax.tree_util.tree_leaves(g32))))
    n16 = float(jnp.sqrt(sum(jnp.sum(g ** 2) for g in jax.tree_util.tree_leaves(g16))))
    np.testing.assert_allclose(n16, n32, rtol=0.1)
