"""The study: cell grid, --cells filters, worker shards, and a tiny end-to-end run that resumes."""
import dataclasses
import json
import os
import shutil

import pytest

from experiments.configs import study as study_configs
from maskgan_jax import attack, attack_loop, results, study, study_cells, study_grid
from maskgan_jax.data import store

GRID = dict(tasks=("mgi", "commands"), models=("cnn", "rnn"), noises=("white", "gan"),
            levels=(35.0, 45.0, 50.0), adversaries=("static", "adaptive", "denoise"), seeds=(0, 1))


def test_grid_counts_groups_and_comfort_marks():
    cells = study_grid.enumerate_cells(**GRID)
    # Per (task, model, seed): 1 clean baseline + 2 noises x 3 levels x 3 adversaries.
    assert len(cells) == 2 * 2 * 2 * (1 + 2 * 3 * 3)
    assert len({c.relpath for c in cells}) == len(cells)
    assert sum(c.above_comfort for c in cells) == 2 * 2 * 2 * 2 * 3
    groups = study_grid.group_cells(cells)
    # One clean-trained group plus one adaptive and one denoising group per noise and level.
    assert len(groups) == 2 * 2 * 2 * (1 + 2 * 2 * 3)
    only45 = study_grid.enumerate_cells(**{**GRID, "adaptive_levels": (45.0,)})
    assert {c.level for c in only45 if c.adversary == "adaptive"} == {45.0}
    with pytest.raises(ValueError, match="noise"):
        study_grid.enumerate_cells(**{**GRID, "noises": ("purple",)})


def test_cells_filter_syntax():
    cells = study_grid.enumerate_cells(**GRID)
    pick = study_grid.select(cells, "task=mgi,model=cnn,level=45,seed=0")
    assert {(c.task, c.model, c.level, c.seed) for c in pick} == {("mgi", "cnn", 45.0, 0)}
    assert len(pick) == 2 * 3
    either = study_grid.select(cells, "noise=none;adversary=denoise,level=3*")
    assert all(c.noise == "none" or (c.adversary == "denoise" and c.level == 35.0) for c in either)
    assert len(either) == 8 + 8 * 2
    assert len(study_grid.select(cells, "model=cnn|rnn,noise=g*")) == 2 * 2 * 2 * 3 * 3
    assert study_grid.select(cells, "level=-") == [c for c in cells if c.noise == "none"]
    with pytest.raises(ValueError, match="--cells.*unknown key 'colour'"):
        study_grid.parse_filter("colour=red")
    with pytest.raises(ValueError, match="not key=glob"):
        study_grid.parse_filter("task")


def test_workers_split_groups_disjointly():
    cells = study_grid.enumerate_cells(**GRID)
    parts = [study_grid.select(cells, "", i, 3) for i in range(3)]
    assert sorted(c.id for p in parts for c in p) == sorted(c.id for c in cells)
    assert not set(parts[0]) & set(parts[1])
    for a in range(3):
        for b in range(a + 1, 3):
            assert not {c.group for c in parts[a]} & {c.group for c in parts[b]}
    with pytest.raises(ValueError, match="--worker"):
        study_grid.select(cells, "", 3, 3)
    # Each worker keeps its own run facts; a lone run and worker 0 use run_info.json.
    names = [study.run_info_name(i, 3) for i in range(3)]
    assert names[0] == study.run_info_name() == "run_info.json" and len(set(names)) == 3


def test_config_refuses_loud_levels_unless_allowed():
    cfg = dataclasses.replace(study_configs.tiny(), levels=(45.0, 50.0))
    with pytest.raises(ValueError, match="comfort"):
        cfg.validate()
    dataclasses.replace(cfg, allow_above_comfort=True).validate()


def test_default_config_uses_the_packaged_maskgan():
    from maskgan_jax import gan_export, gan_load
    cfg = study_configs.default()
    assert cfg.gan is None and cfg.gan_workdir == gan_export.DEFAULT_GENERATOR
    assert gan_load.is_exported_generator(cfg.gan_workdir)
    info = gan_load.export_info(cfg.gan_workdir)
    assert info["step"] > 0 and info["gate"]["measures"] and info["trained_by"][-1]["command"]
    assert os.path.getsize(os.path.join(cfg.gan_workdir, gan_load.GENERATOR_FILE)) <= 5 * 2 ** 20


def test_default_config_sweep_answers_all_questions():
    cfg = study_configs.default().validate()
    cells = cfg.cells()
    assert {c.task for c in cells} == {"mgi", "udi", "sei", "commands"}
    assert {c.noise for c in cells} == {"none", "white", "pink", "brown", "gan"}
    assert {c.adversary for c in cells} == {"static", "adaptive", "denoise", "invert"}
    assert {c.model for c in cells} == {"cnn", "probe"}
    # Every family is one flag away (its attack config is there).
    assert set(dict(cfg.attack)) >= {"cnn", "rnn", "crnn", "probe"}
    assert {c.channel for c in cells} == {"digital", "room"}
    assert len({c.level for c in cells if c.level is not None}) >= 2
    assert all(c.level is None or c.level <= 45.0 for c in cells)
    # Every masked room cell and every stronger adversary has its clean baseline and static cell.
    ids = {c.id for c in cells}
    for c in cells:
        if c.noise != "none":
            base = dataclasses.replace(c, noise="none", level=None, adversary="static")
            assert base.id in ids, c.id
    # The invert adversary has its control: white noise beside GAN noise.
    assert {c.noise for c in cells if c.adversary == "invert"} == {"white", "gan"}


