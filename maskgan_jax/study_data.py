"""The study's data stages: the corpora (embedded or real folders) and their array stores."""
from __future__ import annotations

import json
import os

from maskgan_jax.data import layouts, store, store_build, synthetic
from maskgan_jax.study_config import StudyConfig


def stage_corpora(cfg: StudyConfig, out_dir: str) -> tuple[dict, bool]:
    """(task -> corpus folder, whether a corpus was generated): the configured real folders or
    embedded corpora under OUT/corpora."""
    given = dict(cfg.data_dirs)
    roots, computed = {}, False
    for task in cfg.tasks:
        if task in given:
            if not os.path.isdir(given[task]):
                raise ValueError(f"data folder for task {task}: {given[task]} does not exist")
            roots[task] = given[task]
        else:
            folder = os.path.join(out_dir, "corpora", synthetic.layout_name(task))
            before = synthetic.read_manifest(folder)
            roots[task] = synthetic.make_corpus(task, folder, seed=cfg.corpus_seed, size=cfg.corpus_size)
            computed |= synthetic.read_manifest(folder) != before
    return roots, computed


def stage_stores(cfg: StudyConfig, out_dir: str, roots: dict, log) -> tuple[dict, bool]:
    """(task -> opened array store, whether one was built): built once, reused while the corpus is unchanged."""
    stores, computed = {}, False
    for task in cfg.tasks:
        corpus = layouts.load_corpus(roots[task], task)
        log(f"[study] {corpus.summary()}")
        for path, reason in corpus.broken[:10]:
            log(f"[study]   broken: {path}: {reason}")
        folder = os.path.join(out_dir, "stores", task)
        before = _built(folder)
        stores[task] = store_build.open_or_build_store(corpus, folder, length=cfg.clip_samples, progress=True)
        computed |= _built(folder) != before
    return stores, computed


def _built(store_dir: str):
    """When and from what the store was built (None: no store)."""
    try:
        with open(os.path.join(store_dir, store.INDEX), encoding="utf-8") as f:
            index = json.load(f)
    except (OSError, ValueError):
        return None
    return index.get("built_utc"), index.get("fingerprint")
