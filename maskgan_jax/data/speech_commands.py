"""Speech Commands layout: <word>/<speaker>_nohash_<n>.wav with validation_list.txt and testing_list.txt."""
from __future__ import annotations

import os
from collections.abc import Sequence

from maskgan_jax.data import base

NAME = "speech_commands"
TASK = "commands"
BACKGROUND = "_background_noise_"
LISTS = (("validation_list.txt", "valid"), ("testing_list.txt", "test"))
# The ten command words of the dataset's standard keyword-spotting benchmark.
STANDARD_COMMANDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
_NOHASH = "_nohash_"


def is_layout(root: str) -> bool:
    """True when root holds validation_list.txt, testing_list.txt or _background_noise_/."""
    return (any(os.path.isfile(os.path.join(root, name)) for name, _ in LISTS)
            or os.path.isdir(os.path.join(root, BACKGROUND)))


def speaker_of(filename: str) -> str:
    """Speaker id from a file name: the hash before '_nohash_' ('' when the name lacks it)."""
    head, sep, _ = filename.partition(_NOHASH)
    return head if sep else ""


def _word_folders(root: str) -> list[str]:
    # Folders starting with '_' (the background noise) or '.' are not words.
    return sorted(n for n in os.listdir(root)
                  if not n.startswith(("_", ".")) and os.path.isdir(os.path.join(root, n)))


def _read_list(root: str, filename: str, broken: list) -> dict[str, None]:
    """Normalised relative paths named in a split list; escaping ones go to broken."""
    path = os.path.join(root, filename)
    entries: dict[str, None] = {}
    if not os.path.isfile(path):
        return entries
    try:
        with open(path, encoding="utf-8-sig") as handle:
            lines = handle.read().splitlines()
    except UnicodeDecodeError as e:
        raise base.LayoutError(f"{path}: not UTF-8 text near byte {e.start}") from e
    for line_no, line in enumerate(lines, 1):
        rel = line.strip()
        if not rel:
            continue
        full = base.resolve_inside(root, rel)
        if full is None:
            broken.append((rel, f"path escapes the corpus root ({filename}:{line_no}); not read"))
            continue
        if "/" not in rel.replace("\\", "/").strip("/"):
            raise base.LayoutError(f"{path}:{line_no}: {rel!r} is not <word>/<file>.wav")
        entries[os.path.relpath(full, root)] = None
    return entries


def load(root: str, words: Sequence[str] | None = None) -> base.Corpus:
    """Load a Speech Commands folder: word labels, speaker groups, the listed splits; words=None keeps every word folder."""
    root = os.path.abspath(root)
    if not os.path.isdir(root):
        raise base.LayoutError(f"{root}: not a folder")
    present = _word_folders(root)
    if words is None:
        chosen = present
    else:
        chosen = list(dict.fromkeys(words))
        absent = [w for w in chosen if w not in present]
        if absent:
            raise base.LayoutError(f"{root}: word folder(s) {', '.join(absent)} not found")
    if not chosen:
        raise base.LayoutError(f"{root}: no word folders in this Speech Commands folder")
    index = base.class_index(chosen)
    broken: list[tuple[str, str]] = []
    split_of: dict[str, str] = {}
    for filename, split in LISTS:
        for rel in _read_list(root, filename, broken):
            split_of.setdefault(rel, split)
    skipped: dict[str, int] = {}
    for w in present:
        if w not in index:
            n = sum(1 for f in os.listdir(os.path.join(root, w)) if f.lower().endswith(".wav"))
            base.count(skipped, "word not selected", n)
    items, on_disk = [], set()
    for word in chosen:
        folder = os.path.join(root, word)
        for filename in sorted(os.listdir(folder)):
            if filename.startswith(".") or not filename.lower().endswith(".wav"):
                continue
            rel = os.path.join(word, filename)
            on_disk.add(rel)
            items.append(base.Item(path=os.path.join(folder, filename), labels={"word": index[word]},
                                   group=speaker_of(filename), split=split_of.get(rel, "train")))
    for rel, split in split_of.items():
        word = rel.split(os.sep, 1)[0]
        if word in index and rel not in on_disk:
            list_name = dict((s, f) for f, s in LISTS)[split]
            broken.append((os.path.join(root, rel), f"listed in {list_name} but missing"))
    return base.Corpus(name=NAME, task=TASK, root=root, items=items, classes={"word": list(chosen)},
                       broken=broken, skipped=skipped)