class _Interrupt(Exception):
    pass


@pytest.mark.slow
def test_tiny_study_end_to_end_resumes_without_recomputing(tmp_path, monkeypatch):
    cfg = study_configs.tiny()
    out = str(tmp_path / "study")
    quiet = lambda s: None  # noqa: E731
    real_train = attack_loop.train_fold
    calls = {"n": 0}

    def interrupting(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:        # the second fold of the first group: as if killed
            raise _Interrupt()
        return real_train(*a, **k)

    monkeypatch.setattr(attack_loop, "train_fold", interrupting)
    with pytest.raises(_Interrupt):
        study.run_study(cfg, out, cells="task=commands", log=quiet)
    monkeypatch.setattr(attack_loop, "train_fold", real_train)
    partial = os.listdir(os.path.join(out, "partial"))
    assert len(partial) == 1
    assert {r["fold"] for r in results.read_jsonl(os.path.join(out, "partial", partial[0]))} == {0}

    # Resume the subset: the interrupted group needs one more fold; the adaptive, denoising and
    # invert groups (two noises each) and the room channel's clean group two folds each.
    facts = study.run_study(cfg, out, cells="task=commands", log=quiet, make_report=False)
    assert facts["counters"]["train_fold"] == 1 + 6 * 2 + 2
    assert facts["computed"] == 11

    # The whole study: only the sei cells are computed.
    facts = study.run_study(cfg, out, log=quiet, make_report=False)
    assert facts["done_before"] == 11 and facts["computed"] == 11
    assert facts["counters"]["train_fold"] == 8 * 2

    # Same flags again: nothing is recomputed, and the stage times stay those of the run that
    # computed each stage.
    facts = study.run_study(cfg, out, log=quiet)
    assert facts["counters"] == {"train_fold": 0, "evaluate": 0}
    assert facts["computed"] == 0
    stages = json.load(open(os.path.join(out, "run_info.json")))["stages"]
    for k in ("stores", "cells"):
        assert stages[k]["wall_s"] > 0 and stages[k]["run_started"] != stages[k]["reused_by_run_started"], k

    # A copied output folder (fresh file times) is reused as it is: nothing is rebuilt or recomputed.
    copy = str(tmp_path / "copied")
    shutil.copytree(out, copy, copy_function=shutil.copy)
    facts = study.run_study(cfg, copy, log=quiet, make_report=False)
    assert facts["counters"] == {"train_fold": 0, "evaluate": 0} and facts["computed"] == 0
    stages = json.load(open(os.path.join(copy, "run_info.json")))["stages"]
    for k in ("corpora", "stores", "maskgan", "noises", "randomness", "utility", "cells"):
        assert "reused_by_run_started" in stages[k], (k, stages[k])

    recs = study_cells.read_all_cells(out)
    assert len(recs) == len(cfg.cells()) == 22
    assert {r["channel"] for r in recs} == {"digital", "room"}
    for r in recs:
        for k in ("kind", "task", "model", "noise", "noise_spl", "adversary", "seed", "accuracy", "ci95",
                  "config", "folds", "fingerprint", "versions"):
            assert k in r, k
        assert 0.0 <= r["accuracy"] <= 1.0
    text = open(os.path.join(out, "report.md")).read()
    for part in ("## sei:", "## commands:", "RQ1", "RQ2", "RQ3", "Wall time of each stage", "maskgan",
                 "## The adversary that knows the generator", "## Utility as heard", "| room |",
                 "## MaskGAN quality", "trained 0 steps by this study",
                 "fig03_mel_spectrograms.png", "frontier_privacy_utility_comfort.png", "fig13_spf.png"):
        assert part in text, part
    info = json.load(open(os.path.join(out, "run_info.json")))
    assert {"corpora", "stores", "maskgan", "noises", "randomness", "utility", "cells", "report"} <= set(info["stages"])
    gate = json.loads(open(os.path.join(out, "maskgan_quality.json")).readline())
    assert gate["passed"] is False and gate["gate"]["clips"] == [cfg.gate_clips, cfg.gate_clips]
    assert info["versions"]["jax"] and info["devices"]
    rand = results.read_jsonl(os.path.join(out, "randomness", "sei.jsonl"))
    assert {(r["source"], r["noise"]) for r in rand} == {("clean", "none"), ("masked", "white"),
                                                         ("masked", "gan")}

    # The study's cells are the attack library's numbers for the same cell.
    data = store.open_store(os.path.join(out, "stores", "sei"))
    env = study_cells.cell_env(cfg, out, {"sei": data}, None, quiet)
    for cell_id in ("task=sei,model=cnn,noise=white,level=45,adversary=static,seed=0,channel=digital",
                    "task=sei,model=cnn,noise=white,level=45,adversary=adaptive,seed=0,channel=digital",
                    "task=sei,model=cnn,noise=white,level=45,adversary=denoise,seed=0,channel=digital",
                    "task=sei,model=cnn,noise=white,level=45,adversary=static,seed=0,channel=room"):
        cell = next(c for c in cfg.cells() if c.id == cell_id)
        ref = attack.run_attack(env.attack_config(cell), data, log=quiet, room_dir=os.path.join(out, "rooms"))
        mine = study_cells.read_cell(out, cell)
        assert [f["accuracy"] for f in mine["folds"]] == ref[-1]["fold_accuracies"], cell_id
        assert mine["accuracy"] == pytest.approx(ref[-1]["accuracy"]) and mine["ci95"] == ref[-1]["ci95"]
