"""The array store (reading): a corpus decoded once to int16 clips in a memory-mapped file plus an index.

Layout of a store folder (nothing is pickled; every file is JSON, raw int16 or ``.npy``):

  index.json     format, corpus name/task/root, sample rate, clip length, item count,
                 attributes and class names, per-item paths/groups/splits, fingerprint
  audio.int16    little-endian int16, row-major [num_items, length]
  labels.npy     int32 [num_items, num_attributes], -1 where a label is missing
  broken.jsonl   one {"path", "reason", "stage"} per file left out (layout or decoding)

Stores are built by `store_build` (in a temporary sibling folder renamed into place, so an
interrupted build never leaves something at ``store_dir`` that opens as complete); this
module opens them. Batches are read by `maskgan_jax.data.batches`. Neither imports JAX, so
that spawned decoding workers start quickly.
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence

import numpy as np

FORMAT = "maskgan-jax-store/1"
INDEX, AUDIO, LABELS, BROKEN = "index.json", "audio.int16", "labels.npy", "broken.jsonl"
DTYPE = np.dtype("<i2")
_INDEX_KEYS = ("name", "task", "corpus_root", "sample_rate", "length", "num_items", "attributes",
               "classes", "paths", "groups", "splits", "fingerprint")


class StoreError(RuntimeError):
    """A store folder that is missing, incomplete, damaged or cannot be built."""


class Store:
    """An opened store: int16 audio memmap [N, length], labels, groups, splits, paths, classes."""

    def __init__(self, store_dir: str, index: dict, audio_NxL: np.ndarray, labels_NxA: np.ndarray,
                 broken: list[tuple[str, str]]):
        self.store_dir = store_dir
        self.index = index
        self.name: str = index["name"]
        self.task: str = index["task"]
        self.corpus_root: str = index["corpus_root"]
        self.sample_rate: int = index["sample_rate"]
        self.length: int = index["length"]
        self.fingerprint: str = index["fingerprint"]
        self.audio = audio_NxL
        self.attributes: list[str] = list(index["attributes"])
        self.labels: dict[str, np.ndarray] = {
            a: np.ascontiguousarray(labels_NxA[:, j]) for j, a in enumerate(self.attributes)}
        self.classes: dict[str, list[str]] = {a: list(c) for a, c in index["classes"].items()}
        self.paths = np.array(index["paths"], dtype=str)
        self.groups = np.array(index["groups"], dtype=str)
        self.splits = np.array(index["splits"], dtype=str)
        self.broken = broken

    def __len__(self) -> int:
        return int(self.audio.shape[0])

    def __repr__(self) -> str:
        return (f"Store({self.name!r}, task={self.task!r}, items={len(self)}, "
                f"length={self.length}, rate={self.sample_rate}, broken={len(self.broken)}, "
                f"dir={self.store_dir!r})")

    def batch(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """int16 audio [B, length] of the given rows, in the given order."""
        idx = np.asarray(indices, dtype=np.int64)
        if idx.ndim != 1:
            raise ValueError(f"indices must be 1-D, got shape {idx.shape}")
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"{self.store_dir}: row index out of range [0, {len(self)})")
        return np.asarray(self.audio[idx])


# ------------------------------------------------------------------------------ open

def open_store(store_dir: str | os.PathLike) -> Store:
    """Opens a complete store read-only; StoreError if it is missing, partial or damaged."""
    store_dir = os.path.abspath(os.fspath(store_dir))
    index = _read_index(store_dir)
    n, length = index["num_items"], index["length"]
    audio_path = os.path.join(store_dir, AUDIO)
    want = n * length * DTYPE.itemsize
    try:
        have = os.path.getsize(audio_path)
    except OSError:
        raise StoreError(f"{store_dir}: damaged store, {AUDIO} is missing") from None
    if have != want:
        raise StoreError(f"{store_dir}: damaged store, {AUDIO} has {have} bytes, "
                         f"the index needs {want} ({n} x {length} int16)")
    if n:
        audio_NxL = np.memmap(audio_path, dtype=DTYPE, mode="r", shape=(n, length))
    else:
        audio_NxL = np.zeros((0, length), dtype=DTYPE)
    try:
        labels = np.load(os.path.join(store_dir, LABELS), allow_pickle=False)
    except (OSError, ValueError) as e:
        raise StoreError(f"{store_dir}: damaged store, cannot read {LABELS} ({e})") from None
    if labels.shape != (n, len(index["attributes"])) or labels.dtype != np.int32:
        raise StoreError(f"{store_dir}: damaged store, {LABELS} is "
                         f"{labels.dtype}{list(labels.shape)}, the index needs "
                         f"int32[{n}, {len(index['attributes'])}]")
    return Store(store_dir, index, audio_NxL, labels, _read_broken(store_dir))


def _read_index(store_dir: str) -> dict:
    path = os.path.join(store_dir, INDEX)
    if not os.path.isdir(store_dir):
        raise StoreError(f"{store_dir}: no store here (folder missing)")
    try:
        with open(path, encoding="utf-8") as f:
            index = json.load(f)
    except FileNotFoundError:
        raise StoreError(f"{store_dir}: no store here ({INDEX} missing)") from None
    except (OSError, ValueError) as e:
        raise StoreError(f"{store_dir}: damaged store, cannot read {INDEX} ({e})") from None
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise StoreError(f"{store_dir}: {INDEX} is not a {FORMAT} index")
    missing = [k for k in _INDEX_KEYS if k not in index]
    if missing:
        raise StoreError(f"{store_dir}: damaged store, {INDEX} lacks {missing}")
    n = index.get("num_items")
    for key in ("paths", "groups", "splits"):
        if not isinstance(index.get(key), list) or len(index[key]) != n:
            raise StoreError(f"{store_dir}: damaged store, index field {key!r} does not have "
                             f"{n} entries")
    return index


def _read_broken(store_dir: str) -> list[tuple[str, str]]:
    out = []
    try:
        with open(os.path.join(store_dir, BROKEN), encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    rec = json.loads(line)
                    out.append((rec["path"], rec["reason"]))
    except FileNotFoundError:
        raise StoreError(f"{store_dir}: damaged store, {BROKEN} is missing") from None
    except (OSError, ValueError, KeyError) as e:
        raise StoreError(f"{store_dir}: damaged store, cannot read {BROKEN} ({e})") from None
    return out


