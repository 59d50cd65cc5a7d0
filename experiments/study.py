"""The main job: MaskGAN, noises, randomness, every attack cell, and the report (resumable).

  python -m experiments.study                         # default config -> out/study/report.md
  python -m experiments.study --cells='task=mgi,model=cnn|rnn,level=45'
  python -m experiments.study --worker=0 --num_workers=4 --out=/shared/study   # one of 4 workers
  python -m experiments.study --engine=ray            # cells as tasks on a local Ray (all CPUs)
  python -m experiments.study --engine=ray --ray_address=auto   # ... on a running Ray cluster
  python -m experiments.study --report_only           # merge whatever cells exist

A rerun with the same flags skips finished stages and cells and recomputes nothing.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import sys

from absl import app, flags

from experiments import cli

from experiments.configs import maskgan as maskgan_configs
from experiments.configs import study as study_configs

FLAGS = flags.FLAGS
flags.DEFINE_enum("config", "default", sorted(study_configs.CONFIGS), "Named study config.")
flags.DEFINE_string("out", "out/study", "Output folder (cells, stores, MaskGAN, report.md).")
flags.DEFINE_string("cells", "", "Subset of cells: 'key=glob|glob,key=glob;...' with keys task, model, "
                    "noise, level, adversary, seed, channel (',' = and; '|' and ';' = or; level '-' = clean).")
flags.DEFINE_integer("worker", 0, "This worker's index (0-based) when sharding across processes.")
flags.DEFINE_integer("num_workers", 1, "Number of workers sharing --out (each takes every N-th group).")
flags.DEFINE_enum("engine", "local", ["local", "ray"], "Where the cells run: here ('local') or as Ray tasks, "
                  "one per training group ('ray'; needs the ray extra: pip install .[ray]).")
flags.DEFINE_string("ray_address", "", "--engine=ray: 'auto' or HOST:PORT of a running cluster ('' = start a local Ray).")
flags.DEFINE_integer("ray_num_cpus", 1, "--engine=ray: CPUs per task (also the size of each task's XLA thread pool).")
flags.DEFINE_float("ray_num_gpus", 0.0, "--engine=ray: GPU share per task (0.5 = two tasks per GPU).")
flags.DEFINE_integer("ray_local_cpus", None, "--engine=ray without --ray_address: CPUs of the local Ray (default all).")
flags.DEFINE_integer("ray_max_retries", 3, "--engine=ray: retries of a task whose worker died or that raised.")
flags.DEFINE_bool("report_only", False, "Only merge the existing cells into report.md.")
flags.DEFINE_list("tasks", None, "Override: tasks (mgi, udi, sei, commands).")
flags.DEFINE_list("models", None, "Override: attacker families (cnn, rnn, crnn, probe).")
flags.DEFINE_list("channels", None, "Override: channels (digital, room).")
flags.DEFINE_list("noises", None, "Override: noises (white, pink, brown, gan).")
flags.DEFINE_list("levels", None, "Override: noise levels in dB SPL (all at or below 45 unless "
                  "--allow_above_comfort).")
flags.DEFINE_list("adversaries", None, "Override: adversaries (static, adaptive, denoise).")
flags.DEFINE_list("seeds", None, "Override: seeds.")
flags.DEFINE_bool("allow_above_comfort", None, "Allow levels above the 45 dB SPL comfort limit "
                  "(research sweeps; such cells are marked in the report).")
flags.DEFINE_string("data_root", None, "paper config: folder holding fma/, common_voice/, ravdess/, "
                    "speech_commands/.")
flags.DEFINE_string("gan_workdir", None, "Use this MaskGAN (a training workdir or an exported generator "
                    "folder) as it is, instead of the config's.")
flags.DEFINE_bool("retrain_gan", False, "Train the MaskGAN from scratch into OUT/maskgan (the default config's "
                  "recipe, cpu_quality: about 40 minutes on a 2-core CPU) instead of using the packaged one.")


def _floats(values, name):
    try:
        return tuple(float(v) for v in values)
    except ValueError:
        raise app.UsageError(f"--{name}={','.join(values)}: expected numbers") from None


def build_config():
    """The named config with the flag overrides."""
    over = {}
    if FLAGS.tasks:
        over["tasks"] = tuple(FLAGS.tasks)
    if FLAGS.models:
        over["models"] = tuple(FLAGS.models)
    if FLAGS.channels:
        over["channels"] = tuple(FLAGS.channels)
    if FLAGS.noises:
        over["noises"] = tuple(FLAGS.noises)
    if FLAGS.levels:
        over["levels"] = _floats(FLAGS.levels, "levels")
    if FLAGS.adversaries:
        over["adversaries"] = tuple(FLAGS.adversaries)
    if FLAGS.seeds:
        try:
            over["seeds"] = tuple(int(s) for s in FLAGS.seeds)
        except ValueError:
            raise app.UsageError(f"--seeds={','.join(FLAGS.seeds)}: expected integers") from None
    if FLAGS.allow_above_comfort is not None:
        over["allow_above_comfort"] = FLAGS.allow_above_comfort
    if FLAGS.data_root:
        if FLAGS.config != "paper":
            raise app.UsageError("--data_root applies to --config=paper")
        cfg = dataclasses.replace(study_configs.paper(FLAGS.data_root), **over)
    else:
        cfg = study_configs.get(FLAGS.config, **over)
    if FLAGS.gan_workdir and FLAGS.retrain_gan:
        raise app.UsageError("--gan_workdir and --retrain_gan exclude each other: use a MaskGAN or train one")
    if FLAGS.gan_workdir:
        # A trained MaskGAN is used as it is: the study trains none.
        cfg = dataclasses.replace(cfg, gan=None, gan_workdir=FLAGS.gan_workdir)
    if FLAGS.retrain_gan:
        cfg = dataclasses.replace(cfg, gan=cfg.gan or maskgan_configs.get_config("cpu_quality"), gan_workdir="")
    return cfg


def main(argv):
    # Imported here so that --help answers without loading JAX.
    from maskgan_jax import study
    try:
        cfg = build_config().validate()
        study_cells_check(FLAGS.cells)
        ray_options = ray_options_from_flags()
    except ValueError as e:
        raise app.UsageError(str(e)) from None
    started = False
    if ray_options is not None and not FLAGS.report_only:
        from maskgan_jax import study_ray   # Ray's processes start before JAX's threads do
        started = study_ray.connect(ray_options, lambda s: print(s, file=sys.stderr, flush=True))
    try:
        facts = study.run_study(cfg, FLAGS.out, cells=FLAGS.cells, worker=FLAGS.worker,
                                num_workers=FLAGS.num_workers, report_only=FLAGS.report_only,
                                engine=FLAGS.engine, ray_options=ray_options)
    finally:
        if started:
            import ray
            ray.shutdown()
    print(f"report: {facts['report']}  ({facts['wall_s']:.1f} s)")


def study_cells_check(spec: str) -> None:
    """Validates --cells and --worker/--num_workers before any work starts."""
    from maskgan_jax import study_grid   # see main
    study_grid.parse_filter(spec)
    study_grid.select([], spec, FLAGS.worker, FLAGS.num_workers)


def ray_options_from_flags():
    """The --ray_* flags as a validated study_ray.RayOptions (None for --engine=local)."""
    if FLAGS.engine != "ray":
        return None
    from maskgan_jax import study_ray   # see main
    if importlib.util.find_spec("ray") is None:
        raise ValueError("--engine=ray needs Ray: pip install 'maskgan-jax[ray]' (or ray>=2.40)")
    return study_ray.RayOptions(address=FLAGS.ray_address, num_cpus=FLAGS.ray_num_cpus,
                                num_gpus=FLAGS.ray_num_gpus, local_cpus=FLAGS.ray_local_cpus,
                                max_retries=FLAGS.ray_max_retries).validate()


def run():
    """Console entry point (the same help and errors as python -m)."""
    cli.run(main, __name__)


if __name__ == "__main__":
    run()
