"""Using a trained MaskGAN: its generator from a training workdir or an exported folder.

A training workdir holds ``config.json`` and orbax checkpoints (`gan.train`); an exported
generator folder (`gan_export.export_generator`) holds ``config.json``, ``generator.npz``
(the generator's parameters only, no pickle) and ``export.json``. Every consumer
(``--noise=gan:DIR``, generate_noise, the invert adversary, noise_quality) loads through
`load_generator`, so both kinds of folder are accepted everywhere.
"""
from __future__ import annotations

import json
import os
from typing import Any, Callable

import jax
import jax.numpy as jnp

from maskgan_jax import checkpoint
from maskgan_jax.data.base import resolve_inside
from maskgan_jax.gan import CHECKPOINT_DIR, CONFIG_FILE, GanConfig, abstract_state, init_state, models, read_config
from maskgan_jax.models import wavegan

GENERATOR_FILE = "generator.npz"
EXPORT_INFO_FILE = "export.json"


def target_folder(config: GanConfig, workdir: str, given: str | None = None) -> str:
    """The folder of a ``dir:`` target named by a workdir's config.json, resolved safely.

    A path read from a workdir's config must stay inside that workdir (a relative path
    without '..'); any other folder is used only when the caller names it (``given``, e.g.
    generate_noise's --target_dir), never followed from the file alone.
    """
    if not config.target.startswith("dir:"):
        raise ValueError(f"target {config.target!r} is not a dir: target")
    if given:
        return given
    path = config.target[len("dir:"):]
    inside = None if os.path.isabs(path) else resolve_inside(workdir, path)
    if inside is None:
        raise ValueError(f"{os.path.join(workdir, CONFIG_FILE)} names target dir:{path}, outside the "
                         f"workdir; pass its folder explicitly (--target_dir) to use it")
    return inside


def is_exported_generator(path: str) -> bool:
    """Whether ``path`` is an exported generator folder (rather than a training workdir)."""
    return os.path.isfile(os.path.join(path, GENERATOR_FILE))


def export_info(folder: str) -> dict:
    """The ``export.json`` record of an exported generator folder ({} when absent)."""
    path = os.path.join(folder, EXPORT_INFO_FILE)
    if not os.path.exists(path):
        return {}
    with open(path) as fh:
        return json.load(fh)


def _exported_params(folder: str, config: GanConfig) -> Any:
    params = checkpoint.load_tree_npz(os.path.join(folder, GENERATOR_FILE))
    want = jax.eval_shape(lambda: init_state(config))["g_params"]
    got_shapes = jax.tree_util.tree_map(lambda a: (a.shape, str(a.dtype)), params)
    want_shapes = jax.tree_util.tree_map(lambda a: (tuple(a.shape), str(a.dtype)), want)
    if got_shapes != want_shapes:
        raise ValueError(f"{folder}/{GENERATOR_FILE} does not hold the generator of its config.json")
    return jax.tree_util.tree_map(jnp.asarray, params)


def load_generator(workdir: str, step: int | None = None) -> tuple[GanConfig, Any, int]:
    """(config, generator parameters, step) of a training workdir (latest checkpoint, or ``step``)
    or of an exported generator folder (whose one step must equal ``step`` when given)."""
    config = read_config(workdir)
    if is_exported_generator(workdir):
        got_step = int(export_info(workdir).get("step", -1))
        if step is not None and step != got_step:
            raise ValueError(f"{workdir} is an exported generator of step {got_step}, not {step}")
        return config, _exported_params(workdir, config), got_step
    mngr = checkpoint.manager(os.path.join(workdir, CHECKPOINT_DIR), max_to_keep=config.keep_checkpoints)
    try:
        got_step, state, _ = checkpoint.restore(mngr, abstract_state(config), step)
    finally:
        mngr.close()
    return config, state["g_params"], int(got_step)


def load_noise_sampler(workdir: str, step: int | None = None) -> tuple[Callable[[jax.Array, int], jax.Array], dict]:
    """``(sample_fn, info)``: sample_fn(key, batch) -> float32 [batch, slice_len] from a trained generator.

    ``workdir`` is a training workdir or an exported generator folder (`load_generator`).
    sample_fn is jittable (the generator parameters are closed over); info holds the run's
    ``config`` (a dict), the ``step`` and the folder.
    """
    config, g_params, got_step = load_generator(workdir, step)
    gen, _ = models(config)

    def sample_fn(key: jax.Array, batch: int) -> jax.Array:
        return gen.apply({"params": g_params}, wavegan.sample_latent(key, batch, config.latent_dim))

    return sample_fn, {"config": config.to_json(), "step": int(got_step), "workdir": os.path.abspath(workdir)}
