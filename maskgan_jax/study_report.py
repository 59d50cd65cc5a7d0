"""The study's report stage: merges every cell and randomness record in the output folder into report.md."""
from __future__ import annotations

import os

from maskgan_jax import audio, report, results
from maskgan_jax.study_cells import read_all_cells
from maskgan_jax.study_config import StudyConfig


def _randomness_records(out_dir: str) -> list[dict]:
    folder = os.path.join(out_dir, "randomness")
    out = []
    if os.path.isdir(folder):
        for f in sorted(os.listdir(folder)):
            if f.endswith(".jsonl"):
                out.extend(results.read_jsonl(os.path.join(folder, f)))
    return out


def _examples(out_dir: str) -> dict:
    """The example clips the noises stage wrote (clean, white, GAN) for the spectrogram figure."""
    folder = os.path.join(out_dir, "noises")
    examples = {}
    if os.path.isdir(folder):
        for f in sorted(os.listdir(folder)):
            if f.endswith(".wav") and not f.endswith(".tmp.wav"):
                kind = f.split("_")[0]
                if kind in ("clean", "white", "gan"):
                    examples[kind] = audio.load_audio(os.path.join(folder, f))
    return examples


def write_study_report(cfg: StudyConfig, out_dir: str, run_info: dict | None = None) -> str:
    """Merges every cell and randomness record in ``out_dir`` into report.md and its figures."""
    records = read_all_cells(out_dir)
    total = cfg.cells()
    have = {r.get("cell") for r in records}
    missing = [c for c in total if c.id not in have]
    info = dict(run_info or {})
    info["cells_done"] = len(total) - len(missing)
    info["cells_total"] = len(total)
    if missing:
        info["missing"] = (f"{len(missing)} of {len(total)} cells have no result yet (e.g. "
                           + "; ".join(c.id for c in missing[:3]) + ")")
    info["config"] = f"`{os.path.join(out_dir, 'study_config.json')}`"
    return report.write_report(out_dir, records, _randomness_records(out_dir), info, _examples(out_dir),
                               seed=cfg.report_seed, reference_level=cfg.reference_level)
