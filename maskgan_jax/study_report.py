"""The study's report stage: merges every cell and randomness record in the output folder into report.md."""
from __future__ import annotations

import json
import os

from maskgan_jax import attack, audio, gan, gan_export, report, results
from maskgan_jax.data import store, synthetic
from maskgan_jax.study_cells import read_all_cells
from maskgan_jax.study_config import StudyConfig
from maskgan_jax.study_gan import gan_workdir, latest_step, read_quality


def _records(out_dir: str, stage: str) -> list[dict]:
    folder = os.path.join(out_dir, stage)
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


def _read_json(path: str) -> dict | None:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def describe_attacker(a: attack.AttackConfig) -> str:
    """One line of an attacker family's sizes and training recipe."""
    m = a.model
    if m.model == "probe":
        return (f"probe: L2 logistic regression on {4 * a.mel.n_mels + 1} log-mel statistics, "
                f"L2 chosen on validation from {list(a.probe_l2_grid)}")
    parts = []
    if m.model in ("cnn", "crnn"):
        parts.append(f"conv channels {','.join(map(str, m.channels))}" + (", LayerNorm" if m.norm == "layer" else ""))
    if m.model in ("rnn", "crnn"):
        parts.append(f"{m.layers}×{m.cell.upper()} {m.hidden}")
    if m.input_stats:
        parts.append("readout also on input statistics")
    aug = [x for x, on in ((f"time shift ±{a.time_shift:g}", a.time_shift > 0),
                           (f"{a.time_masks}+{a.freq_masks} SpecAugment masks", a.time_masks + a.freq_masks > 0)) if on]
    return (f"{m.model}: {'; '.join(parts)}; {a.mel.n_mels} mels; batch {a.batch_size}, AdamW lr {a.learning_rate:g} "
            f"({a.schedule}), weight decay {a.weight_decay:g}, ≥ {a.min_steps} steps, ≤ {a.epochs} epochs, "
            f"best validation kept" + (f"; {', '.join(aug)}" if aug else ""))


def provenance(cfg: StudyConfig, out_dir: str) -> dict:
    """What the study ran on, read from the output folder: corpora, stores, MaskGAN, attackers, levels."""
    given = dict(cfg.data_dirs)
    corpora = []
    for task in cfg.tasks:
        index = _read_json(os.path.join(out_dir, "stores", task, store.INDEX)) or {}
        c = {"task": task, "items": index.get("num_items"), "broken": index.get("num_broken", 0),
             "synthetic": task not in given}
        if task in given:
            c["root"] = given[task]
        else:
            man = synthetic.read_manifest(os.path.join(out_dir, "corpora", synthetic.layout_name(task))) or {}
            params = man.get("params", {})
            c.update(generator=params.get("generator", "maskgan_jax.data.synthetic"), seed=params.get("seed"),
                     size=params.get("size"))
        corpora.append(c)
    out = {"corpora": corpora, "synthetic": any(c["synthetic"] for c in corpora),
           "families": list(cfg.models), "attack_config": cfg.name,
           "attackers": [describe_attacker(dict(cfg.attack)[m]) for m in cfg.models if m in dict(cfg.attack)],
           "folds": dict(cfg.attack)[cfg.models[0]].folds if cfg.models else None, "seeds": list(cfg.seeds),
           "levels": list(cfg.levels), "speech_spl": cfg.speech_spl, "adversaries": list(cfg.adversaries)}
    if "gan" in cfg.noises:
        wd = gan_workdir(cfg, out_dir)
        gcfg = _read_json(os.path.join(wd, gan.CONFIG_FILE))
        if gcfg:
            q = read_quality(out_dir)
            what = (f"WaveGAN d={gcfg.get('dim')}, {gcfg.get('slice_len')} samples, batch {gcfg.get('batch_size')}, "
                    f"{gcfg.get('loss')}, latent {gcfg.get('latent_dim')}, target {gcfg.get('target')}")
            ex = (q or {}).get("export")
            if ex:
                mins = (ex.get("training_seconds") or 0) / 60
                where = ("the packaged default generator `maskgan_jax/assets/maskgan_default`"
                         if os.path.realpath(wd) == os.path.realpath(gan_export.DEFAULT_GENERATOR) else f"`{wd}`")
                out["gan"] = {"summary": f"{what}; {where}, trained {ex.get('step')} steps ({mins:.0f} min) by "
                                         f"`{ex.get('command')}` at commit {str(ex.get('commit'))[:10]}"}
            else:
                out["gan"] = {"summary": f"{what}; trained {latest_step(wd)} steps by this study "
                                         f"(`{os.path.relpath(wd, out_dir)}`)"}
            if q:
                out["gan"]["quality"] = {"passed": q["passed"], "gate": q["gate"], "export_gate": (ex or {}).get("gate"),
                                         "line": "all measures pass" if q["passed"]
                                         else "failed: " + ", ".join(q["failed"])}
    return out


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
    info["config"] = "`study_config.json`"
    info["provenance"] = provenance(cfg, out_dir)
    return report.write_report(out_dir, records, _records(out_dir, "randomness") + _records(out_dir, "utility"),
                               info, _examples(out_dir),
                               seed=cfg.report_seed, reference_level=cfg.reference_level)
