"""The study's Ray engine: the same cell records as the local engine, a rerun that computes nothing,
and the workers' environment."""
import dataclasses
import os
import shutil

import pytest

from experiments.configs import study as study_configs
from maskgan_jax import study, study_cells, study_ray

# Fields that name when, where or with what a record was made, not what it found.
VOLATILE = {"seconds", "versions", "wall_s"}


def _strip(x):
    if isinstance(x, dict):
        return {k: _strip(v) for k, v in x.items() if k not in VOLATILE}
    if isinstance(x, list):
        return [_strip(v) for v in x]
    return x


def _tiny_subset():
    """The tiny study on the commands task: the clean group and one adaptive group (two Ray tasks)."""
    return dataclasses.replace(study_configs.tiny(), tasks=("commands",), noises=("white",),
                               channels=("digital",), adversaries=("static", "adaptive"), exclude="")


@pytest.mark.slow
# ray.init starts its processes by fork + exec (nothing runs between them), after this test
# process's JAX has started: Python warns of every fork once threads exist.
@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")
def test_ray_engine_matches_local_and_reruns_nothing(tmp_path):
    cfg = _tiny_subset()
    local, on_ray = str(tmp_path / "local"), str(tmp_path / "ray")
    logs = []
    facts = study.run_study(cfg, local, make_report=False, log=logs.append)
    assert facts["computed"] == 3
    # The Ray run reuses the local run's shared stages (a copied study folder recomputes
    # nothing) and computes every cell again, as Ray tasks.
    shutil.copytree(local, on_ray, ignore=shutil.ignore_patterns("cells"))
    opts = study_ray.RayOptions(local_cpus=2, num_cpus=1)
    facts = study.run_study(cfg, on_ray, make_report=False, log=logs.append, engine="ray", ray_options=opts)
    assert facts["engine"] == "ray" and facts["tasks"] == 2 and facts["computed"] == 3
    assert facts["counters"] == {"train_fold": 4, "evaluate": 6}
    want = {r["cell"]: _strip(r) for r in study_cells.read_all_cells(local)}
    got = {r["cell"]: _strip(r) for r in study_cells.read_all_cells(on_ray)}
    assert sorted(got) == sorted(want) and len(want) == 3
    for cell, rec in want.items():
        assert got[cell]["accuracy"] == rec["accuracy"], cell
        assert got[cell]["folds"] == rec["folds"], cell
        assert got[cell] == rec, cell
    assert not os.path.exists(os.path.join(on_ray, "partial")) or not os.listdir(os.path.join(on_ray, "partial"))
    # A rerun finds every cell done and starts no task.
    files = {p: os.path.getmtime(p) for p in (os.path.join(on_ray, c.relpath) for c in cfg.cells())}
    again = study.run_study(cfg, on_ray, make_report=False, log=logs.append, engine="ray", ray_options=opts)
    assert again["computed"] == 0 and again["tasks"] == 0 and again["done_before"] == 3
    assert {p: os.path.getmtime(p) for p in files} == files


def test_worker_env_sizes_thread_pools_and_keeps_the_platform():
    env = study_ray.worker_env_vars(study_ray.RayOptions(num_cpus=3),
                                    {"XLA_FLAGS": "--xla_force_host_platform_device_count=4 "
                                                  "--xla_cpu_multi_thread_eigen=true", "JAX_PLATFORMS": "cpu"})
    flags = env["XLA_FLAGS"].split()
    assert flags == ["--xla_force_host_platform_device_count=4", "--xla_cpu_multi_thread_eigen=false",
                     "intra_op_parallelism_threads=3"]
    assert all(env[v] == "3" for v in study_ray.THREAD_VARS)
    assert env["JAX_PLATFORMS"] == "cpu" and "XLA_PYTHON_CLIENT_PREALLOCATE" not in env
    # A CPU-only task never claims an accelerator; a fractional GPU share does not preallocate.
    assert study_ray.worker_env_vars(study_ray.RayOptions(), {})["JAX_PLATFORMS"] == "cpu"
    gpu = study_ray.worker_env_vars(study_ray.RayOptions(num_gpus=0.5), {})
    assert "JAX_PLATFORMS" not in gpu and gpu["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"
    assert "XLA_PYTHON_CLIENT_PREALLOCATE" not in study_ray.worker_env_vars(study_ray.RayOptions(num_gpus=1), {})


def test_ray_options_and_engine_are_checked():
    with pytest.raises(ValueError, match="ray_num_cpus"):
        study_ray.RayOptions(num_cpus=0).validate()
    with pytest.raises(ValueError, match="ray_local_cpus"):
        study_ray.RayOptions(num_cpus=4, local_cpus=2).validate()
    with pytest.raises(ValueError, match="ray_max_retries"):
        study_ray.RayOptions(max_retries=-1).validate()
    with pytest.raises(ValueError, match="engine"):
        study.run_study(_tiny_subset(), "/nonexistent/never-made", engine="dask")


def test_group_job_is_picklable_and_reopens_the_stores(tmp_path):
    """What a task receives survives pickling (no jitted function, memmap or device array in it)."""
    import pickle
    cfg = _tiny_subset()
    job = study_ray.GroupJob(cfg, str(tmp_path), (("commands", str(tmp_path / "stores" / "commands"), "x"),),
                             None, cfg.cells()[0].group, tuple(cfg.cells()[:2]))
    back = pickle.loads(pickle.dumps(job))
    assert back == job
    from maskgan_jax.data import store
    with pytest.raises(store.StoreError):
        study_ray.open_stores(back.stores)
