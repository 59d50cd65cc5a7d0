"""The study: one resumable pipeline from corpora to report, one call per stage.

corpora (embedded, or the real datasets' folders; `study_data`) -> array stores
(`study_data`) -> MaskGAN training, resumable (`study_gan`) -> example noises
(`study_noises`) -> randomness of clean and masked audio (`study_randomness`) -> speech
utility as heard, STOI and PESQ (`study_utility`) -> attack cells (`study_cells`) -> report
(`study_report`). Each stage is cached in the output folder
and skipped when its result is already there. Cells are independent, so
``worker``/``num_workers`` split them across processes or machines sharing one output
folder; the shared stages are built once under a file lock, and the report merges
whatever cells exist.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import platform
import socket
import sys
import time
from typing import Any, Callable

import jax

from maskgan_jax import results
from maskgan_jax.study_cells import cell_env, stage_cells
from maskgan_jax.study_config import StudyConfig
from maskgan_jax.study_data import stage_corpora, stage_stores
from maskgan_jax.study_gan import stage_gan
from maskgan_jax.study_noises import stage_noises
from maskgan_jax.study_randomness import stage_randomness
from maskgan_jax.study_report import write_study_report
from maskgan_jax.study_utility import stage_utility

__all__ = ["StudyConfig", "Run", "run_study", "run_info_name"]

RUN_INFO = "run_info.json"


@contextlib.contextmanager
def _locked(out_dir: str, name: str):
    """An exclusive file lock so that concurrent workers build a shared stage once."""
    os.makedirs(os.path.join(out_dir, "locks"), exist_ok=True)
    with open(os.path.join(out_dir, "locks", name + ".lock"), "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _read_json(path: str) -> dict | None:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def run_info_name(worker: int = 0, num_workers: int = 1) -> str:
    """run_info.json for a lone run or worker 0; run_info.worker-K-of-N.json for the others.

    Workers sharing one output folder each time their own stages, so each keeps its own
    file instead of overwriting one another's.
    """
    return RUN_INFO if num_workers <= 1 or worker == 0 else f"run_info.worker-{worker}-of-{num_workers}.json"


class Run:
    """Run facts (stages, wall times, devices, versions) kept in ``OUT/run_info.json`` (see run_info_name)."""

    def __init__(self, out_dir: str, config: StudyConfig, log: Callable[[str], None], worker: int = 0,
                 num_workers: int = 1):
        self.out_dir, self.config, self.log = out_dir, config, log
        self.path = os.path.join(out_dir, run_info_name(worker, num_workers))
        old = _read_json(self.path) or {}
        self.info = {"config_name": config.name, "seeds": list(config.seeds), "stages": old.get("stages", {}),
                     "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                     "host": socket.gethostname(), "platform": platform.platform(),
                     "argv": sys.argv, "versions": results.versions()}

    @contextlib.contextmanager
    def stage(self, name: str):
        """Times a stage and records its wall time and status.

        A stage that finds its work already done sets ``status["computed"] = False``; the
        record of the run that computed it is then kept (its wall time, and when that run started).
        """
        t0 = time.perf_counter()
        self.log(f"[study] stage {name}")
        status = {"status": "running", "run_started": self.info["started"]}
        try:
            yield status
            if status["status"] == "running":
                status["status"] = "done"
        except BaseException:
            status["status"] = "failed"
            raise
        finally:
            status["wall_s"] = time.perf_counter() - t0
            old = self.info["stages"].get(name)
            if status.get("computed", True) or not old or old.get("status") != "done":
                self.info["stages"][name] = dict(status)
            else:
                old["reused_by_run_started"] = self.info["started"]
            self.save()
            self.log(f"[study] stage {name}: {status['status']} in {status['wall_s']:.1f} s"
                     + ("" if status.get("computed", True) else " (already done; nothing computed)"))

    def save(self) -> None:
        """Writes run_info.json atomically."""
        results.write_text_atomic(self.path, results.dumps(self.info))


def run_study(config: StudyConfig, out_dir: str, cells: str = "", worker: int = 0, num_workers: int = 1,
              report_only: bool = False, log: Callable[[str], None] | None = None,
              make_report: bool = True, engine: str = "local", ray_options: Any = None) -> dict[str, Any]:
    """Runs (or resumes) the whole study into ``out_dir`` and writes OUT/report.md; returns run facts.

    ``engine`` runs the cells stage here ('local') or as Ray tasks ('ray', `study_ray`, with
    ``ray_options``, a `study_ray.RayOptions`); every other stage runs here either way.
    """
    if engine not in ("local", "ray"):
        raise ValueError(f"engine={engine!r}: expected 'local' or 'ray'")
    cfg = config.validate()
    say = log or (lambda s: print(s, file=sys.stderr, flush=True))
    out_dir = os.path.abspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    results.write_text_atomic(os.path.join(out_dir, "study_config.json"), results.dumps(cfg.to_json()))
    run = Run(out_dir, cfg, say, worker, num_workers)
    run.info.update(devices=[str(d) for d in jax.devices()], worker=f"{worker}/{num_workers}",
                    cells_filter=cells, engine=engine)
    t_all = time.perf_counter()
    facts: dict = {}
    if not report_only:
        with _locked(out_dir, "data"):
            with run.stage("corpora") as st:
                roots, st["computed"] = stage_corpora(cfg, out_dir)
            with run.stage("stores") as st:
                stores, st["computed"] = stage_stores(cfg, out_dir, roots, say)
        gan_info = None
        if "gan" in cfg.noises:
            with _locked(out_dir, "gan"), run.stage("maskgan") as st:
                gan_info = stage_gan(cfg, out_dir, say)
                st.update(step=gan_info["step"], computed=gan_info["computed"])
        with _locked(out_dir, "noises"), run.stage("noises") as st:
            st["computed"] = stage_noises(cfg, out_dir, stores)
        with _locked(out_dir, "randomness"), run.stage("randomness") as st:
            st["computed"] = stage_randomness(cfg, out_dir, stores, gan_info["fingerprint"] if gan_info else None,
                                              say)
        with _locked(out_dir, "utility"), run.stage("utility") as st:
            st["computed"] = stage_utility(cfg, out_dir, stores, gan_info["fingerprint"] if gan_info else None, say)
        with run.stage("cells") as st:
            if engine == "ray":
                from maskgan_jax import study_ray   # Ray is imported only by this engine
                facts = study_ray.stage_cells_ray(cfg, out_dir, stores, gan_info, cells,
                                                  ray_options or study_ray.RayOptions(), say, worker, num_workers)
            else:
                facts = stage_cells(cfg, cell_env(cfg, out_dir, stores, gan_info, say), cells, worker, num_workers)
            st.update(facts, computed=facts["computed"] > 0)
    if make_report or report_only:
        with run.stage("report"):
            facts["report"] = write_study_report(cfg, out_dir, run.info)
    facts["wall_s"] = time.perf_counter() - t_all
    run.info["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    run.save()
    return facts
