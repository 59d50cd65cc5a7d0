"""The study's MaskGAN stage: the generator whose noise is swept, and its noise-quality gate.

The generator is either trained by the study (``cfg.gan``: into ``OUT/maskgan``, resumed, or
found finished) or used as it is (``cfg.gan_workdir``: a training workdir or an exported
generator folder such as the packaged default, `gan_export.DEFAULT_GENERATOR`). Either way
its noise is checked against the gate (`quality.gate`) before anything is compared with it;
the verdict is kept in ``OUT/maskgan_quality.json`` (recomputed only when the generator
changes) and the report refuses conclusions about GAN noise when it failed.
"""
from __future__ import annotations

import os
import time

from maskgan_jax import checkpoint, gan, gan_export, gan_load, masker, masking, results
from maskgan_jax.study_config import StudyConfig

QUALITY_FILE = "maskgan_quality.json"


def gan_workdir(cfg: StudyConfig, out_dir: str) -> str:
    """Where the study's MaskGAN lives."""
    return os.path.abspath(cfg.gan_workdir or os.path.join(out_dir, "maskgan"))


def noise_spec(cfg: StudyConfig, out_dir: str, noise: str) -> str:
    """The attack's --noise spelling of a study noise ("optimised": the config's trained masker)."""
    if noise == "optimised":
        return f"masker:{os.path.abspath(cfg.masker_workdir)}"
    return f"gan:{gan_workdir(cfg, out_dir)}" if noise == "gan" else noise


def masker_identity(cfg: StudyConfig) -> str | None:
    """What the study's "optimised" noise plays (`masker.identity`), None when it is not swept."""
    return masker.identity(cfg.masker_workdir) if "optimised" in cfg.noises else None


def stage_gan(cfg: StudyConfig, out_dir: str, log) -> dict:
    """Trains (or resumes, or finds finished, or loads exported) the MaskGAN and gates its noise;
    returns its identity for fingerprints and the gate's verdict."""
    workdir = gan_workdir(cfg, out_dir)
    exported = cfg.gan is None and gan_load.is_exported_generator(workdir)
    if exported:
        before = step = int(gan_load.export_info(workdir).get("step", 0))
    else:
        before = latest_step(workdir)
        if cfg.gan is not None:
            # gan.train resumes, refuses a workdir trained with a different model, and does
            # nothing when the checkpoint already has the steps asked for.
            gan.train(cfg.gan, workdir, log_fn=log)
            masking.clear_programs()
        elif not os.path.isdir(workdir):
            raise ValueError(f"gan_workdir {workdir}: no trained MaskGAN there")
        step = latest_step(workdir)
    config = gan.read_config(workdir).to_json()
    info = {"workdir": workdir, "config": config, "step": step, "exported": exported,
            "computed": step != before, "fingerprint": results.fingerprint({"config": config, "step": step})}
    info["quality"], gated = stage_gate(cfg, out_dir, info, log)
    info["computed"] = info["computed"] or gated
    return info


def stage_gate(cfg: StudyConfig, out_dir: str, gan_info: dict, log) -> tuple[dict, bool]:
    """(the gate's verdict on the study's generator, whether it was computed now): kept in
    ``OUT/maskgan_quality.json``, computed once per generator, gate size and seed."""
    path = os.path.join(out_dir, QUALITY_FILE)
    fp = results.fingerprint({"gan": gan_info["fingerprint"], "clips": cfg.gate_clips,
                              "classifier": cfg.gate_classifier, "seed": cfg.report_seed})
    old = results.read_jsonl(path)
    if old and old[-1].get("fingerprint") == fp:
        return old[-1], False
    workdir = gan_info["workdir"]
    t0 = time.perf_counter()
    log(f"[study] noise-quality gate of the MaskGAN on {cfg.gate_clips} clips"
        + (" (with the two-sample classifier)" if cfg.gate_classifier else ""))
    sample_fn, _ = gan_load.load_noise_sampler(workdir)
    config = gan.GanConfig.from_json(gan_info["config"])
    folder = gan_load.target_folder(config, workdir) if config.target.startswith("dir:") else None
    gate = gan_export.check_gate(sample_fn, config, cfg.gate_clips, seed=cfg.report_seed,
                                 classifier=cfg.gate_classifier, folder=folder)
    rec = {"kind": "maskgan_quality", "fingerprint": fp, "passed": gate["passed"], "failed": gate["failed"],
           "gate": gate, "seconds": time.perf_counter() - t0, "step": gan_info["step"],
           "exported": gan_info["exported"]}
    if gan_info["exported"]:
        ex = gan_load.export_info(workdir)
        last_run = (ex.get("trained_by") or [{}])[-1]
        rec["export"] = {**{k: ex.get(k) for k in ("step", "training_seconds", "generator_parameters", "gate")},
                         "command": last_run.get("command"), "commit": last_run.get("commit")}
    verdict = "passed" if gate["passed"] else "FAILED (" + ", ".join(gate["failed"]) + ")"
    log(f"[study] MaskGAN noise-quality gate: {verdict} in {rec['seconds']:.1f} s")
    results.write_jsonl_atomic(path, [rec])
    return rec, True


def read_quality(out_dir: str) -> dict | None:
    """The stored gate verdict of a study's MaskGAN (None before the maskgan stage ran)."""
    recs = results.read_jsonl(os.path.join(out_dir, QUALITY_FILE))
    return recs[-1] if recs else None


def latest_step(workdir: str) -> int | None:
    """The latest checkpoint step of a MaskGAN workdir (None without one)."""
    if not os.path.isdir(os.path.join(workdir, gan.CHECKPOINT_DIR)):
        return None
    mngr = checkpoint.manager(os.path.join(workdir, gan.CHECKPOINT_DIR))
    try:
        return checkpoint.latest_step(mngr)
    finally:
        mngr.close()
