"""The study's MaskGAN stage: train (or resume, or find finished) the generator whose noise is swept."""
from __future__ import annotations

import os

from maskgan_jax import checkpoint, gan, masking, results
from maskgan_jax.study_config import StudyConfig


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
    from maskgan_jax import masker
    return masker.identity(cfg.masker_workdir) if "optimised" in cfg.noises else None


def stage_gan(cfg: StudyConfig, out_dir: str, log) -> dict:
    """Trains (or resumes, or finds finished) the MaskGAN; returns its identity for fingerprints."""
    workdir = gan_workdir(cfg, out_dir)
    before = latest_step(workdir)
    if cfg.gan is not None:
        # gan.train resumes, refuses a workdir trained with a different model, and does
        # nothing when the checkpoint already has the steps asked for.
        gan.train(cfg.gan, workdir, log_fn=log)
        masking.clear_programs()
    elif not os.path.isdir(workdir):
        raise ValueError(f"gan_workdir {workdir}: no trained MaskGAN there")
    config = gan.read_config(workdir).to_json()
    step = latest_step(workdir)
    return {"workdir": workdir, "config": config, "step": step, "computed": step != before,
            "fingerprint": results.fingerprint({"config": config, "step": step})}


def latest_step(workdir: str) -> int | None:
    """The latest checkpoint step of a MaskGAN workdir (None without one)."""
    if not os.path.isdir(os.path.join(workdir, gan.CHECKPOINT_DIR)):
        return None
    mngr = checkpoint.manager(os.path.join(workdir, gan.CHECKPOINT_DIR))
    try:
        return checkpoint.latest_step(mngr)
    finally:
        mngr.close()
