"""One MaskGAN training across processes (jax.distributed on localhost CPU, gloo collectives):
the same parameters as one process with as many devices, checkpoints written once, and resumption
across a different process count."""
import json
import os
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from experiments.configs import maskgan as maskgan_configs
from maskgan_jax import checkpoint, gan, parallel

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT_S = 240


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(devices: int) -> dict:
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT,
               XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
    return env


def _launch(args: list, processes: int) -> list[str]:
    """Runs a binary as one process with 2 devices, or as ``processes`` localhost processes with 1
    device each (jax.distributed); returns each process's output, asserting every one exited 0."""
    if processes == 1:
        procs = [subprocess.Popen(args, env=_env(2), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)]
    else:
        addr = f"127.0.0.1:{_free_port()}"
        procs = [subprocess.Popen(args + [f"--coordinator_address={addr}", f"--num_processes={processes}",
                                          f"--process_id={i}"], env=_env(1), cwd=ROOT,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for i in range(processes)]
    outs = []
    try:
        for p in procs:
            outs.append(p.communicate(timeout=TIMEOUT_S)[0].decode(errors="replace"))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, out in zip(procs, outs):
        assert p.returncode == 0, out[-3000:]
    return outs


def _train(workdir, steps: int, processes: int, *flags: str) -> float:
    """train_maskgan --config=tiny to ``steps``: one process with 2 devices, or ``processes`` with 1 each."""
    args = [sys.executable, "-m", "experiments.train_maskgan", "--config=tiny", f"--steps={steps}",
            f"--workdir={workdir}", *flags]
    t0 = time.perf_counter()
    outs = _launch(args, processes)
    assert f"'num_devices': 2, 'process_count': {processes}" in outs[0], outs[0][-2000:]
    return time.perf_counter() - t0


def _params(workdir, step: int) -> dict:
    cfg = maskgan_configs.get_config("tiny")
    mngr = checkpoint.manager(os.path.join(workdir, gan.CHECKPOINT_DIR))
    try:
        # Restored onto one device of this process (a target with shardings: any topology restores).
        got_step, state, _ = checkpoint.restore(mngr, gan.abstract_state(cfg, parallel.make_mesh(1)), step)
    finally:
        mngr.close()
    assert got_step == step
    return jax.tree_util.tree_map(np.asarray, {k: state[k] for k in ("g_params", "d_params", "g_opt", "d_opt")})


def _assert_close(a, b):
    leaves_a, tree_a = jax.tree_util.tree_flatten(a)
    leaves_b, tree_b = jax.tree_util.tree_flatten(b)
    assert tree_a == tree_b
    for x, y in zip(leaves_a, leaves_b):
        # float32 all-reduces in a different order (gloo across processes, XLA within one).
        np.testing.assert_allclose(x, y, rtol=2e-4, atol=2e-6)


@pytest.mark.slow
def test_two_processes_train_like_one_process_with_two_devices(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    # One process, two devices, checkpoints at steps 2 and 3 (the noise-quality side measures off).
    _train(one, 3, 1, "--checkpoint_every=2", "--quality_clips=0")
    # Two processes, one device each, from scratch to step 2 (quality measures on: they read
    # replicated arrays back on every process).
    _train(two, 2, 2)
    _assert_close(_params(one, 2), _params(two, 2))
    # Written once: one checkpoint folder per step and one metrics line per logged step.
    steps = sorted(int(d) for d in os.listdir(two / gan.CHECKPOINT_DIR) if d.isdigit())
    assert steps == [2], os.listdir(two / gan.CHECKPOINT_DIR)
    with open(two / gan.METRICS_FILE) as f:
        recs = [json.loads(line) for line in f]
    assert [r["step"] for r in recs if r["kind"] == "train"] == [2]
    assert [r["step"] for r in recs if r["kind"] == "quality"] == [2]
    # The 2-process run resumed in one process reaches the same step 3.
    _train(two, 3, 1, "--quality_clips=0")
    three = _params(one, 3)
    _assert_close(three, _params(two, 3))
    # ... and the step moved the parameters (the comparison is not of two untouched copies).
    moved = jax.tree_util.tree_map(lambda a, b: float(np.max(np.abs(a - b))), three["g_params"],
                                   _params(one, 2)["g_params"])
    assert max(jax.tree_util.tree_leaves(moved)) > 1e-6


def _attack(out, cache, processes: int) -> None:
    _launch([sys.executable, "-m", "experiments.attack", "--task=commands", "--config=tiny", "--data_size=tiny",
             "--folds=2", "--epochs=1", "--batch_size=8", f"--cache_dir={cache}", f"--out={out}"], processes)


@pytest.mark.slow
def test_attack_over_two_processes_matches_one_process(tmp_path):
    """experiments.attack on two processes: the same folds, per-example outcomes and losses as one
    process with two devices (the evaluation gathers the per-example arrays from every process)."""
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    _attack(one, tmp_path / "cache", 1)      # also builds the embedded corpus's store, once
    _attack(two, tmp_path / "cache", 2)
    with open(one) as f:
        a = [json.loads(line) for line in f]
    with open(two) as f:
        b = [json.loads(line) for line in f]
    assert [r["kind"] for r in a] == [r["kind"] for r in b] == ["fold", "fold", "summary"]
    for x, y in zip(a, b):
        assert x["accuracy"] == y["accuracy"]
        if x["kind"] == "fold":
            assert y["devices"]["process_count"] == 2 and y["devices"]["num_devices"] == 2
            assert x["outcomes"] == y["outcomes"]
            np.testing.assert_allclose(y["loss"], x["loss"], rtol=1e-5)
