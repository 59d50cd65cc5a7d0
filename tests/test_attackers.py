"""Attacker models: shapes, parameter counts against the torch peer, GRU against flax's cell, pooling."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from maskgan_jax.models import attackers
from maskgan_jax.models.attackers import AttackerConfig

HEADS1 = (("label", 10),)


def _params(cfg, heads=HEADS1, mels=128, frames=129):
    model = attackers.build(cfg, heads)
    return model, jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, mels, frames)))


@pytest.mark.parametrize("cfg", [
    AttackerConfig(model="cnn", channels=(4, 8), norm="layer"),
    AttackerConfig(model="cnn", channels=(4, 8), cnn_head="global"),
    AttackerConfig(model="rnn", hidden=8, layers=1, cell="lstm", pool="last"),
    AttackerConfig(model="crnn", channels=(4, 8), hidden=8, layers=1),
], ids=lambda c: f"{c.model}-{c.cell}-{c.norm}-{c.pool}")
def test_output_shapes_one_head_per_attribute(cfg):
    heads = (("age", 6), ("gender", 2), ("accent", 5))
    model, params = _params(cfg, heads, mels=16, frames=21)
    out = jax.jit(model.apply)(params, jax.random.normal(jax.random.key(1), (3, 16, 21)))
    assert set(out) == {"age", "gender", "accent"}
    for name, n in heads:
        assert out[name].shape == (3, n) and out[name].dtype == jnp.float32
        assert np.isfinite(np.asarray(out[name])).all()


# Parameter counts printed by ../shared/peers/attackers_torch.py (torch 2.13) at the peer's
# flags; its CNN and CRNN also carry BatchNorm (2 parameters per channel), which ours omit.
@pytest.mark.parametrize("cfg,peer_params,bn_channels", [
    (AttackerConfig(model="cnn", channels=(32, 64, 128, 128), cnn_head="global"), 242250, 32 + 64 + 128 + 128),
    (AttackerConfig(model="rnn", hidden=128, layers=2), 199434, 0),
    (AttackerConfig(model="crnn", channels=(32, 64, 128), hidden=128, layers=1), 930762, 32 + 64 + 128),
], ids=["cnn", "rnn", "crnn"])
def test_same_size_as_the_torch_peer(cfg, peer_params, bn_channels):
    _, params = _params(cfg)
    assert attackers.count_params(params) == peer_params - 2 * bn_channels, (
        "the attacker no longer has the peer's architecture sizes; the speed comparison "
        "in BUILD_NOTES.md would not be like for like")


def test_gru_layer_matches_flax_gru_cell():
    d, h, b, t = 5, 7, 3, 6
    layer = attackers.Recurrent(h, "gru")
    x = jax.random.normal(jax.random.key(0), (b, t, d))
    p = layer.init(jax.random.key(1), x)["params"]
    p = jax.tree_util.tree_map(lambda a: a + 0.1 * jax.random.normal(jax.random.key(2), a.shape), p)
    ours = layer.apply({"params": p}, x)
    # flax's GRUCell: r, z from input+hidden denses, n = tanh(W_in x + b_in + r * (W_hn h + b_hn)).
    wi, bi = np.split(p["input"]["kernel"], 3, 1), np.split(p["input"]["bias"], 3)
    wh, bh = np.split(p["recurrent"], 3, 1), np.split(p["recurrent_bias"], 3)
    cell = nn.GRUCell(h)
    fp = {"ir": {"kernel": wi[0], "bias": bi[0] + bh[0]}, "iz": {"kernel": wi[1], "bias": bi[1] + bh[1]},
          "in": {"kernel": wi[2], "bias": bi[2]}, "hr": {"kernel": wh[0]}, "hz": {"kernel": wh[1]},
          "hn": {"kernel": wh[2], "bias": bh[2]}}
    ref = nn.RNN(cell).apply({"params": {"cell": fp}}, x)
    np.testing.assert_allclose(np.asarray(ours), np.asarray(ref), rtol=2e-5, atol=2e-6)


def test_lstm_layer_matches_a_numpy_reference():
    d, h, b, t = 4, 3, 2, 5
    layer = attackers.Recurrent(h, "lstm")
    x = np.asarray(jax.random.normal(jax.random.key(0), (b, t, d)))
    p = layer.init(jax.random.key(1), x)["params"]
    ours = np.asarray(layer.apply({"params": p}, x))
    w, bi = np.asarray(p["input"]["kernel"], np.float64), np.asarray(p["input"]["bias"], np.float64)
    u, bh = np.asarray(p["recurrent"], np.float64), np.asarray(p["recurrent_bias"], np.float64)
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    c = np.zeros((b, h))
    hs = np.zeros((b, h))
    for k in range(t):
        i, f, g, o = np.split(x[:, k] @ w + bi + hs @ u + bh, 4, axis=-1)
        c = sig(f + 1.0) * c + sig(i) * np.tanh(g)   # forget-gate bias of 1 (Jozefowicz et al.)
        hs = sig(o) * np.tanh(c)
        np.testing.assert_allclose(ours[:, k], hs, rtol=1e-5, atol=1e-6)


def test_max_pool_matches_flax_max_pool_with_odd_sizes():
    x = jax.random.normal(jax.random.key(0), (2, 7, 9, 3))
    ref = nn.max_pool(x, (2, 2), strides=(2, 2), padding="VALID")
    np.testing.assert_array_equal(np.asarray(attackers.max_pool_2x2(x)), np.asarray(ref))


def test_standardize_is_per_example_and_level_invariant():
    x = np.random.default_rng(0).standard_normal((2, 4, 5)).astype(np.float32)
    y = np.asarray(attackers.standardize(jnp.asarray(x)))
    np.testing.assert_allclose(y.mean(axis=(1, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(y.std(axis=(1, 2)), 1.0, rtol=1e-3)
    np.testing.assert_allclose(np.asarray(attackers.standardize(jnp.asarray(x + 30.0))), y, atol=1e-4)


def test_standardize_floors_silence_like_librosa_top_db():
    # A 1 s command zero-padded to 2.048 s: half the frames are digital silence at the
    # -100 dB floor. The floor 80 dB below the peak is librosa's power_to_db(top_db=80).
    import librosa
    from maskgan_jax import features
    rng = np.random.default_rng(3)
    wave = np.zeros((2, 32768), np.float32)
    wave[:, :16000] = 0.1 * rng.standard_normal((2, 16000))
    power = np.asarray(features.mel_spectrogram(wave))
    ours = np.asarray(attackers.standardize(10.0 * jnp.log10(jnp.maximum(jnp.asarray(power), 1e-10))))
    ref = np.stack([librosa.power_to_db(p, ref=1.0, amin=1e-10, top_db=80.0) for p in power.astype(np.float64)])
    ref = (ref - ref.mean(axis=(1, 2), keepdims=True)) / ref.std(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(ours, ref, atol=1e-3)


def test_flop_count_matches_xla_cost_analysis_of_the_forward_pass():
    cfg = AttackerConfig(model="crnn", channels=(8, 16), hidden=16, layers=1)
    model, params = _params(cfg, mels=32, frames=33)
    x = jnp.zeros((1, 32, 33))
    cost = jax.jit(model.apply).lower(params, x).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    ours = attackers.forward_flops(cfg, HEADS1, 32, 33)
    # XLA also counts the elementwise work (activations, pooling, gates); the MACs dominate.
    assert 0.9 * cost["flops"] <= ours <= 1.05 * cost["flops"]


@pytest.mark.parametrize("bad", [dict(model="mlp"), dict(cell="rnn"), dict(norm="batch"),
                                 dict(pool="max"), dict(model="cnn", channels=())])
def test_bad_config_is_a_clear_error(bad):
    with pytest.raises(ValueError, match=list(bad)[0] if list(bad)[0] != "channels" else "channel"):
        AttackerConfig(**bad)
