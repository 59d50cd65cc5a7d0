"""The study's data stages: the corpora (embedded or real folders) and their array stores."""
from __future__ import annotations

import os

from maskgan_jax.data import layouts, store_build, synthetic
from maskgan_jax.study_config import StudyConfig


def stage_corpora(cfg: StudyConfig, out_dir: str) -> dict:
    """task -> corpus folder: the configured real folders or embedded corpora under OUT/corpora."""
    given = dict(cfg.data_dirs)
    roots = {}
    for task in cfg.tasks:
        if task in given:
            if not os.path.isdir(given[task]):
                raise ValueError(f"data folder for task {task}: {given[task]} does not exist")
            roots[task] = given[task]
        else:
            folder = os.path.join(out_dir, "corpora", synthetic.layout_name(task))
            roots[task] = synthetic.make_corpus(task, folder, seed=cfg.corpus_seed, size=cfg.corpus_size)
    return roots


def stage_stores(cfg: StudyConfig, out_dir: str, roots: dict, log) -> dict:
    """task -> opened array store (built once, reused while the corpus is unchanged)."""
    stores = {}
    for task in cfg.tasks:
        corpus = layouts.load_corpus(roots[task], task)
        log(f"[study] {corpus.summary()}")
        for path, reason in corpus.broken[:10]:
            log(f"[study]   broken: {path}: {reason}")
        stores[task] = store_build.open_or_build_store(corpus, os.path.join(out_dir, "stores", task),
                                                       length=cfg.clip_samples, progress=True)
    return stores
