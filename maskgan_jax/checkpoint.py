"""orbax checkpoint wrappers: one manager per run folder, pytree state + JSON metadata.

Uses orbax's current ``args=`` API: a `ocp.CheckpointManager` over items ``state``
(`ocp.args.StandardSave` / `StandardRestore` of any pytree of arrays) and ``meta``
(`ocp.args.JsonSave` / `JsonRestore`), keeping the last ``max_to_keep`` steps. Restoring
into an abstract target (shapes, dtypes, shardings) puts arrays straight back on the mesh.

Small parameter trees that ship with the package (an exported generator) are one ``.npz``
file of nested-dict leaves keyed by their '/'-joined paths, read with pickle disabled.
"""
from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp


class CheckpointError(RuntimeError):
    """A checkpoint folder that cannot be read or does not match the run."""


def manager(directory: str | os.PathLike, max_to_keep: int = 3, save_interval_steps: int = 1) -> ocp.CheckpointManager:
    """A CheckpointManager for ``directory`` (created if missing) keeping the last ``max_to_keep`` steps."""
    directory = os.path.abspath(os.fspath(directory))
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, save_interval_steps=save_interval_steps,
                                           create=True)
    return ocp.CheckpointManager(directory, options=options, item_names=("state", "meta"))


def save(mngr: ocp.CheckpointManager, step: int, state: Any, meta: dict | None = None,
         force: bool = False, wait: bool = False) -> bool:
    """Saves ``state`` (a pytree of arrays) and JSON ``meta`` at ``step``; async unless ``wait``."""
    saved = mngr.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                    meta=ocp.args.JsonSave(meta or {})), force=force)
    if wait:
        mngr.wait_until_finished()
    return saved


def latest_step(mngr: ocp.CheckpointManager) -> int | None:
    """The newest saved step, or None for an empty folder."""
    return mngr.latest_step()


def restore(mngr: ocp.CheckpointManager, abstract_state: Any, step: int | None = None) -> tuple[int, Any, dict]:
    """Restores (step, state, meta) at ``step`` (default: the latest) into ``abstract_state``'s structure."""
    step = mngr.latest_step() if step is None else step
    if step is None:
        raise CheckpointError(f"no checkpoint in {mngr.directory}")
    abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, abstract_state)
    try:
        got = mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract),
                                                         meta=ocp.args.JsonRestore()))
    except (ValueError, KeyError, FileNotFoundError) as e:
        raise CheckpointError(f"checkpoint step {step} in {mngr.directory} does not match this model: {e}") from e
    return step, got.state, dict(got.meta or {})


def save_tree_npz(path: str | os.PathLike, tree: dict) -> None:
    """Writes a nested dict of arrays as one uncompressed .npz (keys: '/'-joined paths), atomically."""
    from flax import traverse_util
    flat = {"/".join(k): np.asarray(v) for k, v in traverse_util.flatten_dict(tree).items()}
    if any("/" in part for k in traverse_util.flatten_dict(tree) for part in k):
        raise ValueError("save_tree_npz: tree keys may not contain '/'")
    path = os.fspath(path)
    tmp = path + ".tmp.npz"
    np.savez(tmp, **flat)
    os.replace(tmp, path)


def load_tree_npz(path: str | os.PathLike) -> dict:
    """The nested dict of numpy arrays `save_tree_npz` wrote (pickled objects are refused)."""
    from flax import traverse_util
    try:
        with np.load(os.fspath(path), allow_pickle=False) as f:
            flat = {tuple(k.split("/")): np.asarray(f[k]) for k in f.files}
    except (OSError, ValueError) as e:
        raise CheckpointError(f"cannot read parameter file {path}: {e}") from e
    return traverse_util.unflatten_dict(flat)
