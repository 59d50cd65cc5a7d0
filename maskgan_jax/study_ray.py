"""The study's cells on Ray: every training group one Ray task, the same per-cell files as the local engine.

``python -m experiments.study --engine=ray`` runs the shared stages (corpora, stores, MaskGAN,
noises, randomness, utility) in the driver as the local engine does, then submits each pending
training group (`study_grid.GroupKey`) as a Ray task. A task re-creates the group's
environment (`study_cells.cell_env`) in its worker from the picklable study config, the output
folder, the stores' folders and the MaskGAN's identity, and runs `study_cells.run_group`; no
jitted function, store memmap or device array crosses a process boundary. Its results are the
per-cell atomic files of the local engine, so:

* a rerun recomputes nothing (finished cells are skipped before Ray is started at all);
* a task whose worker dies (killed, out of memory) is retried (``max_retries``), as is one that
  raises (``retry_exceptions``); the retry resumes at the group's next unfinished fold
  (``OUT/partial/<group>.jsonl``);
* every worker must see the output folder at the same path (one machine, or a shared file system).

Workers are processes that raylet starts (fork + exec of a fresh Python), never forks of the
driver, so the driver's JAX runtime and thread pools are not copied. Each task's environment
(`worker_env_vars`) sizes its XLA and BLAS thread pools to the task's ``num_cpus``, keeps the
driver's JAX platform, and, for fractional GPU shares, turns off XLA's preallocation of 75 % of
device memory so that several tasks fit on one device.
"""
from __future__ import annotations

import dataclasses
import os
import time
from typing import Any, Callable

from maskgan_jax.data import store as store_lib
from maskgan_jax.progress import Progress
from maskgan_jax.study_cells import GroupEnv, cell_env, run_group, split_cells
from maskgan_jax.study_config import StudyConfig
from maskgan_jax.study_grid import Cell, GroupKey, group_cells

ENGINES = ("local", "ray")
# Thread pools a task keeps to its share of the CPUs (XLA's own is set through XLA_FLAGS).
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")


@dataclasses.dataclass(frozen=True)
class RayOptions:
    """How the cells run on Ray."""
    address: str = ""              # '' = start a local Ray; 'auto' or HOST:PORT = join that cluster
    num_cpus: int = 1              # CPUs per task: Ray's scheduling and the task's XLA/BLAS thread pools
    num_gpus: float = 0.0          # GPU share per task (0.5 = two tasks per GPU)
    local_cpus: int | None = None  # CPUs of a local Ray (None: every CPU of this machine)
    max_retries: int = 3           # resubmissions of a task whose worker died or that raised

    def validate(self) -> "RayOptions":
        """Raises ValueError naming the bad field."""
        if self.num_cpus < 1:
            raise ValueError(f"--ray_num_cpus={self.num_cpus}: need at least 1")
        if self.num_gpus < 0:
            raise ValueError(f"--ray_num_gpus={self.num_gpus}: need a share >= 0")
        if self.local_cpus is not None and self.local_cpus < self.num_cpus:
            raise ValueError(f"--ray_local_cpus={self.local_cpus} is below --ray_num_cpus={self.num_cpus}: "
                             "no task could be scheduled")
        if self.max_retries < 0:
            raise ValueError(f"--ray_max_retries={self.max_retries}: need >= 0")
        return self


def worker_env_vars(opts: RayOptions, environ: dict | None = None) -> dict[str, str]:
    """The environment of every task's worker (Ray's ``runtime_env`` env_vars).

    XLA's CPU client otherwise starts a thread pool as large as the machine, in every worker:
    N tasks on N cores would then run N x N threads. The driver's JAX_PLATFORMS is kept (a
    CPU-only task gets 'cpu' so that it never claims an accelerator), and its XLA_FLAGS are
    kept ahead of the thread flags (a forced host device count, say).
    """
    environ = os.environ if environ is None else environ
    n = str(int(opts.num_cpus))
    flags = environ.get("XLA_FLAGS", "").split()
    flags = [f for f in flags if "multi_thread_eigen" not in f and "intra_op_parallelism_threads" not in f]
    flags += ["--xla_cpu_multi_thread_eigen=false", f"intra_op_parallelism_threads={n}"]
    env = {"XLA_FLAGS": " ".join(flags), **{v: n for v in THREAD_VARS}}
    platforms = environ.get("JAX_PLATFORMS", "") or ("cpu" if opts.num_gpus == 0 else "")
    if platforms:
        env["JAX_PLATFORMS"] = platforms
    if 0 < opts.num_gpus < 1:
        env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
    return env


# --------------------------------------------------------------------------- the task (in a worker)

@dataclasses.dataclass(frozen=True)
class GroupJob:
    """Everything a worker needs to run one training group (picklable: configs, paths, fingerprints)."""
    config: StudyConfig
    out_dir: str
    stores: tuple                 # ((task, store folder, store fingerprint), ...)
    gan_info: dict | None
    group: GroupKey
    cells: tuple                  # the group's pending cells


