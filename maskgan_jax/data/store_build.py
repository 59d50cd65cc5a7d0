"""Building array stores: decode a corpus once to int16 clips, atomically, listing what failed.

A store is built in a temporary sibling folder and renamed into place, so an interrupted
build never leaves something at ``store_dir`` that opens as complete (`store` opens it).
Decoding runs in a spawn-safe process pool; each worker writes its rows straight into the
shared file. This module imports no JAX so that spawned workers start quickly. Item paths
come from corpus metadata and are resolved inside the corpus root; one that escapes it is
listed as broken, never read.
"""
from __future__ import annotations

import concurrent.futures as cf
import contextlib
import hashlib
import json
import multiprocessing
import os
import shutil
import socket
import sys
import time
import uuid
from typing import Any

import numpy as np
import soundfile as sf

from maskgan_jax import audio
from maskgan_jax.data.base import resolve_inside
from maskgan_jax.data.store import AUDIO, BROKEN, DTYPE, FORMAT, INDEX, LABELS, Store, StoreError, open_store
from maskgan_jax.progress import Progress

# Bumped whenever decoding changes what lands in a store, so that old stores are rebuilt.
_DECODER = "soundfile+soxr-HQ/center-crop/1"
_BUILDING, _OLD = "building", "old"


ESCAPES_ROOT = "path escapes the corpus root; not read"


def _item_path(root: str, path: str) -> str | None:
    """The item's file inside the corpus root, or None when its path leads out of it."""
    if not os.path.isabs(path):
        return resolve_inside(root, path)
    root = os.path.abspath(root)
    full = os.path.normpath(path)
    return full if full != root and os.path.commonpath([root, full]) == root else None


def _rel(root: str, path: str) -> str:
    """A corpus path as it is kept in a store: relative to the corpus root (an absolute path that
    leads out of the root too, as '../...'), so that nothing depends on where the corpus lies."""
    if not path or not os.path.isabs(path):
        return path
    return os.path.relpath(os.path.normpath(path), os.path.abspath(root))


def _files(corpus: Any) -> list[str | None]:
    return [_item_path(corpus.root, it.path) for it in corpus.items]


def fingerprint(corpus: Any, sample_rate: int = 16000, length: int = 32768) -> str:
    """Hash of what decides a store's contents: the items (paths relative to the corpus root, file
    sizes, labels, groups, splits), the corpus's broken entries and the decoding parameters.

    Where the corpus lies and the files' times do not enter it, so a copied or moved corpus (and
    an output folder holding one) keeps its stores; `freshness` catches a file changed in place.
    """
    h = hashlib.sha256()
    head = {"format": FORMAT, "sample_rate": int(sample_rate), "length": int(length),
            "crop": "center", "decoder": _DECODER, "name": corpus.name, "task": corpus.task,
            "classes": corpus.classes, "broken": [[_rel(corpus.root, p), why] for p, why in corpus.broken]}
    h.update(json.dumps(head, sort_keys=True).encode())
    for it, p in zip(corpus.items, _files(corpus)):
        try:
            size = os.stat(p).st_size if p is not None else -1
        except OSError:
            size = -1
        rec = [_rel(corpus.root, it.path), sorted((a, int(v)) for a, v in it.labels.items()), it.group,
               it.split, size]
        h.update(json.dumps(rec).encode())
        h.update(b"\n")
    return h.hexdigest()


def freshness(corpus: Any) -> str:
    """Digest of the item files' modification times: unchanged means no file was rewritten."""
    h = hashlib.sha256()
    for p in _files(corpus):
        try:
            h.update(str(os.stat(p).st_mtime_ns if p is not None else -1).encode())
        except OSError:
            h.update(b"-1")
    return h.hexdigest()


def content_digest(corpus: Any) -> str:
    """Digest of the item files' bytes (read in full: used only when their times changed)."""
    h = hashlib.sha256()
    for p in _files(corpus):
        try:
            with open(p, "rb") as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
        except (OSError, TypeError):
            h.update(b"<missing>")
        h.update(b"\n")
    return h.hexdigest()


def open_or_build_store(corpus: Any, store_dir: str | os.PathLike, sample_rate: int = 16000,
                        length: int = 32768, workers: int = 2, progress: bool = True) -> Store:
    """Opens the store if it matches the corpus files and parameters, else (re)builds it.

    A store whose files' times changed (a copied folder, a touched file) is checked against
    the files' contents and reused when they are the same bytes.
    """
    store_dir = os.path.abspath(os.fspath(store_dir))
    want = fingerprint(corpus, sample_rate, length)
    try:
        store = open_store(store_dir)
    except StoreError as e:
        why = str(e)
    else:
        if store.fingerprint == want:
            fresh = freshness(corpus)
            if store.index.get("freshness") == fresh:
                return store
            if store.index.get("content") == content_digest(corpus):
                _update_index(store_dir, freshness=fresh)
                return open_store(store_dir)
            why = f"{store_dir}: a corpus file changed"
        else:
            why = f"{store_dir}: the corpus files or the store parameters changed"
        del store
    if progress:
        print(f"store: building ({why})", file=sys.stderr, flush=True)
    return build_store(corpus, store_dir, sample_rate, length, workers, progress, _fingerprint=want)


