"""FMA (Free Music Archive) layout: fma_metadata/tracks.csv and fma_<size>/NNN/NNNNNN.mp3."""
from __future__ import annotations

import csv
import os

from maskgan_jax.data import base

NAME = "fma"
TASK = "mgi"
METADATA = os.path.join("fma_metadata", "tracks.csv")
# Nested subsets: small is inside medium, medium inside large; "full" holds every track
# untrimmed. A folder for a bigger subset also holds the tracks of the smaller ones.
SUBSETS = ("small", "medium", "large", "full")
_RANK = {"small": 0, "medium": 1, "large": 2}
_SPLITS = {"training": "train", "train": "train", "validation": "valid", "valid": "valid",
           "val": "valid", "test": "test", "": ""}
_COLUMNS = {"subset": ("set", "subset"), "split": ("set", "split"),
            "genre": ("track", "genre_top"), "artist": ("artist", "id")}


def is_layout(root: str) -> bool:
    """True when root holds fma_metadata/tracks.csv."""
    return os.path.isfile(os.path.join(root, METADATA))


def audio_path(root: str, track_id: int, size: str) -> str:
    """Where FMA keeps a track: fma_<size>/<first 3 digits>/<6-digit id>.mp3."""
    tid = f"{track_id:06d}"
    return os.path.join(root, f"fma_{size}", tid[:3], tid + ".mp3")


def _choose_folder(root: str, subset: str | None) -> tuple[str, str]:
    """(subset, audio folder size) from the request and the fma_<size> folders present."""
    present = [s for s in SUBSETS if os.path.isdir(os.path.join(root, f"fma_{s}"))]
    if subset is None:
        if not present:
            raise base.LayoutError(
                f"{root}: no audio folder; expected one of {', '.join('fma_' + s for s in SUBSETS)}")
        return present[0], present[0]
    if subset not in SUBSETS:
        raise base.LayoutError(f"unknown FMA subset {subset!r}; expected one of {SUBSETS}")
    # fma_large (and fma_full) hold the smaller subsets' tracks too, so use them if needed.
    usable = [s for s in SUBSETS[SUBSETS.index(subset):] if s in present]
    if not usable:
        raise base.LayoutError(
            f"{root}: FMA subset {subset!r} requested but no fma_{subset} folder "
            f"(or a larger one) exists; present: {present or 'none'}")
    return subset, usable[0]


def _header(path: str, rows) -> dict[tuple[str, str], int]:
    """Read the two-row (top, sub) header, skipping the 'track_id' index-name row if present."""
    try:
        _, top = next(rows)
        _, sub = next(rows)
    except StopIteration:
        raise base.LayoutError(f"{path}: expected a two-row header (e.g. 'set' / 'subset'), file ends early")
    if len(top) != len(sub):
        raise base.LayoutError(f"{path}:2: header rows have {len(top)} and {len(sub)} columns")
    columns = {}
    for i, (a, b) in enumerate(zip(top, sub)):
        columns.setdefault((a.strip(), b.strip()), i)
    missing = [f"{a}/{b}" for a, b in _COLUMNS.values() if (a, b) not in columns]
    if missing:
        raise base.LayoutError(f"{path}:1-2: header lacks column(s) {', '.join(missing)}")
    return columns


def load(root: str, subset: str | None = None) -> base.Corpus:
    """Load an FMA folder: genre_top labels, artist groups, the official split; subset small|medium|large|full (default: smallest audio folder present)."""
    root = os.path.abspath(root)
    meta = os.path.join(root, METADATA)
    if not os.path.isfile(meta):
        raise base.LayoutError(f"{root}: not an FMA folder, {METADATA} is missing")
    subset, size = _choose_folder(root, subset)
    # tracks.csv carries artist biographies longer than csv's default field limit.
    csv.field_size_limit(max(csv.field_size_limit(), 1 << 26))
    rows = base.read_rows(meta, ",")
    columns = _header(meta, rows)
    width = max(columns.values()) + 1
    col = {k: columns[v] for k, v in _COLUMNS.items()}
    entries = []
    skipped: dict[str, int] = {}
    for line, row in rows:
        if not row or not any(row):
            continue
        if row[0] == "track_id" and not any(f.strip() for f in row[1:]):
            continue  # pandas' index-name row under the two header rows
        if len(row) < width:
            raise base.LayoutError(f"{meta}:{line}: {len(row)} fields, header has {width}")
        try:
            track_id = int(row[0])
            if track_id < 0:
                raise ValueError
        except ValueError:
            raise base.LayoutError(f"{meta}:{line}: track id {row[0]!r} is not a non-negative integer") from None
        member = row[col["subset"]].strip()
        if member not in _RANK:
            raise base.LayoutError(f"{meta}:{line}: set/subset {member!r} is not one of small, medium, large")
        if subset != "full" and _RANK[member] > _RANK[subset]:
            base.count(skipped, f"not in subset {subset}")
            continue
        genre = row[col["genre"]].strip()
        if not genre:
            base.count(skipped, "no track/genre_top")
            continue
        split_name = row[col["split"]].strip()
        if split_name not in _SPLITS:
            raise base.LayoutError(f"{meta}:{line}: set/split {split_name!r} is not training, validation or test")
        entries.append((track_id, genre, row[col["artist"]].strip(), _SPLITS[split_name]))

    listings: dict[str, frozenset[str]] = {}
    kept, broken, seen = [], [], set()
    for track_id, genre, artist, split in entries:
        path = audio_path(root, track_id, size)
        if track_id in seen:
            broken.append((path, f"track {track_id} listed twice in {METADATA}"))
            continue
        seen.add(track_id)
        folder, name = os.path.split(path)
        if folder not in listings:
            listings[folder] = base.listdir_set(folder)
        if name not in listings[folder]:
            broken.append((path, f"audio file missing (track {track_id} is in {METADATA})"))
            continue
        kept.append((path, genre, artist, split))
    # Classes from the tracks that are there, so every class has audio.
    genres = base.sorted_classes(k[1] for k in kept)
    index = base.class_index(genres)
    items = [base.Item(path=path, labels={"genre": index[genre]}, group=artist, split=split)
             for path, genre, artist, split in kept]
    return base.Corpus(name=NAME, task=TASK, root=root, items=items, classes={"genre": genres},
                       broken=broken, skipped=skipped)
