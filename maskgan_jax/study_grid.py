"""The study's grid: cells, training groups, ``--cells`` filters and worker shards.

A cell is one (task, model, noise, level, adversary, seed) attack; its result is one JSON
line in its own file (`study_cells`). Cells that share a trained attacker form a
*training group*: the clean baseline and every static cell of a (task, model, seed) are
tested on one attacker trained on clean audio, while an adaptive or denoising cell trains
on its own masked (and, for the denoiser, denoised) audio.
"""
from __future__ import annotations

import dataclasses
import fnmatch
import os
from collections import OrderedDict
from typing import Iterable, NamedTuple, Sequence

from maskgan_jax.levels import COMFORT_LIMIT_SPL
from maskgan_jax.vocab import ADVERSARIES, ALL_STUDY_NOISES, CHANNELS, CellKey, check_name, noise_rank

FILTER_KEYS = CellKey._fields
# Adversaries that train on the masked audio of their own cell.
TRAINS_ON_MASKED = ("adaptive", "denoise", "invert")


class GroupKey(NamedTuple):
    """A training group: cells tested on the same trained attackers (condition 'clean' or noise@level)."""
    task: str
    model: str
    seed: int
    condition: str

    @property
    def name(self) -> str:
        """A file-safe name of the group."""
        return "-".join(str(g) for g in self).replace("@", "_at_")


@dataclasses.dataclass(frozen=True, order=True)
class Cell:
    """One attack cell; ``level`` is None for the clean baseline (noise none)."""
    task: str
    model: str
    noise: str
    level: float | None
    adversary: str
    seed: int
    channel: str = "digital"

    def fields(self) -> dict:
        """The filterable fields as strings (level '-' for the baseline)."""
        return {"task": self.task, "model": self.model, "noise": self.noise,
                "level": "-" if self.level is None else f"{self.level:g}",
                "adversary": self.adversary, "seed": str(self.seed), "channel": self.channel}

    @property
    def id(self) -> str:
        """'task=mgi,model=cnn,noise=white,level=45,adversary=static,seed=0'."""
        return ",".join(f"{k}={v}" for k, v in self.fields().items())

    @property
    def relpath(self) -> str:
        """The cell's result file, relative to the study folder."""
        lv = "clean" if self.level is None else f"{self.level:g}dB"
        room = "" if self.channel == "digital" else f"-{self.channel}"
        return os.path.join("cells", self.task, self.model,
                            f"{self.noise}-{lv}-{self.adversary}-s{self.seed}{room}.jsonl")

    @property
    def above_comfort(self) -> bool:
        """True for a noise louder than the 45 dB SPL comfort limit (marked in the report)."""
        return self.level is not None and self.level > COMFORT_LIMIT_SPL

    @property
    def key(self) -> CellKey:
        """The cell's coordinates as the report's typed key."""
        return CellKey(self.task, self.model, self.noise, self.level, self.adversary, self.seed, self.channel)

    @property
    def group(self) -> GroupKey:
        """The training group: cells tested on the same trained attackers.

        Static cells and the clean baseline share the attacker trained on clean audio; an
        adaptive or denoising cell trains on its own (masked, or masked and denoised) audio.
        """
        room = "" if self.channel == "digital" else f"-{self.channel}"
        if self.adversary in TRAINS_ON_MASKED:
            return GroupKey(self.task, self.model, self.seed, f"{self.adversary}-{self.noise}@{self.level:g}dB{room}")
        return GroupKey(self.task, self.model, self.seed, f"clean{room}")