def _update_index(store_dir: str, **fields) -> None:
    path = os.path.join(store_dir, INDEX)
    with open(path, encoding="utf-8") as f:
        index = json.load(f)
    index.update(fields)
    tmp = path + f".{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(index, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# Starting spawned workers costs ~0.5 s; below this many files one process is quicker.
_MIN_POOL_ITEMS = 64
# Per-process state of a decoding worker: the shared audio file, opened once.
_WORKER: dict[str, Any] = {}


def _worker_init(audio_path: str, n: int, sample_rate: int, length: int) -> None:
    _WORKER["audio"] = np.memmap(audio_path, dtype=DTYPE, mode="r+", shape=(n, length))
    _WORKER["sample_rate"], _WORKER["length"] = sample_rate, length


def _decode_rows(tasks: list[tuple[int, str]]) -> list[tuple[int, str | None, int]]:
    """Decodes (row, path) pairs into the shared file; returns (row, reason or None, clipped)."""
    mm, rate, length = _WORKER["audio"], _WORKER["sample_rate"], _WORKER["length"]
    out = []
    for row, path in tasks:
        if path is None:
            out.append((row, ESCAPES_ROOT, 0))
            continue
        try:
            with _quiet_c_stderr():
                wave = audio.load_audio(path, sample_rate=rate, length=length, crop="center")
            pcm, n_clipped = audio.float_to_int16(wave)
        except audio.AudioError as e:
            out.append((row, e.reason, 0))
            continue
        except (sf.LibsndfileError, RuntimeError, ValueError, OSError, EOFError) as e:
            # A decoder failure is this file's problem, not the build's.
            out.append((row, f"decoding failed ({type(e).__name__}: {e})", 0))
            continue
        mm[row] = pcm
        out.append((row, None, n_clipped))
    return out