def open_stores(stores: tuple) -> dict:
    """The stores of a job, each checked against the fingerprint the driver saw."""
    out = {}
    for task, folder, fp in stores:
        s = store_lib.open_store(folder)
        if s.fingerprint != fp:
            raise store_lib.StoreError(f"{folder}: the store changed since the study opened it "
                                       f"(fingerprint {s.fingerprint}, expected {fp})")
        out[task] = s
    return out


def job_env(job: GroupJob, log: Callable[[str], None]) -> GroupEnv:
    """The group's environment, re-created from the job (as the driver's `cell_env` makes it)."""
    return cell_env(job.config, job.out_dir, open_stores(job.stores), job.gan_info, log)


def run_job(job: GroupJob) -> dict:
    """Runs one group (the body of the Ray task); returns the cells written and the work counters."""
    t0 = time.perf_counter()
    env = job_env(job, lambda s: print(s, flush=True))
    written = run_group(job.group, list(job.cells), env)
    return {"group": job.group.name, "written": [r["cell"] for r in written], "counters": dict(env.counters),
            "seconds": time.perf_counter() - t0, "pid": os.getpid()}


# --------------------------------------------------------------------------- the driver

def connect(opts: RayOptions, log: Callable[[str], None] = print) -> bool:
    """Starts a local Ray or joins a cluster; True when this call started Ray (and should stop it).

    Ray starts its local processes (GCS, raylet, workers) by fork + exec. Call this before JAX
    starts its thread pools (the study binary does) so that no process forks a running JAX;
    a Ray already started is used as it is.
    """
    import ray
    if ray.is_initialized():
        return False
    if opts.address:
        log(f"[study] ray: joining the cluster at {opts.address}")
        ray.init(address=opts.address, log_to_driver=True)
    else:
        log(f"[study] ray: starting a local Ray with {opts.local_cpus or os.cpu_count()} CPU(s)")
        ray.init(num_cpus=opts.local_cpus, include_dashboard=False, log_to_driver=True)
    return True


def stage_cells_ray(cfg: StudyConfig, out_dir: str, stores: dict, gan_info: dict | None, cells_spec: str,
                    opts: RayOptions, log: Callable[[str], None], worker: int = 0, num_workers: int = 1) -> dict:
    """The cells stage on Ray: one task per pending group, a progress line over the cluster.

    Returns the facts of `study_cells.stage_cells` (selected, done_before, computed, counters)
    plus the engine and the tasks' wall times.
    """
    opts = opts.validate()
    env = cell_env(cfg, out_dir, stores, gan_info, log)
    mine, done, todo = split_cells(cfg, env, cells_spec, worker, num_workers)
    groups = group_cells(todo)
    log(f"[study] cells on ray: {len(mine)} selected, {len(done)} done, {len(todo)} to run "
        f"in {len(groups)} task(s)")
    counters = {"train_fold": 0, "evaluate": 0}
    facts = {"selected": len(mine), "done_before": len(done), "computed": 0, "counters": counters,
             "engine": "ray", "tasks": len(groups), "task_seconds": []}
    if not groups:
        return facts
    import ray
    started = connect(opts, log)
    try:
        store_refs = tuple((t, s.store_dir, s.fingerprint) for t, s in sorted(stores.items()))
        task = ray.remote(run_job).options(
            num_cpus=opts.num_cpus, num_gpus=opts.num_gpus, max_retries=opts.max_retries,
            retry_exceptions=True, runtime_env={"env_vars": worker_env_vars(opts)})
        pending: dict[Any, list[Cell]] = {}
        for group, cells in groups.items():
            job = GroupJob(cfg, out_dir, store_refs, gan_info, group, tuple(cells))
            pending[task.remote(job)] = cells
        prog = Progress(len(todo), f"[study] cells on ray (of {len(mine)}; {len(done)} done earlier)", "cells")
        failed = []
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=prog.interval)
            if not ready:
                prog.update(0)     # redraws elapsed time and ETA while tasks run
                continue
            cells = pending.pop(ready[0])
            try:
                got = ray.get(ready[0])
            except Exception as e:  # noqa: BLE001 -- retries are spent; the other tasks go on
                failed.append(f"{cells[0].group.name}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
                log(f"[study] ray task failed after {opts.max_retries} retries: {failed[-1]}")
                continue
            for k, v in got["counters"].items():
                counters[k] = counters.get(k, 0) + v
            facts["task_seconds"].append(got["seconds"])
            facts["computed"] += len(got["written"])
            for cid in got["written"]:
                log(f"[study] cell done: {cid}")
            prog.update(len(cells), force=True)
        prog.close()
        if failed:
            raise RuntimeError(f"{len(failed)} of {len(groups)} ray task(s) failed (finished cells are kept; "
                               "a rerun runs the rest): " + "; ".join(failed))
    finally:
        if started:
            ray.shutdown()
    return facts
