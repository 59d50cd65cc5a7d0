"""Common Voice layout: validated.tsv / train.tsv / dev.tsv / test.tsv and clips/ (one language)."""
from __future__ import annotations

import collections
import csv
import os

from maskgan_jax.data import base

NAME = "common_voice"
TASK = "udi"
ATTRIBUTES = ("age", "gender", "accent")
SPLIT_FILES = (("train.tsv", "train"), ("dev.tsv", "valid"), ("test.tsv", "test"))
CLIPS = "clips"
# Common Voice spells it "fourties"; classes follow age order, not the alphabet.
AGES = ("teens", "twenties", "thirties", "fourties", "fifties", "sixties", "seventies",
        "eighties", "nineties")
_AGE_ALIASES = {"forties": "fourties"}
# Releases before 2024 say male/female/other; later ones use self-descriptions. Both are
# folded into the older three classes so one attacker head fits every release.
_GENDERS = {
    "male": "male", "male_masculine": "male", "masculine": "male", "m": "male",
    "female": "female", "female_feminine": "female", "feminine": "female", "f": "female",
    "other": "other", "intersex": "other", "transgender": "other", "non-binary": "other",
    "non_binary": "other", "nonbinary": "other",
    "do_not_wish_to_say": "", "prefer_not_to_say": "",
}
GENDERS = ("female", "male", "other")


def is_layout(root: str) -> bool:
    """True when root holds validated.tsv, or train.tsv next to a clips/ folder."""
    return (os.path.isfile(os.path.join(root, "validated.tsv"))
            or (os.path.isfile(os.path.join(root, "train.tsv")) and os.path.isdir(os.path.join(root, CLIPS))))


def normalise_gender(value: str) -> str:
    """Fold a Common Voice gender value of any release into female/male/other ('' = missing)."""
    v = value.strip().lower()
    return _GENDERS.get(v, v)


def normalise_age(value: str) -> str:
    """Canonical Common Voice age bracket ('' = missing)."""
    v = value.strip().lower()
    return _AGE_ALIASES.get(v, v)


def normalise_accent(value: str) -> str:
    """Accent label of one clip: the single stated accent, whitespace-trimmed; '' when none or several."""
    # Since 2021 speakers may list several accents ("a|b"); which one the clip carries is
    # unknown, so such a label counts as missing rather than as a mixed class.
    v = " ".join(value.split())
    return "" if "|" in v else v


def _read_tsv(path: str) -> list[tuple[int, dict[str, str]]]:
    """Rows of a Common Voice TSV as dicts, with the header checked."""
    # Sentences hold unbalanced quotes; Common Voice writes no quoting at all.
    rows = base.read_rows(path, "\t", quoting=csv.QUOTE_NONE)
    try:
        _, header = next(rows)
    except StopIteration:
        raise base.LayoutError(f"{path}: empty file, expected a header with client_id and path")
    header = [h.strip() for h in header]
    for required in ("client_id", "path"):
        if required not in header:
            raise base.LayoutError(f"{path}:1: header lacks column {required!r} (has {', '.join(header)})")
    out = []
    for line, row in rows:
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if len(row) != len(header):
            raise base.LayoutError(f"{path}:{line}: {len(row)} fields, header has {len(header)}")
        out.append((line, dict(zip(header, row))))
    return out


def _accent_field(fields: dict[str, str]) -> str:
    return fields.get("accents", fields.get("accent", ""))


def load(root: str, accent_top_k: int | None = None) -> base.Corpus:
    """Load one Common Voice language folder: age, gender and accent labels, client_id groups, official splits."""
    root = os.path.abspath(root)
    if accent_top_k is not None and accent_top_k < 1:
        raise ValueError(f"accent_top_k must be positive or None, got {accent_top_k}")
    split_of: dict[str, str] = {}
    split_rows: list[tuple[str, int, dict[str, str]]] = []
    for filename, split in SPLIT_FILES:
        path = os.path.join(root, filename)
        if os.path.isfile(path):
            for line, fields in _read_tsv(path):
                split_of.setdefault(fields["path"].strip(), split)
                split_rows.append((filename, line, fields))
    validated = os.path.join(root, "validated.tsv")
    if os.path.isfile(validated):
        source = [("validated.tsv", line, fields) for line, fields in _read_tsv(validated)]
    elif split_rows:
        source = split_rows
    else:
        raise base.LayoutError(f"{root}: not a Common Voice folder, no validated.tsv or train/dev/test.tsv")

    # Paths first: labels of rows whose audio is missing or outside clips/ must not define classes.
    clips_dir = os.path.join(root, CLIPS)
    present = base.listdir_set(clips_dir)
    skipped: dict[str, int] = {}
    broken: list[tuple[str, str]] = []
    raw, seen = [], set()
    for filename, line, fields in source:
        where = f"{filename}:{line}"
        rel = fields["path"].strip()
        full = base.resolve_inside(clips_dir, rel)
        if not rel:
            broken.append((rel, f"empty path ({where})"))
            continue
        if full is None:
            broken.append((rel, f"path escapes {CLIPS}/ ({where}); not read"))
            continue
        if full in seen:
            broken.append((full, f"listed twice ({where}); first entry kept"))
            continue
        seen.add(full)
        # One listing of clips/ covers the usual flat layout; nested names fall back to a stat.
        exists = rel in present if os.path.dirname(rel) == "" else os.path.isfile(full)
        if not exists:
            broken.append((full, f"audio file missing ({where})"))
            continue
        accent_value = _accent_field(fields)
        accent = normalise_accent(accent_value)
        if accent_value.strip() and not accent:
            base.count(skipped, "accent label dropped: several accents listed")
        raw.append((full, split_of.get(rel, ""), fields["client_id"].strip(),
                    normalise_age(fields.get("age", "")), normalise_gender(fields.get("gender", "")), accent))

    if accent_top_k is not None:
        # Rank accents by distinct speakers: clip counts favour a few prolific speakers.
        speakers = collections.defaultdict(set)
        for r in raw:
            if r[5]:
                speakers[r[5]].add(r[2])
        ranked = sorted(speakers, key=lambda a: (-len(speakers[a]), a))
        kept = set(ranked[:accent_top_k])
        dropped = sum(1 for r in raw if r[5] and r[5] not in kept)
        if dropped:
            base.count(skipped, f"accent label dropped: not among the {accent_top_k} most common", dropped)
        raw = [r[:5] + ((r[5] if r[5] in kept else ""),) for r in raw]

    ages = {r[3] for r in raw if r[3]}
    genders = {r[4] for r in raw if r[4]}
    classes = {
        "age": [a for a in AGES if a in ages] + sorted(ages - set(AGES)),
        "gender": [g for g in GENDERS if g in genders] + sorted(genders - set(GENDERS)),
        "accent": base.sorted_classes(r[5] for r in raw),
    }
    index = {a: base.class_index(names) for a, names in classes.items()}
    items = []
    for full, split, client, age, gender, accent in raw:
        labels = {"age": index["age"].get(age, base.MISSING),
                  "gender": index["gender"].get(gender, base.MISSING),
                  "accent": index["accent"].get(accent, base.MISSING)}
        items.append(base.Item(path=full, labels=labels, group=client, split=split))
    return base.Corpus(name=NAME, task=TASK, root=root, items=items, classes=classes,
                       broken=broken, skipped=skipped)
