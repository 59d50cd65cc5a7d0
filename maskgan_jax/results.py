"""Result files: JSON lines written atomically, with the versions and host of the run."""
from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata as md
import json
import os
import platform
import tempfile
from pathlib import Path
from typing import Any, Iterable

import numpy as np


def _default(o: Any):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if hasattr(o, "__dataclass_fields__"):
        return dataclasses.asdict(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def dumps(record: dict) -> str:
    """One JSON line (numpy scalars/arrays and dataclasses converted)."""
    return json.dumps(record, default=_default, sort_keys=False)


def fingerprint(obj: Any) -> str:
    """A short hash of a JSON-able object (what decides a result's numbers)."""
    return hashlib.sha256(dumps(obj).encode()).hexdigest()[:16]


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Writes a text file atomically (unique temp file in the same folder, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_jsonl_atomic(path: str | os.PathLike, records: Iterable[dict]) -> None:
    """Writes a whole JSON-lines file atomically (temp file + rename in the same folder)."""
    write_text_atomic(path, "".join(dumps(r) + "\n" for r in records))


def append_jsonl(path: str | os.PathLike, record: dict) -> None:
    """Appends one record as a single write (whole line, flushed and fsynced)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """All complete records of a JSON-lines file (a torn last line is ignored)."""
    out = []
    p = Path(path)
    if not p.exists():
        return out
    with open(p) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


def versions() -> dict:
    """Versions of the libraries that decide the numbers, for every result record."""
    v = {"python": platform.python_version()}
    for pkg in ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy", "numba", "soundfile"):
        try:
            v[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    try:
        v["maskgan-jax"] = md.version("maskgan-jax")
    except md.PackageNotFoundError:
        pass
    return v
