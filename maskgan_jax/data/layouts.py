"""Which public layout a folder holds, the task each layout serves, and load_corpus."""
from __future__ import annotations

import inspect
import os

from maskgan_jax.data import base, common_voice, fma, ravdess, speech_commands
from maskgan_jax.vocab import TASK_LAYOUTS, TASKS

_MODULES = {m.NAME: m for m in (fma, common_voice, ravdess, speech_commands)}
LAYOUTS = tuple(_MODULES)
_TASK_TO_LAYOUT = TASK_LAYOUTS
assert all(_MODULES[name].TASK == task for task, name in TASK_LAYOUTS.items())
MARKERS = {
    "fma": "fma_metadata/tracks.csv (with fma_small/, fma_medium/, fma_large/ or fma_full/)",
    "common_voice": "validated.tsv, or train.tsv next to clips/",
    "ravdess": "Actor_01/ ... Actor_24/ folders of MM-VV-EE-II-SS-RR-AA.wav",
    "speech_commands": "validation_list.txt, testing_list.txt or _background_noise_/ beside the word folders",
}


def layout_of(task: str) -> str:
    """Layout that serves a task: mgi->fma, udi->common_voice, sei->ravdess, commands->speech_commands."""
    try:
        return _TASK_TO_LAYOUT[task]
    except KeyError:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}") from None


def task_of(layout: str) -> str:
    """Task a layout serves (inverse of layout_of)."""
    try:
        return _MODULES[layout].TASK
    except KeyError:
        raise ValueError(f"unknown layout {layout!r}; expected one of {', '.join(LAYOUTS)}") from None


def _expected() -> str:
    return "; ".join(f"{name}: {marker}" for name, marker in MARKERS.items())


def layouts_in(folder: str) -> list[str]:
    """Every layout whose marker files are in the folder itself."""
    return [name for name, module in _MODULES.items() if module.is_layout(folder)]


def find_corpus(path: str, task: str | None = None) -> tuple[str, str]:
    """(corpus root, layout) for a folder or, failing that, one of its immediate subfolders."""
    want = layout_of(task) if task is not None else None
    path = os.path.abspath(path)
    if not os.path.isdir(path):
        raise base.LayoutError(f"{path}: no such folder (expected a corpus folder; {_expected()})")
    here = layouts_in(path)
    if want is not None and want in here:
        return path, want
    if want is None and len(here) == 1:
        return path, here[0]
    if len(here) > 1:
        raise base.LayoutError(f"{path}: holds markers of several layouts ({', '.join(here)}); pass a task")
    # Archives unpack one level down (cv-corpus-*/en/, Audio_Speech_Actors_01-24/, a folder
    # holding all four embedded corpora), so look one level down before giving up.
    found = []
    for name in sorted(os.listdir(path)):
        sub = os.path.join(path, name)
        if name.startswith(".") or not os.path.isdir(sub):
            continue
        for layout in layouts_in(sub):
            if want is None or layout == want:
                found.append((sub, layout))
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        listing = ", ".join(f"{os.path.basename(s)} ({l})" for s, l in found)
        hint = "pass a task to pick one" if want is None else "point at one of them"
        raise base.LayoutError(f"{path}: several corpora found: {listing}; {hint}")
    if here:
        raise base.LayoutError(
            f"{path}: holds a {here[0]} corpus, but task {task!r} needs {want} "
            f"({MARKERS[want]})")
    wanted = f"a {want} corpus ({MARKERS[want]})" if want else f"one of the layouts: {_expected()}"
    raise base.LayoutError(f"{path}: no known corpus layout here or one folder down; expected {wanted}")


def load_corpus(path: str, task: str | None = None, **options) -> base.Corpus:
    """Detect the layout under path (for the task, if given) and load it; options go to that layout's loader."""
    root, layout = find_corpus(path, task)
    loader = _MODULES[layout].load
    accepted = [p for p in inspect.signature(loader).parameters if p != "root"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise TypeError(f"{layout} loader does not take option(s) {', '.join(unknown)}; "
                        f"it takes {', '.join(accepted) or 'none'}")
    return loader(root, **options)
