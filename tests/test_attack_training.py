"""The attackers' training recipe: step plan, schedule, augmentation, the probe-started readout, rooms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from maskgan_jax import attack, attack_loop, attack_steps, masking, parallel, probe, room
from maskgan_jax.data.batches import ArrayData
from maskgan_jax.models import attackers
from maskgan_jax.models.attackers import AttackerConfig

T = 4096
MEL = attack.MelConfig(n_fft=256, hop_length=128, n_mels=16)


def _data(n=24, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    t = np.arange(T) / 16000.0
    audio = np.stack([0.3 * np.sin(2 * np.pi * (300.0 + 400.0 * y[i]) * t) + 0.05 * rng.standard_normal(T)
                      for i in range(n)])
    return ArrayData((audio * 32767).astype(np.int16), {"a": y.astype(np.int32)}, [f"g{i // 3}" for i in range(n)],
                     [""] * n, {"a": [f"c{k}" for k in range(classes)]}, "toy")


def _cfg(**kw):
    base = dict(task="sei", model=AttackerConfig(model="cnn", channels=(4, 8), input_stats=True), mel=MEL,
                folds=2, epochs=2, batch_size=8, learning_rate=1e-2, readout_init="probe", weight_decay=0.1)
    base.update(kw)
    return attack.AttackConfig(**base)


def test_plan_has_a_floor_of_steps_whatever_the_corpus_size():
    cfg = _cfg(min_steps=300, epochs=30, batch_size=32)
    assert attack_loop.plan(cfg, 40)[0] == 300           # 2 steps an epoch: the floor decides
    assert attack_loop.plan(cfg, 3200)[0] == 30 * 100    # 100 steps an epoch: the epochs decide
    total, every = attack_loop.plan(cfg, 40)
    assert 35 <= total / every <= 40                      # about 40 validations a fold
    lr = attack_loop.learning_rate(_cfg(schedule="cosine", warmup_fraction=0.1, learning_rate=1e-3), 100)
    assert lr(0) == pytest.approx(0.0, abs=1e-9) and lr(10) == pytest.approx(1e-3, rel=1e-3)
    assert lr(99) < 0.05 * 1e-3 and lr(50) < lr(20)


def test_spec_augment_masks_bands_with_the_clip_mean_and_shift_is_a_roll():
    rng = np.random.default_rng(0)
    mel = jnp.asarray(rng.normal(size=(3, 16, 40)), jnp.float32)
    out = np.asarray(attack_steps.spec_augment(mel, jax.random.key(1), time_masks=1, freq_masks=1, width=0.25))
    changed = out != np.asarray(mel)
    for b in range(3):
        fill = float(np.mean(np.asarray(mel)[b]))
        np.testing.assert_allclose(out[b][changed[b]], fill, atol=1e-6)
        cols = np.flatnonzero(changed[b].all(axis=0))     # masked frames span every band
        rows = np.flatnonzero(changed[b].all(axis=1))     # masked bands span every frame
        assert cols.size <= 0.25 * 40 + 1 and rows.size <= 0.25 * 16 + 1
        assert cols.size == 0 or np.all(np.diff(cols) == 1)
    again = np.asarray(attack_steps.spec_augment(mel, jax.random.key(1), 1, 1, 0.25))
    np.testing.assert_array_equal(out, again)
    wave = jnp.asarray(rng.normal(size=(4, 100)), jnp.float32)
    shifted = np.asarray(attack_steps.random_shift(wave, jax.random.key(2), 0.1))
    for b in range(4):
        matches = [s for s in range(-10, 11) if np.array_equal(shifted[b], np.roll(np.asarray(wave[b]), s))]
        assert matches, b


def test_a_readout_started_from_the_probe_predicts_what_the_probe_predicts():
    data = _data()
    cfg = _cfg()
    mesh = parallel.make_mesh(1)
    steps = attack_steps.Steps(cfg, [("a", 3)], T, mesh)
    split = {"train": np.arange(12), "valid": np.arange(12, 18), "test": np.arange(18, 24)}
    probe_params, _ = attack_loop.probe_train(steps, data, split, 0, 0)
    state = steps.init(jax.random.key(0))
    params = attackers.warm_start_readout(jax.device_get(state["params"]), probe_params)
    b = {"audio": data.audio[:8], "index": np.arange(8, dtype=np.int32), "weight": np.ones(8, np.float32),
         "labels": {"a": data.labels["a"][:8]}}
    mel, _ = jax.jit(lambda b: steps.log_mel(b, np.zeros(3, np.float32), False, False))(b)
    net = np.asarray(steps.model.apply(params, mel)["a"])
    ref = probe.predict_logits(probe_params, np.asarray(probe.features(mel)))["a"]
    np.testing.assert_allclose(net, ref, rtol=1e-3, atol=1e-3)
    # Training changes the learnt readout and the convolutions, never the probe's.
    hear = attack_loop.CLEAN
    train = steps.train(*hear.mode)
    st = {**state, "params": parallel.replicate(params, mesh)}
    before = jax.device_get(st["params"]["params"])
    for _ in range(3):
        st, _m = train(st, parallel.shard_batch(b, mesh), jax.random.key(3), hear.args, 1e-2)
    after = jax.device_get(st["params"]["params"])
    np.testing.assert_array_equal(after["stats_head_a"]["kernel"], before["stats_head_a"]["kernel"])
    np.testing.assert_array_equal(after["stats_head_a"]["bias"], before["stats_head_a"]["bias"])
    assert np.abs(after["head_a"]["kernel"] - before["head_a"]["kernel"]).max() > 0


def test_the_probe_family_in_the_attack_matches_the_probes_own_cross_validation():
    data = _data(30)
    cfg = _cfg(model=AttackerConfig(model="probe"), readout_init="random", folds=2, seed=3)
    recs = attack.run_attack(cfg, data, log=lambda s: None)
    ref = probe.cross_validate(data, folds=2, seed=3, val_fraction=cfg.val_fraction,
                               mel=probe.MelSpec(n_fft=256, hop_length=128, n_mels=16), log=lambda s: None)
    assert [r["accuracy"] for r in recs[:-1]] == pytest.approx([r["accuracy"] for r in ref], abs=1e-9)
    s = recs[-1]
    assert s["ci_method"].startswith("cluster-bootstrap") and 0.0 <= s["ci95"][0] <= s["ci95"][1] <= 1.0
    assert len(s["t_ci95"]) == 2 and s["n_examples"] == 30


def test_each_example_hears_its_own_room_whatever_the_batch():
    bank = room.build_rir_bank(room.RoomConfig(rir_length=512), seed=0, n_rooms=3, workers=1)
    ch = attack_loop.RoomChannel.make(bank, T, 60.0, 45.0)
    hear = attack_loop.Hearing(masking.noise_program("white", T), 15.0, False, ch)
    key = jax.random.key(4)
    whole = hear.with_noise({"index": jnp.arange(6, dtype=jnp.int32)}, key)
    part = hear.with_noise({"index": jnp.arange(3, 6, dtype=jnp.int32)}, key)
    np.testing.assert_array_equal(np.asarray(whole["room"].talker_mic)[3:], np.asarray(part["room"].talker_mic))
    np.testing.assert_array_equal(np.asarray(whole["noise"])[3:], np.asarray(part["noise"]))
    assert hear.mode == (True, False, True) and hear.args[1] > hear.args[2] > 0
    with pytest.raises(ValueError, match="--channel"):
        _cfg(channel="air").validate()
