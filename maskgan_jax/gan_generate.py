"""Masking noise from a trained MaskGAN: calibrated 16-bit wav files and a report against the target.

Two outputs: ``num_clips`` separate clips (a folder of wavs), or one continuous stream of
``seconds`` built from consecutive clips overlapped with an equal-power cross-fade (the
clips are independent noise, so sin/cos fades keep the level constant and the seams do
not click). Every file is scaled to ``spl_db`` dB SPL through `levels.scale_to_spl`,
which refuses levels above the 45 dB SPL comfort limit unless explicitly allowed. The
report compares the output with the training target at the same level: RMS level,
spectral flatness, and the power spectrum's deviation from the target's per octave band;
under ``quality`` it carries every noise-quality measure of `quality.gate` and its verdict.
"""
from __future__ import annotations

import json
import os

import jax
import numpy as np

from maskgan_jax import audio, gan, gan_export, gan_load, gan_targets, levels, quality, results
from maskgan_jax.vocab import SAMPLE_RATE


def crossfade_concat(clips_NxT: np.ndarray, fade: int) -> np.ndarray:
    """Joins clips end to end, each seam an equal-power (sin/cos) cross-fade of ``fade`` samples."""
    clips = np.asarray(clips_NxT, np.float32)
    n, t = clips.shape
    if not 0 <= fade < t:
        raise ValueError(f"crossfade of {fade} samples must be shorter than a clip ({t})")
    if n == 1 or fade == 0:
        return clips.reshape(-1)
    ramp = (np.arange(fade, dtype=np.float64) + 0.5) / fade
    fade_in = np.sin(0.5 * np.pi * ramp).astype(np.float32)
    fade_out = np.cos(0.5 * np.pi * ramp).astype(np.float32)
    hop = t - fade
    out = np.zeros(hop * (n - 1) + t, np.float32)
    for i, c in enumerate(clips):
        c = c.copy()
        if i > 0:
            c[:fade] *= fade_in
        if i < n - 1:
            c[-fade:] *= fade_out
        out[i * hop:i * hop + t] += c
    return out


def generate_noise(workdir: str, out: str, num_clips: int | None = None, seconds: float | None = None,
                   spl_db: float = 45.0, allow_above_comfort: bool = False, seed: int = 0,
                   fullscale_spl: float = 90.0, crossfade_ms: float = 50.0, step: int | None = None,
                   target_dir: str | None = None, gate_clips: int = 32, gate_classifier: bool = True) -> dict:
    """Writes MaskGAN noise at ``spl_db`` dB SPL: ``num_clips`` wavs into folder ``out``, or one
    ``seconds``-long cross-faded stream to the wav ``out``; returns (and writes as JSON) the report.

    The report's ``quality`` is the noise-quality gate of ``gate_clips`` generated clips against
    as many target clips (0: none); ``gate_passed`` its verdict."""
    if (num_clips is None) == (seconds is None):
        raise ValueError("give exactly one of num_clips (separate clips) or seconds (one stream)")
    if num_clips is not None and num_clips < 1:
        raise ValueError(f"num_clips={num_clips} must be >= 1")
    if seconds is not None and not seconds > 0:
        raise ValueError(f"seconds={seconds} must be > 0")
    # Checked before any work: the comfort limit is a hard rule, not a warning.
    levels.scale_to_spl(np.ones(4, np.float32), spl_db, fullscale_spl, allow_above_comfort)
    sample_fn, info = gan_load.load_noise_sampler(workdir, step)
    config = gan.GanConfig.from_json(info["config"])
    t = config.slice_len
    key = jax.random.key(seed)
    k_gen, k_target = jax.random.split(key)
    fade = int(round(crossfade_ms * SAMPLE_RATE / 1000.0))
    if num_clips is not None:
        n = num_clips
    else:
        total = int(round(seconds * SAMPLE_RATE))
        n = max(1, -(-(total - fade) // (t - fade)))
    clips = gan_export.sample_clips(sample_fn, k_gen, n)
    if not np.isfinite(clips).all():
        raise FloatingPointError(f"the generator in {workdir} (step {info['step']}) produced non-finite samples")
    files = []
    if num_clips is not None:
        os.makedirs(out, exist_ok=True)
        scaled = levels.scale_to_spl(clips, spl_db, fullscale_spl, allow_above_comfort)
        for i, c in enumerate(scaled):
            path = os.path.join(out, f"maskgan_{i:05d}.wav")
            audio.save_wav(path, c, SAMPLE_RATE)
            files.append(path)
        report_path = os.path.join(out, "report.json")
        written = scaled
    else:
        stream = crossfade_concat(clips, fade)[:total]
        stream = levels.scale_to_spl(stream, spl_db, fullscale_spl, allow_above_comfort)
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        audio.save_wav(out, stream, SAMPLE_RATE)
        files.append(out)
        report_path = os.path.splitext(out)[0] + ".json"
        written = stream[None]
    # What was written, read back as 16-bit PCM: the level report is of the file itself.
    pcm = np.concatenate([audio.load_audio(f, SAMPLE_RATE) for f in files])
    folder = gan_load.target_folder(config, workdir, target_dir) if config.target.startswith("dir:") else None
    target = np.asarray(jax.jit(lambda k: gan_targets.sample_target(config, k, min(max(n, 4), 64)))(k_target)) \
        if folder is None else gan_targets.load_corpus(folder, t)[None]
    report = {"kind": "noise", "workdir": os.path.abspath(workdir), "step": info["step"], "seed": seed,
              "target": config.target, "spl_db": float(spl_db), "fullscale_spl": fullscale_spl,
              "allow_above_comfort": bool(allow_above_comfort),
              "above_comfort": bool(spl_db > levels.COMFORT_LIMIT_SPL),
              "mode": "clips" if num_clips is not None else "stream", "num_clips": n,
              "seconds": float(written.size / SAMPLE_RATE), "files": files, "crossfade_ms": crossfade_ms,
              **quality.compare_to_target(pcm, target)}
    if gate_clips:
        g = clips[:gate_clips] if n >= gate_clips else gan_export.sample_clips(sample_fn, jax.random.fold_in(k_gen, n), gate_clips)
        t_gate = gan_export.target_clips(config, jax.random.fold_in(k_target, 1), gate_clips, folder)
        report["quality"] = quality.gate(g, t_gate, seed=seed, classifier=gate_classifier)
        report["gate_passed"] = report["quality"]["passed"]
    report["measured_spl_db"] = float(levels.dbfs_to_spl(report["rms_dbfs"], fullscale_spl))
    report["peak_dbfs"] = float(20 * np.log10(max(np.max(np.abs(pcm)), 1e-12)))
    results.write_text_atomic(report_path, json.dumps(report, indent=1))
    report["report"] = report_path
    return report


def format_report(report: dict) -> str:
    """A few human-readable lines of a generate_noise report."""
    lines = [f"wrote {len(report['files'])} file(s), {report['seconds']:.2f} s at {report['measured_spl_db']:.2f} dB SPL "
             f"({report['rms_dbfs']:.2f} dBFS RMS, peak {report['peak_dbfs']:.2f} dBFS); report {report.get('report')}",
             f"spectral flatness {report['spectral_flatness']:.3f} (target {report['target']}: "
             f"{report['target_spectral_flatness']:.3f})",
             "octave band deviation from the target (dB): " + ", ".join(
                 f"{b['centre_hz']:g} Hz {b['deviation_db']:+.1f}" for b in report["octave_bands"])]
    if "quality" in report:
        lines.append(quality.format_gate(report["quality"]))
    return "\n".join(lines)
