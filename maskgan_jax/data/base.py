"""Corpus records shared by the layout loaders: Item, Corpus, LayoutError and path safety."""
from __future__ import annotations

import csv
import dataclasses
import os
from collections.abc import Iterable, Iterator, Sequence

MISSING = -1
SPLITS = ("train", "valid", "test", "")


class LayoutError(ValueError):
    """A corpus folder or its metadata does not follow the expected public layout."""


@dataclasses.dataclass(frozen=True)
class Item:
    """One audio file of a corpus with its labels, speaker/actor/artist group and split."""

    path: str
    labels: dict[str, int]
    group: str = ""
    split: str = ""


@dataclasses.dataclass
class Corpus:
    """The items of one corpus, its class names per attribute and the entries left out."""

    name: str
    task: str
    root: str
    items: list[Item]
    classes: dict[str, list[str]]
    broken: list[tuple[str, str]]
    # reason -> number of metadata entries (or labels) left out on purpose, e.g. tracks
    # without a top genre or song recordings: counted so nothing disappears unseen.
    skipped: dict[str, int] = dataclasses.field(default_factory=dict)

    def summary(self) -> str:
        """One line: corpus, items, classes per attribute, broken and skipped counts."""
        sizes = ", ".join(f"{a}: {len(c)} classes" for a, c in self.classes.items())
        skipped = sum(self.skipped.values())
        return (f"{self.name} ({self.task}) at {self.root}: {len(self.items)} items, {sizes}; "
                f"{len(self.broken)} broken, {skipped} skipped")

    def labels_of(self, attribute: str) -> list[int]:
        """Class index of every item for one attribute (-1 where missing)."""
        if attribute not in self.classes:
            raise KeyError(f"{self.name} has no attribute {attribute!r}; it has {sorted(self.classes)}")
        return [item.labels.get(attribute, MISSING) for item in self.items]


def resolve_inside(root: str, relative: str) -> str | None:
    """Absolute path of `relative` under `root`, or None when it is absolute or escapes root."""
    # Lexical check on purpose: metadata must not point outside the corpus, while a
    # corpus whose clips folder is a symlink to another disk stays usable.
    if not relative or "\x00" in relative:
        return None
    if os.path.isabs(relative) or relative.startswith(("/", "\\")) or (len(relative) > 1 and relative[1] == ":"):
        return None
    parts = relative.replace("\\", "/").split("/")
    if any(p == ".." for p in parts):
        return None
    root = os.path.abspath(root)
    full = os.path.normpath(os.path.join(root, relative))
    if full == root or os.path.commonpath([root, full]) != root:
        return None
    return full


def class_index(names: Sequence[str]) -> dict[str, int]:
    """Map class name -> index in the given order."""
    return {name: i for i, name in enumerate(names)}


def read_rows(path: str, delimiter: str, quoting: int = csv.QUOTE_MINIMAL) -> Iterator[tuple[int, list[str]]]:
    """Yield (line number, fields) of a csv/tsv file; bad encoding or syntax raise LayoutError."""
    try:
        handle = open(path, newline="", encoding="utf-8-sig")
    except OSError as e:
        raise LayoutError(f"{path}: cannot open metadata file ({e.strerror})") from e
    with handle:
        reader = csv.reader(handle, delimiter=delimiter, quoting=quoting, strict=True)
        try:
            for row in reader:
                yield reader.line_num, row
        except csv.Error as e:
            raise LayoutError(f"{path}:{reader.line_num + 1}: malformed {_kind(delimiter)} ({e})") from e
        except UnicodeDecodeError as e:
            raise LayoutError(f"{path}: not UTF-8 text near byte {e.start}") from e


def _kind(delimiter: str) -> str:
    return "TSV" if delimiter == "\t" else "CSV"


def listdir_set(folder: str) -> frozenset[str]:
    """Names in a folder (empty when it does not exist): one listing instead of a stat per file."""
    try:
        return frozenset(os.listdir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return frozenset()


def count(counter: dict[str, int], reason: str, n: int = 1) -> None:
    """Add n to counter[reason]."""
    counter[reason] = counter.get(reason, 0) + n


def sorted_classes(names: Iterable[str]) -> list[str]:
    """Distinct non-empty names, sorted, so class indices do not depend on file order."""
    return sorted({n for n in names if n})
