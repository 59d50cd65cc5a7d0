"""Where embedded corpora and array stores are kept, and opening a task's corpus as a store.

One cache folder holds both: ``embedded/<task>-<size>-seed<seed>/`` (the seeded corpora in
the public layouts, generated once) and ``stores/<task>-<tag>/`` (a corpus decoded to int16,
tagged by the corpus folder's absolute path). The attack and randomness binaries share it,
so a corpus is decoded once.
"""
from __future__ import annotations

import hashlib
import os
import sys

from maskgan_jax.data import layouts, store_build, synthetic

CACHE_ENV = "MASKGAN_JAX_CACHE"
_ANNOUNCED: set = set()


def default_cache_dir() -> str:
    """The cache folder: $MASKGAN_JAX_CACHE, else ~/.cache/maskgan_jax."""
    return os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "maskgan_jax")


def embedded_corpus(task: str, cache_dir: str | None = None, size: str = "default", seed: int = 0) -> str:
    """The folder of a task's embedded corpus under the cache (generated on first use)."""
    layouts.layout_of(task)  # validates the task name
    root = os.path.join(cache_dir or default_cache_dir(), "embedded", f"{task}-{size}-seed{seed}")
    if not os.path.isdir(root) and root not in _ANNOUNCED:
        _ANNOUNCED.add(root)
        print(f"[data] generating the embedded {task} corpus (size {size}, seed {seed}) into {root} "
              f"(once; set ${CACHE_ENV} or --cache_dir to keep it elsewhere)", file=sys.stderr, flush=True)
    # make_corpus reuses a folder whose manifest matches and regenerates otherwise.
    return synthetic.make_corpus(task, root, seed=seed, size=size)


def store_dir_for(corpus_root: str, task: str, cache_dir: str | None = None) -> str:
    """The cache's store folder of a corpus folder (tagged by its absolute path)."""
    tag = hashlib.sha1(os.path.abspath(corpus_root).encode()).hexdigest()[:12]
    return os.path.join(cache_dir or default_cache_dir(), "stores", f"{task}-{tag}")


def open_task_store(task: str | None, data_dir: str | None = None, cache_dir: str | None = None,
                    size: str = "default", seed: int = 0, progress: bool = True, log=print,
                    flag: str = "--data_dir"):
    """The array store of ``data_dir`` (any public layout; ``task`` picks one if several) or, without
    a folder, of the task's embedded corpus. Broken files are reported through ``log``; errors
    name ``flag``."""
    if data_dir is None:
        if task is None:
            raise ValueError("give a task or a corpus folder")
        data_dir = embedded_corpus(task, cache_dir, size, seed)
    elif not os.path.isdir(data_dir):
        raise ValueError(f"{flag}={data_dir}: no such folder")
    corpus = layouts.load_corpus(data_dir, task)
    if progress:
        log(f"[data] {corpus.summary()}")
    for path, reason in corpus.broken[:10]:
        log(f"[data]   broken: {path}: {reason}")
    if len(corpus.broken) > 10:
        log(f"[data]   ... and {len(corpus.broken) - 10} more broken files (listed in the store's broken.jsonl)")
    return store_build.open_or_build_store(corpus, store_dir_for(data_dir, corpus.task, cache_dir),
                                           progress=progress)
