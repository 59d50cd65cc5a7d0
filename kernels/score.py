"""Randomness scores of int16 PCM: per-clip batches for the study, and per-file scoring.

Both tests run on the integer (int16 PCM) representation: Wald–Wolfowitz with the
median cutoff and statsmodels' conventions, Cox–Stuart two-sided. ``cs_z`` is the
standardised sign statistic (2 S - m) / sqrt(m) (0 when m = 0), reported so that both
tests have a mean z in summaries.
"""
from __future__ import annotations

import math
import os
import time
from typing import Callable, Iterable, Iterator

import numpy as np

from kernels.cox_stuart import cox_stuart, cox_stuart_batch
from kernels.runs import wald_wolfowitz, wald_wolfowitz_batch

TESTS = {"wald_wolfowitz": "ww", "cox_stuart": "cs"}
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".au")


def _cs_z(stat, pairs):
    stat = np.asarray(stat, np.float64)
    pairs = np.asarray(pairs, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pairs > 0, (2.0 * stat - pairs) / np.sqrt(np.maximum(pairs, 1.0)), 0.0)


def score_clips(int16_CxT, num_threads: int | None = None) -> dict[str, np.ndarray]:
    """Per-clip Wald–Wolfowitz (median cutoff) and two-sided Cox–Stuart scores of an int16
    [clips, samples] array, in parallel over clips, as a dict of arrays."""
    x = np.asarray(int16_CxT)
    if x.dtype != np.int16:
        raise ValueError(f"score_clips: expected int16 PCM clips, got dtype {x.dtype}")
    if x.ndim != 2:
        raise ValueError(f"score_clips: expected a [clips, samples] array, got shape {x.shape}")
    ww = wald_wolfowitz_batch(x, num_threads=num_threads)
    cs = cox_stuart_batch(x, num_threads=num_threads)
    return {"ww_z": ww.z, "ww_p": ww.p, "ww_runs": ww.runs, "ww_n1": ww.n1, "ww_n2": ww.n2,
            "cs_z": _cs_z(cs.statistic, cs.n_pairs), "cs_p": cs.p,
            "cs_statistic": cs.statistic, "cs_n_pairs": cs.n_pairs}


def score_wave(pcm_int16) -> dict:
    """Both tests on one int16 PCM array, as a flat dict of Python numbers."""
    ww = wald_wolfowitz(pcm_int16)
    cs = cox_stuart(pcm_int16)
    return {"samples": int(np.asarray(pcm_int16).size),
            "ww_z": ww.z, "ww_p": ww.p, "ww_runs": ww.runs, "ww_n1": ww.n1, "ww_n2": ww.n2,
            "cs_z": float(_cs_z(cs.statistic, cs.n_pairs)), "cs_p": cs.p,
            "cs_statistic": cs.statistic, "cs_n_pairs": cs.n_pairs}


def summarize(records: Iterable[dict]) -> dict:
    """Mean p, mean z and fraction of p < 0.05 per test over per-file (or per-clip) records."""
    recs = list(records)
    out = {}
    for test, pre in TESTS.items():
        p = np.array([r[f"{pre}_p"] for r in recs], np.float64)
        z = np.array([r[f"{pre}_z"] for r in recs], np.float64)
        out[test] = {"n": int(p.size),
                     "mean_p": float(p.mean()) if p.size else math.nan,
                     "mean_z": float(z.mean()) if z.size else math.nan,
                     "frac_p_below_0.05": float((p < 0.05).mean()) if p.size else math.nan}
    return out


def find_audio(inputs: Iterable[str]) -> list[str]:
    """Audio files named by ``inputs`` (files, or folders searched recursively), sorted."""
    found = []
    for item in inputs:
        if os.path.isdir(item):
            for root, dirs, files in os.walk(item):
                dirs.sort()
                found += [os.path.join(root, f) for f in sorted(files)
                          if f.lower().endswith(AUDIO_EXTENSIONS)]
        elif os.path.isfile(item):
            found.append(item)
        else:
            raise ValueError(f"{item}: no such file or folder")
    return found


def score_files(paths: list[str], load: Callable[[str], np.ndarray],
                progress: Callable[[int], None] | None = None) -> Iterator[dict]:
    """Yields one record per file: its scores, or ``kind: "error"`` with the reason when the
    file cannot be read or scored (it is reported and skipped, never fatal)."""
    for path in paths:
        t0 = time.perf_counter()
        try:
            pcm = np.asarray(load(path))
            if pcm.dtype != np.int16:
                raise ValueError(f"the loader must return int16 PCM, got {pcm.dtype}")
            if pcm.ndim != 1 or pcm.size == 0:
                raise ValueError(f"expected non-empty mono audio, got shape {pcm.shape}")
            rec = {"kind": "file", "path": path, **score_wave(pcm),
                   "seconds": time.perf_counter() - t0}
        except (ValueError, OSError) as e:   # a broken file (AudioError is a ValueError) is reported
            rec = {"kind": "error", "path": path, "error": f"{type(e).__name__}: {e}"}
        if progress is not None:
            progress(1)
        yield rec
