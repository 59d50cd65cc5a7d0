"""Shared benchmark helpers: timing, the same-run matmul peak, the torch peer runner."""
from __future__ import annotations

import dataclasses
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
PEERS_DIR = ROOT.parent / "shared" / "peers"
PEER_VENV = ROOT / ".venv-peers"


@dataclasses.dataclass
class Context:
    """What every suite gets: repeat counts, quick mode, and a cache for the matmul peak."""
    repeats: int = 5
    warmup: int = 1
    quick: bool = False
    peer_python: str | None = None
    _cache: dict = dataclasses.field(default_factory=dict)

    def matmul_peak(self) -> dict:
        """Best dense float32 matmul FLOP/s of jitted JAX in this run (cached)."""
        if "matmul" not in self._cache:
            self._cache["matmul"] = measure_matmul_peak(quick=self.quick)
        return self._cache["matmul"]


def machine() -> dict:
    """A short description of the host for every record."""
    import jax
    return {"host": platform.node(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
            "jax": jax.__version__, "backend": jax.default_backend(),
            "device": str(jax.devices()[0].device_kind),
            "date": datetime.date.today().isoformat()}


def time_call(fn: Callable[[], Any], repeats: int = 5, warmup: int = 1) -> dict:
    """Median/min wall seconds of ``fn()`` (fn must block until its result is ready), and the warm-up's."""
    t0 = time.perf_counter()
    for _ in range(warmup):
        fn()
    warmup_s = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(times), "min_s": min(times), "times_s": times, "warmup_s": warmup_s}


def alternate(fns: dict[str, Callable[[], float]], rounds: int) -> dict[str, dict]:
    """Runs several timed callables in alternation (a, b, a, b, ...) and returns medians.

    Each callable returns the seconds of one measurement. Alternation spreads machine noise
    evenly over the contenders, which is what makes their ratio meaningful.
    """
    got: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for k, f in fns.items():
            got[k].append(float(f()))
    return {k: {"median_s": statistics.median(v), "min_s": min(v), "times_s": v} for k, v in got.items()}


def measure_matmul_peak(quick: bool = False, sizes=None, dtype: str = "float32", precision=None,
                        repeats: int | None = None) -> dict:
    """Best jitted dense-matmul FLOP/s over a few square sizes (the roofline here).

    Defaults: float32 at the backend's default precision, sizes 512-2048.
    """
    import jax
    import jax.numpy as jnp
    best = {"flops_per_s": 0.0}
    for n in sizes or ([512, 1024] if quick else [512, 1024, 2048]):
        a = jnp.asarray(np.random.default_rng(0).standard_normal((n, n), np.float32), dtype)
        f = jax.jit(lambda x, y: jnp.dot(x, y, precision=precision))
        t = time_call(lambda: f(a, a).block_until_ready(), repeats=repeats or (3 if quick else 7), warmup=2)
        fl = 2.0 * n ** 3 / t["min_s"]
        if fl > best["flops_per_s"]:
            best = {"flops_per_s": fl, "n": n}
    return best


def peer_python(ctx: Context) -> str | None:
    """The python of the torch virtualenv (.venv-peers), or None when it is absent."""
    if ctx.peer_python:
        return ctx.peer_python
    p = PEER_VENV / "bin" / "python"
    return str(p) if p.exists() else None


def run_peer(ctx: Context, script: str, args: list[str], timeout: float = 1800) -> dict | None:
    """Runs a torch peer from ../shared/peers and returns its JSON line (None if unavailable)."""
    py = peer_python(ctx)
    path = PEERS_DIR / script
    if py is None or not path.exists():
        print(f"[bench] peer {script} skipped: need {PEER_VENV} with torch==2.13.0 "
              f"(python3 -m venv .venv-peers && .venv-peers/bin/pip install torch==2.13.0 numpy)",
              file=sys.stderr)
        return None
    out = subprocess.run([py, str(path), *args], capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"peer {script} {' '.join(args)} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def record(suite: str, name: str, **fields) -> dict:
    """One benchmark record: suite, figure name and its fields."""
    rec = {"kind": "bench", "suite": suite, "name": name}
    rec.update(fields)
    return rec


# What a record's summary row shows: the first of these fields that it has.
_OURS = ("value", "step_s", "seconds", "median_s", "clips_per_s", "flops_per_s")
_PEER = ("peer_value", "peer_step_s", "peer_seconds", "statsmodels_seconds", "numpy_sum_seconds")
_RATIO = ("speedup_vs_peer", "ratio", "speedup", "ratio_to_numpy_sum", "fraction_of_matmul_peak")


def _fmt(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, (int, float)):
        return f"{v:.4g}"
    return str(v)


def summary_table(records: list[dict]) -> str:
    """A short text table of a run: figure, ours, peer (or reference), ratio and what the ratio is."""
    rows = [("figure", "ours", "peer / reference", "ratio", "")]
    for r in records:
        ours = next(((k, r[k]) for k in _OURS if k in r), (None, None))
        peer = next(((k, r[k]) for k in _PEER if k in r), (None, None))
        ratio = next(((k, r[k]) for k in _RATIO if k in r), (None, None))
        unit = r.get("unit") or (ours[0] or "")
        rows.append((f"{r.get('suite', '?')}/{r.get('name', '?')}", f"{_fmt(ours[1])} {unit}".strip(),
                     _fmt(peer[1]), _fmt(ratio[1]), ratio[0] or r.get("reason", "")))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows)
