"""Exported generators: the same noise as the workdir they came from, provenance, no pickle; the default MaskGAN."""
import json
import os

import jax
import numpy as np
import pytest

from experiments.configs.maskgan import get_config
from maskgan_jax import checkpoint, gan, gan_export, gan_load


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    wd = str(tmp_path_factory.mktemp("run"))
    gan_export.record_run(wd, ["python -m experiments.train_maskgan", "--config=tiny"])
    gan.train(get_config("tiny", steps=0), wd, num_devices=1)
    out = str(tmp_path_factory.mktemp("export"))
    info = gan_export.export_generator(wd, out, gate_clips=0)
    return wd, out, info


def test_export_generates_the_workdirs_noise(exported):
    wd, out, info = exported
    assert sorted(os.listdir(out)) == ["config.json", "export.json", "generator.npz"]
    fn_w, info_w = gan_load.load_noise_sampler(wd)
    fn_e, info_e = gan_load.load_noise_sampler(out)
    assert info_e["config"] == info_w["config"] and info_e["step"] == info_w["step"] == 0
    key = jax.random.key(3)
    np.testing.assert_array_equal(np.asarray(fn_e(key, 3)), np.asarray(fn_w(key, 3)))
    with pytest.raises(ValueError, match="step 0, not 5"):
        gan_load.load_noise_sampler(out, step=5)


def test_export_records_provenance_and_size(exported):
    wd, out, info = exported
    with open(os.path.join(out, "export.json")) as f:
        saved = json.load(f)
    assert saved == json.loads(json.dumps(info))
    assert saved["trained_by"][0]["command"] == "python -m experiments.train_maskgan --config=tiny"
    assert "commit" in saved["trained_by"][0] and saved["step"] == 0 and saved["gate"] is None
    assert saved["generator_bytes"] == os.path.getsize(os.path.join(out, "generator.npz"))
    # Generator parameters only: the tiny generator's float32 weights plus the npz headers.
    assert saved["generator_bytes"] < 4 * saved["generator_parameters"] + 4096


def test_npz_reader_refuses_pickles_and_wrong_shapes(exported, tmp_path):
    _, out, _ = exported
    bad = tmp_path / "bad.npz"
    np.savez(bad, **{"dense/kernel": np.array([{"a": 1}], dtype=object)})
    with pytest.raises(checkpoint.CheckpointError, match="bad.npz"):
        checkpoint.load_tree_npz(bad)
    # The parameters of another width do not load under this config.
    other = tmp_path / "other"
    other.mkdir()
    with open(os.path.join(out, "config.json")) as f:
        cfg = json.load(f)
    cfg["dim"] = 2
    (other / "config.json").write_text(json.dumps(cfg))
    os.link(os.path.join(out, "generator.npz"), other / "generator.npz")
    with pytest.raises(ValueError, match="does not hold the generator"):
        gan_load.load_noise_sampler(str(other))


def test_training_time_sums_resumed_runs(tmp_path):
    lines = [{"kind": "train", "step": 1, "elapsed_s": 5.0}, {"kind": "quality", "step": 1},
             {"kind": "train", "step": 2, "elapsed_s": 9.0}, {"kind": "run", "command": "x"},
             {"kind": "train", "step": 3, "elapsed_s": 4.0}]
    (tmp_path / gan.METRICS_FILE).write_text("".join(json.dumps(r) + "\n" for r in lines))
    assert gan_export.training_seconds(str(tmp_path)) == pytest.approx(13.0)


@pytest.mark.skipif(not gan_load.is_exported_generator(gan_export.DEFAULT_GENERATOR), reason="no default MaskGAN shipped")
def test_default_generator_is_small_documented_and_rechecked():
    folder = gan_export.DEFAULT_GENERATOR
    size = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))
    assert size <= 5 * 1024 * 1024
    with open(os.path.join(folder, gan_load.EXPORT_INFO_FILE)) as f:
        info = json.load(f)
    run = info["trained_by"][0]
    assert run["command"].startswith("python -m experiments.train_maskgan") and len(run["commit"]) == 40
    assert run["dirty"] is False and info["training_seconds"] > 0
    # The full gate (64 clips a side, with the classifier) is recorded beside it.
    gate = info["gate"]
    assert gate["classifier"] and gate["clips"] == [64, 64] and "two_sample_auc" in gate["measures"]
    # The recipe is the named config cpu_quality (fields that do not change the model aside).
    cfg = gan.read_config(folder)
    want = get_config("cpu_quality")
    same = [f for f in cfg.to_json() if f not in ("steps", "log_every", "checkpoint_every", "keep_checkpoints")]
    assert {k: cfg.to_json()[k] for k in same} == {k: want.to_json()[k] for k in same}
    assert info["step"] == want.steps
    # The cheap check the loader runs (32 fresh clips a side, no classifier) gives its verdicts.
    _, loaded = gan_export.load_default(num_clips=32)
    assert loaded["step"] == info["step"] and not loaded["gate"]["classifier"]
    assert set(loaded["gate"]["measures"]) == set(gate["measures"]) - {"two_sample_auc"}
