"""Cross-validation splits for the attacks: K folds by group (speaker/actor/artist) and a validation split."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from maskgan_jax import keys


def item_groups(groups: Sequence[str]) -> np.ndarray:
    """Group key per item; an item without a group is a group of its own."""
    return np.asarray([g if g else f"\x00item{i}" for i, g in enumerate(groups)], dtype=object)


def group_kfold(groups: Sequence[str], folds: int, seed: int) -> np.ndarray:
    """Fold index [N] so that no group spans two folds, folds balanced by item count, seeded."""
    group_of = item_groups(groups)
    uniq, inverse, counts = np.unique(group_of, return_inverse=True, return_counts=True)
    if folds < 2:
        raise ValueError(f"--folds={folds}: K-fold needs at least 2 folds")
    if uniq.size < folds:
        raise ValueError(f"--folds={folds}: the corpus has only {uniq.size} speaker/actor/artist "
                         "groups, fewer than the folds")
    rng = keys.kfold(seed)
    order = rng.permutation(uniq.size)
    # Largest groups first (ties in the shuffled order), each to the emptiest fold.
    order = order[np.argsort(-counts[order], kind="stable")]
    load = np.zeros(folds, np.int64)
    fold_of_group = np.empty(uniq.size, np.int64)
    for g in order:
        f = int(np.argmin(load))
        fold_of_group[g] = f
        load[f] += counts[g]
    return fold_of_group[inverse]


def validation_split(train_idx: np.ndarray, groups: Sequence[str], fraction: float,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Splits training indices into (train, valid) by group, about ``fraction`` of items in valid."""
    group_of = item_groups(groups)[train_idx]
    uniq = np.unique(group_of)
    if uniq.size < 2:
        raise ValueError("the training folds hold a single speaker/actor/artist group: "
                         "no group is left for the validation split")
    chosen, n = set(), 0
    target = max(1, int(round(fraction * train_idx.size)))
    for g in uniq[rng.permutation(uniq.size)]:
        if n >= target or len(chosen) == uniq.size - 1:
            break
        chosen.add(g)
        n += int(np.count_nonzero(group_of == g))
    in_valid = np.fromiter((k in chosen for k in group_of), bool, group_of.size)
    return train_idx[~in_valid], train_idx[in_valid]


def fold_indices(groups: Sequence[str], splits: Sequence[str], folds: int, seed: int,
                 val_fraction: float) -> list[dict[str, np.ndarray]]:
    """Per fold {train, valid, test} index arrays; folds=1 uses the corpus's own splits."""
    n = len(groups)
    if folds == 1:
        splits = np.asarray(list(splits), dtype=object)
        test = np.flatnonzero(splits == "test")
        if test.size == 0:
            raise ValueError("--folds=1 uses the corpus's own test split, and this corpus has none; "
                             "use --folds>=2")
        valid = np.flatnonzero(splits == "valid")
        train = np.flatnonzero((splits == "train") | (splits == ""))
        if valid.size == 0:
            train, valid = validation_split(train, [groups[i] for i in range(n)], val_fraction,
                                            keys.validation(seed))
        return [{"train": train, "valid": valid, "test": test}]
    fold_of = group_kfold(groups, folds, seed)
    out = []
    for f in range(folds):
        test = np.flatnonzero(fold_of == f)
        train, valid = validation_split(np.flatnonzero(fold_of != f), groups, val_fraction,
                                        keys.validation(seed, f))
        out.append({"train": train, "valid": valid, "test": test})
    return out