@contextlib.contextmanager
def _quiet_c_stderr():
    """Silences what C decoders print on fd 2 (libmpg123 complains about the bit reservoir
    after every seek into an MP3); every failure still reaches the manifest as an error."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        pass
    return True


def _remove_stale(parent: str, base: str) -> None:
    """Removes temporary folders of this store left by builds on this host that died."""
    host = socket.gethostname()
    for name in os.listdir(parent):
        for tag in (_BUILDING, _OLD):
            prefix = f".{base}.{tag}-{host}-"
            if name.startswith(prefix):
                pid = name[len(prefix):].split("-", 1)[0]
                if pid.isdigit() and not _alive(int(pid)):
                    shutil.rmtree(os.path.join(parent, name), ignore_errors=True)


def _temp_name(parent: str, base: str, tag: str) -> str:
    return os.path.join(parent, f".{base}.{tag}-{socket.gethostname()}-{os.getpid()}-"
                                f"{uuid.uuid4().hex[:8]}")


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _decode_all(tasks: list[tuple[int, str]], audio_path: str, sample_rate: int, length: int,
                workers: int, bar: Progress) -> list[tuple[int, str | None, int]]:
    n = len(tasks)
    if n == 0:
        return []
    if workers <= 1 or n < _MIN_POOL_ITEMS:
        _worker_init(audio_path, n, sample_rate, length)
        try:
            results = []
            for t in tasks:
                results += _decode_rows([t])
                bar.update(1)
            return results
        finally:
            _WORKER.clear()
    # Small chunks keep the progress bar moving and balance long and short files.
    size = max(1, min(32, n // (workers * 8)))
    chunks = [tasks[i:i + size] for i in range(0, n, size)]
    results = []
    ctx = multiprocessing.get_context("spawn")
    try:
        with cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init,
                                    initargs=(audio_path, n, sample_rate, length)) as pool:
            futures = [pool.submit(_decode_rows, c) for c in chunks]
            for fut in cf.as_completed(futures):
                part = fut.result()
                results += part
                bar.update(len(part))
    except cf.process.BrokenProcessPool as e:
        raise StoreError(f"a decoding worker died while building {audio_path} ({e}); a script "
                         "that builds a store must start under `if __name__ == '__main__':` "
                         "(workers are spawned); otherwise try workers=1 to find the file "
                         "that kills it") from e
    return results


def build_store(corpus: Any, store_dir: str | os.PathLike, sample_rate: int = 16000,
                length: int = 32768, workers: int = 2, progress: bool = True,
                _fingerprint: str | None = None) -> Store:
    """Decodes every corpus item to int16 [length] at ``sample_rate`` and writes a store.

    Files that fail to decode are skipped and listed in broken.jsonl with the reason (with
    the corpus's own broken entries); their count is printed. Replaces an existing store.
    """
    t0 = time.perf_counter()
    store_dir = os.path.abspath(os.fspath(store_dir))
    if sample_rate <= 0 or length <= 0:
        raise ValueError(f"sample_rate and length must be positive, got {sample_rate}, {length}")
    parent, base = os.path.split(store_dir)
    os.makedirs(parent, exist_ok=True)
    if os.path.exists(store_dir) and not (os.path.isdir(store_dir) and
                                          (not os.listdir(store_dir) or
                                           os.path.exists(os.path.join(store_dir, INDEX)))):
        raise StoreError(f"{store_dir}: exists and is not a store; refusing to replace it")
    _remove_stale(parent, base)
    fp = _fingerprint or fingerprint(corpus, sample_rate, length)
    items = list(corpus.items)
    n = len(items)
    tmp = _temp_name(parent, base, _BUILDING)
    os.mkdir(tmp)
    try:
        audio_path = os.path.join(tmp, AUDIO)
        with open(audio_path, "wb") as f:
            f.truncate(n * length * DTYPE.itemsize)
        tasks = [(i, _item_path(corpus.root, it.path)) for i, it in enumerate(items)]
        bar = Progress(n, f"decode {corpus.name}", "clips", enabled=progress)
        with bar:
            results = _decode_all(tasks, audio_path, sample_rate, length, workers, bar)
        reason = {row: r for row, r, _ in results}
        if len(reason) != n:
            raise StoreError(f"{store_dir}: decoding returned {len(reason)} of {n} results")
        clipped = {row: c for row, _, c in results if c}
        good = [i for i in range(n) if reason[i] is None]
        _compact(audio_path, n, length, good)
        _write_tables(tmp, corpus, items, good, reason, clipped, sample_rate, length, fp,
                      time.perf_counter() - t0)
        _swap_into_place(tmp, store_dir, parent, base)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    store = open_store(store_dir)
    n_bad = n - len(good)
    n_layout = len(corpus.broken)
    if progress or n_bad or n_layout:
        print(f"store {corpus.name}: {len(good)} of {n} clips decoded into {store_dir} in "
              f"{time.perf_counter() - t0:.1f} s; {n_bad} failed to decode, {n_layout} broken in "
              f"the layout (reasons in {os.path.join(store_dir, BROKEN)})",
              file=sys.stderr, flush=True)
    return store


def _compact(audio_path: str, n: int, length: int, good: list[int]) -> None:
    """Moves the decoded rows to the front, in order, and cuts the file to their size."""
    if len(good) < n:
        mm = np.memmap(audio_path, dtype=DTYPE, mode="r+", shape=(n, length))
        for dst, src in enumerate(good):
            if dst != src:
                mm[dst] = mm[src]
        mm.flush()
        del mm
        os.truncate(audio_path, len(good) * length * DTYPE.itemsize)
    _fsync(audio_path)


def _write_tables(tmp: str, corpus: Any, items: list, good: list[int], reason: dict,
                  clipped: dict, sample_rate: int, length: int, fp: str, seconds: float) -> None:
    attributes = list(corpus.classes)
    extra = sorted({a for it in items for a in it.labels} - set(attributes))
    attributes += extra
    labels = np.full((len(good), len(attributes)), -1, dtype=np.int32)
    for r, i in enumerate(good):
        for j, a in enumerate(attributes):
            labels[r, j] = int(items[i].labels.get(a, -1))
    with open(os.path.join(tmp, LABELS), "wb") as f:
        np.save(f, labels, allow_pickle=False)
        f.flush()
        os.fsync(f.fileno())
    with open(os.path.join(tmp, BROKEN), "w", encoding="utf-8") as f:
        for path, why in corpus.broken:
            f.write(json.dumps({"path": path, "reason": why, "stage": "layout"}) + "\n")
        for i in range(len(items)):
            if reason[i] is not None:
                f.write(json.dumps({"path": items[i].path, "reason": reason[i],
                                    "stage": "decode"}) + "\n")
        f.flush()
        os.fsync(f.fileno())
    index = {
        "format": FORMAT, "name": corpus.name, "task": corpus.task,
        "corpus_root": os.path.relpath(os.path.abspath(corpus.root), os.path.dirname(tmp)),
        "sample_rate": int(sample_rate),
        "length": int(length), "dtype": DTYPE.str, "num_items": len(good),
        "num_corpus_items": len(items), "num_broken": len(items) - len(good) + len(corpus.broken),
        "attributes": attributes, "classes": {a: list(c) for a, c in corpus.classes.items()},
        "paths": [_rel(corpus.root, items[i].path) for i in good], "groups": [items[i].group for i in good],
        "splits": [items[i].split for i in good],
        "clipped_items": len(clipped), "clipped_samples": int(sum(clipped.values())),
        "skipped": dict(getattr(corpus, "skipped", {}) or {}),
        "fingerprint": fp, "freshness": freshness(corpus), "content": content_digest(corpus),
        "build_seconds": round(seconds, 3),
        "built_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    # The index is written last: a folder without it is never taken for a store.
    with open(os.path.join(tmp, INDEX), "w", encoding="utf-8") as f:
        json.dump(index, f)
        f.flush()
        os.fsync(f.fileno())


def _swap_into_place(tmp: str, store_dir: str, parent: str, base: str) -> None:
    old = None
    if os.path.exists(store_dir):
        old = _temp_name(parent, base, _OLD)
        os.rename(store_dir, old)
    os.rename(tmp, store_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    try:
        _fsync(parent)
    except OSError:
        pass  # some filesystems cannot fsync a directory; the rename itself is atomic


