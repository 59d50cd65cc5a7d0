"""The one batch reader: host batches of an array store (or any int16 arrays) and their prefetch to devices.

A batch is ``{"audio": int16 [B, T], "index": int32 store rows, "weight": 1 or 0 (padding),
"labels": {attribute: int32 [B]}}``; the last batch of an epoch is padded to the full size
with weight 0, so every batch compiles to the same program. Reads of a memory-mapped store
are issued in row order (sequential on disk) and put back in batch order.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
from typing import Any, Iterator, Sequence

import jax
import numpy as np

from maskgan_jax import parallel


@dataclasses.dataclass
class ArrayData:
    """What the attack reads: int16 audio [N, T] (a memmap is fine), labels, groups, splits, classes."""
    audio: Any
    labels: dict[str, np.ndarray]
    groups: Sequence[str]
    splits: Sequence[str]
    classes: dict[str, list[str]]
    name: str = ""


def as_array_data(data: Any) -> ArrayData:
    """Wraps a store (anything with .audio, .labels, .groups, .splits, .classes) as ArrayData."""
    if isinstance(data, ArrayData):
        return data
    missing = [a for a in ("audio", "labels", "groups", "splits", "classes") if not hasattr(data, a)]
    if missing:
        raise TypeError(f"attack data lacks {missing}; pass an array store or ArrayData")
    out = ArrayData(data.audio, {k: np.asarray(v, np.int32) for k, v in data.labels.items()},
                    list(data.groups), list(data.splits), {k: list(v) for k, v in data.classes.items()},
                    getattr(data, "name", ""))
    if out.audio.ndim != 2 or out.audio.dtype != np.int16:
        raise ValueError(f"attack audio must be int16 [N, T], got {out.audio.dtype} {out.audio.shape}")
    return out


def host_batches(data: ArrayData, idx: np.ndarray, batch_size: int, attributes: Sequence[str],
                 shuffle_rng: np.random.Generator | None = None) -> Iterator[dict]:
    """Host batches of rows ``idx`` (shuffled by ``shuffle_rng``); the last one padded with weight 0."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    order = shuffle_rng.permutation(idx) if shuffle_rng is not None else np.asarray(idx)
    for s in range(0, order.size, batch_size):
        part = order[s:s + batch_size]
        n = part.size
        take = np.concatenate([part, np.repeat(part[:1], batch_size - n)])
        # Sorted reads are sequential on a memmap; the batch order itself does not matter.
        srt = np.argsort(take, kind="stable")
        inv = np.empty_like(srt)
        inv[srt] = np.arange(srt.size)
        audio = np.asarray(data.audio[take[srt]])[inv]
        weight = np.zeros(batch_size, np.float32)
        weight[:n] = 1.0
        yield {"audio": audio, "index": take.astype(np.int32), "weight": weight,
               "labels": {a: np.asarray(data.labels[a][take], np.int32) for a in attributes}}


def prefetch_to_mesh(it: Iterator[dict], mesh) -> Iterator[dict]:
    """Reads and places the next batch on the devices while the current one computes."""
    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        fut = ex.submit(lambda: next(it, None))
        while True:
            b = fut.result()
            if b is None:
                return
            fut = ex.submit(lambda: next(it, None))
            if jax.process_count() > 1:
                # Under several processes each one hands over its own slice of the global batch.
                n, i = jax.process_count(), jax.process_index()
                b = jax.tree_util.tree_map(lambda a: a[i * a.shape[0] // n:(i + 1) * a.shape[0] // n], b)
            yield parallel.shard_batch(b, mesh)
