"""Speech utility as people hear it: STOI, extended STOI and wideband PESQ of masked against clean speech.

For the room channel, the reference is the listener's clean (reverberant) speech and the
degraded signal the listener's masked speech (``room.room_mix``); any pair of float
clips of the same length works. Scores come from the packages the literature uses:
``pystoi`` (STOI, Taal et al. 2011; extended STOI, Jensen & Taal 2016; it resamples to
10 kHz and drops silent frames itself) and ``pesq`` (ITU-T P.862.2 wideband, 16 kHz only,
MOS-LQO from about 1.04 to 4.64). Neither depends on the clips' absolute level.

Clips that cannot be scored are reported, not fatal: PESQ raises on a reference without
speech (``NoUtterancesError``) or a clip shorter than about a quarter second
(``BufferTooShortError``), and neither metric means anything for an all-zero reference
(an all-zero degraded clip is scored by STOI, not by PESQ); STOI needs 30 frames (384 ms) of speech left after dropping
silent frames (pystoi otherwise warns and returns 1e-5). Such a clip scores NaN for that
metric and gets a record in ``Scores.failures``. Clips with non-finite samples are a
ValueError naming them.

Scoring runs on the host. Batches are split over worker processes (``host_workers``; the
PESQ C code holds the GIL, so threads would not help); small batches run in process.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import warnings
from typing import NamedTuple, Sequence

import numpy as np
import pesq as _pesq
from pystoi import stoi as _stoi

from maskgan_jax import host_workers

METRICS = ("stoi", "estoi", "pesq_wb")
# Below this many clips per worker, starting processes costs more than it saves.
MIN_CLIPS_PER_WORKER = 8


class IntelligibilityError(ValueError):
    """A clip pair that a metric cannot score (too short, no speech)."""


class Scores(NamedTuple):
    """Per-clip scores [N] (float64, NaN where a clip could not be scored) and the failures.

    ``failures``: one dict per failed (clip, metric): ``{"clip", "metric", "error"}``.
    Metrics not asked for are all NaN.
    """
    stoi: np.ndarray
    estoi: np.ndarray
    pesq_wb: np.ndarray
    failures: list

    def summary(self) -> dict:
        """Mean of each metric over the clips it scored, and how many it scored (plain JSON)."""
        out = {}
        for m in METRICS:
            v = getattr(self, m)
            ok = np.isfinite(v)
            out[m] = float(np.mean(v[ok])) if ok.any() else None
            out[f"{m}_n"] = int(ok.sum())
        out["failures"] = len(self.failures)
        return out


def stoi(clean, degraded, sample_rate: int = 16000, extended: bool = False) -> float:
    """STOI (or extended STOI) of one degraded clip against its clean reference (pystoi)."""
    x, y = _pair(clean, degraded)
    if not np.any(x):
        raise IntelligibilityError("silent reference (all-zero clean clip)")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        score = float(_stoi(x, y, int(sample_rate), extended=extended))
    for w in caught:
        if "Not enough STFT frames" in str(w.message):
            raise IntelligibilityError("fewer than 30 frames (384 ms) of speech after dropping silent frames")
    if not np.isfinite(score):
        raise IntelligibilityError(f"score is {score} (silent reference?)")
    return score


def pesq_wb(clean, degraded, sample_rate: int = 16000) -> float:
    """Wideband PESQ (ITU-T P.862.2, MOS-LQO) of one degraded clip against its clean reference."""
    if int(sample_rate) != 16000:
        raise ValueError(f"wideband PESQ needs 16 kHz audio, got sample_rate={sample_rate}; resample first")
    x, y = _pair(clean, degraded)
    # An all-zero clip reaches the C code as NaN (pesq divides by the clips' peak) or as no speech.
    for name, v in (("reference (clean)", x), ("degraded", y)):
        if not np.any(v):
            raise IntelligibilityError(f"silent {name} clip")
    try:
        return float(_pesq.pesq(16000, x, y, "wb"))
    except _pesq.PesqError as e:
        msg = e.args[0] if e.args else ""
        msg = msg.decode(errors="replace") if isinstance(msg, bytes) else str(msg)
        raise IntelligibilityError(f"{type(e).__name__}: {msg}") from None
    except ValueError as e:  # the C wrapper's own failures on degenerate input
        raise IntelligibilityError(f"pesq failed: {e}") from None


def _pair(clean, degraded):
    x = np.asarray(clean, np.float64)
    y = np.asarray(degraded, np.float64)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError(f"clean and degraded must be 1-D clips of the same length, got {x.shape} and {y.shape}")
    return x, y


_SCORERS = {
    "stoi": lambda x, y, fs: stoi(x, y, fs),
    "estoi": lambda x, y, fs: stoi(x, y, fs, extended=True),
    "pesq_wb": lambda x, y, fs: pesq_wb(x, y, fs),
}


def _score_range(clean_NxT, degraded_NxT, start: int, stop: int, metrics, sample_rate: int):
    out = {m: np.full(stop - start, np.nan) for m in METRICS}
    failures = []
    for i in range(start, stop):
        for m in metrics:
            try:
                out[m][i - start] = _SCORERS[m](clean_NxT[i], degraded_NxT[i], sample_rate)
            except IntelligibilityError as e:
                failures.append({"clip": i, "metric": m, "error": str(e)})
    return out, failures


def _check(clean_NxT, degraded_NxT, metrics, sample_rate):
    c = np.asarray(clean_NxT)
    d = np.asarray(degraded_NxT)
    if c.ndim == 1 and d.ndim == 1:
        c, d = c[None], d[None]
    if c.ndim != 2 or c.shape != d.shape or c.shape[1] == 0:
        raise ValueError(f"clean and degraded must both be [N, T] (or [T]) with T > 0, "
                         f"got {np.shape(clean_NxT)} and {np.shape(degraded_NxT)}")
    for name, a in (("clean", c), ("degraded", d)):
        if not np.issubdtype(a.dtype, np.floating):
            raise TypeError(f"{name} must be float audio, got dtype {a.dtype}")
        bad = np.nonzero(~np.isfinite(a).all(axis=1))[0]
        if bad.size:
            raise ValueError(f"{name}: clip(s) {bad[:10].tolist()} have non-finite samples")
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; known: {list(METRICS)}")
    if "pesq_wb" in metrics and int(sample_rate) != 16000:
        raise ValueError(f"wideband PESQ needs 16 kHz audio, got sample_rate={sample_rate}; resample first")
    return c.astype(np.float32, copy=False), d.astype(np.float32, copy=False)


def intelligibility(clean_NxT, degraded_NxT, sample_rate: int = 16000, metrics: Sequence[str] = METRICS,
                    workers: int | None = None) -> Scores:
    """STOI, extended STOI and wideband PESQ of each degraded clip against its clean clip.

    ``workers``: processes to use (default: the CPU count, keeping at least
    MIN_CLIPS_PER_WORKER clips per process; 1 runs in this process). The scores are the same
    either way up to float rounding (workers run one BLAS thread).
    """
    metrics = tuple(metrics)
    c, d = _check(clean_NxT, degraded_NxT, metrics, sample_rate)
    n = c.shape[0]
    if workers is None:
        workers = host_workers.default_workers(n // MIN_CLIPS_PER_WORKER)
    workers = max(1, min(int(workers), n))
    if workers == 1:
        got, failures = _score_range(c, d, 0, n, metrics, sample_rate)
        return Scores(*(got[m] for m in METRICS), failures)
    return _parallel(c, d, metrics, sample_rate, workers)


def _parallel(c, d, metrics, sample_rate, workers) -> Scores:
    n = c.shape[0]
    bounds = np.linspace(0, n, workers + 1).astype(int)
    with tempfile.TemporaryDirectory(prefix="maskgan-intelligibility-") as tmp:
        cp, dp = os.path.join(tmp, "clean.npy"), os.path.join(tmp, "degraded.npy")
        np.save(cp, c)
        np.save(dp, d)
        outs = [os.path.join(tmp, f"scores-{w}.npz") for w in range(workers)]
        host_workers.run("maskgan_jax.intelligibility",
                         [[cp, dp, str(bounds[w]), str(bounds[w + 1]), ",".join(metrics), str(int(sample_rate)),
                           outs[w]] for w in range(workers)],
                         f"scoring {n} clips ({', '.join(metrics)})")
        parts, failures = {m: [] for m in METRICS}, []
        for out in outs:
            with np.load(out, allow_pickle=False) as z:
                for m in METRICS:
                    parts[m].append(z[m])
                failures.extend(json.loads(str(z["failures"][()])))
    return Scores(*(np.concatenate(parts[m]) for m in METRICS), failures)


def _worker_main(argv: list[str]) -> None:
    cp, dp, start, stop, metrics, sample_rate, out = argv
    c = np.load(cp, mmap_mode="r", allow_pickle=False)
    d = np.load(dp, mmap_mode="r", allow_pickle=False)
    got, failures = _score_range(c, d, int(start), int(stop), metrics.split(","), int(sample_rate))
    tmp = out + ".tmp.npz"
    np.savez(tmp, failures=np.array(json.dumps(failures)), **got)
    os.replace(tmp, out)


if __name__ == "__main__":
    _worker_main(sys.argv[1:])