def enumerate_cells(tasks: Sequence[str], models: Sequence[str], noises: Sequence[str],
                    levels: Sequence[float], adversaries: Sequence[str], seeds: Sequence[int],
                    adaptive_levels: Sequence[float] | None = None,
                    channels: Sequence[str] = ("digital",)) -> list[Cell]:
    """The sweep: a clean baseline per (task, model, seed, channel) and every masked combination, sorted."""
    for n in noises:
        check_name(n, ("none", *ALL_STUDY_NOISES), "noise")
    for a in adversaries:
        check_name(a, ADVERSARIES, "adversary")
    for ch in channels:
        check_name(ch, CHANNELS, "channel")
    cells = []
    for t in tasks:
        for m in models:
            for s in seeds:
                for ch in channels:
                    cells.append(Cell(t, m, "none", None, "static", int(s), ch))
                    for n in noises:
                        if n == "none":
                            continue
                        for lv in levels:
                            for a in adversaries:
                                if a == "adaptive" and adaptive_levels is not None \
                                        and float(lv) not in [float(x) for x in adaptive_levels]:
                                    continue
                                cells.append(Cell(t, m, n, float(lv), a, int(s), ch))
    return sorted(set(cells), key=_order)


def _order(c: Cell):
    return (c.task, c.model, c.seed, CHANNELS.index(c.channel) if c.channel in CHANNELS else len(CHANNELS), c.adversary in TRAINS_ON_MASKED, -1 if c.noise == "none" else noise_rank(c.noise),
            -1 if c.level is None else c.level, c.adversary)


# --------------------------------------------------------------------------- --cells filters

def parse_filter(spec: str) -> list[dict[str, list[str]]]:
    """Parses ``--cells``: 'key=glob|glob,key=glob;...' (',' = and, '|' and ';' = or).

    Keys: task, model, noise, level, adversary, seed, channel; values are shell-style globs on the
    cell's fields (level '-' is the clean baseline). Example: 'task=mgi,model=cnn|rnn,level=45'.
    """
    spec = (spec or "").strip()
    if not spec:
        return []
    alternatives = []
    for alt in spec.split(";"):
        alt = alt.strip()
        if not alt:
            continue
        terms: dict[str, list[str]] = {}
        for term in alt.split(","):
            term = term.strip()
            if not term:
                continue
            if "=" not in term:
                raise ValueError(f"--cells={spec!r}: {term!r} is not key=glob "
                                 f"(keys: {', '.join(FILTER_KEYS)})")
            k, v = (x.strip() for x in term.split("=", 1))
            if k not in FILTER_KEYS:
                raise ValueError(f"--cells={spec!r}: unknown key {k!r} (keys: {', '.join(FILTER_KEYS)})")
            if not v:
                raise ValueError(f"--cells={spec!r}: {k}= needs a value")
            terms.setdefault(k, []).extend(p.strip() for p in v.split("|"))
        alternatives.append(terms)
    return alternatives


def matches(cell: Cell, alternatives: list[dict[str, list[str]]]) -> bool:
    """True when the cell matches any alternative (every key in it); no filter matches all."""
    if not alternatives:
        return True
    f = cell.fields()
    return any(all(any(fnmatch.fnmatchcase(f[k], p) for p in pats) for k, pats in alt.items())
               for alt in alternatives)


def select(cells: Sequence[Cell], spec: str = "", worker: int = 0, num_workers: int = 1) -> list[Cell]:
    """The cells this worker runs: the filter, then every num_workers-th training group.

    Sharding by training group (in sweep order) keeps a clean-trained attacker from being
    trained twice by two workers; each worker still takes every N-th unit of work.
    """
    if num_workers < 1 or not 0 <= worker < num_workers:
        raise ValueError(f"--worker={worker} --num_workers={num_workers}: need 0 <= worker < num_workers")
    alts = parse_filter(spec)
    chosen = [c for c in cells if matches(c, alts)]
    groups = list(OrderedDict.fromkeys(c.group for c in chosen))
    mine = set(groups[worker::num_workers])
    return [c for c in chosen if c.group in mine]


def group_cells(cells: Iterable[Cell]) -> "OrderedDict[GroupKey, list[Cell]]":
    """Cells by training group, in sweep order."""
    out: OrderedDict[GroupKey, list[Cell]] = OrderedDict()
    for c in cells:
        out.setdefault(c.group, []).append(c)
    return out
