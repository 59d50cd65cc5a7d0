"""The noise-quality gate of a noise against its target: every measure, its threshold and the verdict.

    python -m experiments.noise_quality --noise=gan:/tmp/maskgan --num_clips=64 --out=gate.json
    python -m experiments.noise_quality --noise=white --num_clips=64 --out=white.json

--noise is white | pink | brown (the reference noises) or gan:DIR (a train_maskgan workdir or
an exported generator folder). The target is the GAN's training target, white otherwise
(--target overrides); both are drawn as clips of --slice_len samples (a GAN's own slice
length) at the same level.
"""
from __future__ import annotations

import json
import time

from absl import app, flags
from absl import logging as absl_logging

from experiments import cli

FLAGS = flags.FLAGS
flags.DEFINE_string("noise", None, "white | pink | brown | gan:DIR (workdir or exported generator).")
flags.DEFINE_string("target", None, "Target noise white | pink | brown (default: the GAN's, else white).")
flags.DEFINE_integer("num_clips", 64, "Clips per side.")
flags.DEFINE_integer("slice_len", 32768, "Clip length for reference noises (a GAN's own length otherwise).")
flags.DEFINE_integer("seed", 0, "Random seed (latents, target and reference noise, classifier).")
flags.DEFINE_bool("classifier", True, "Include the two-sample classifier test.")
flags.DEFINE_string("out", None, "Write the gate report (JSON) here.")

_REFERENCE = ("white", "pink", "brown")


def main(argv):
    if not FLAGS.noise:
        raise app.UsageError("--noise is required")
    if FLAGS.num_clips < 4:
        raise app.UsageError(f"--num_clips={FLAGS.num_clips}: the gate needs at least 4 clips per side")
    absl_logging.set_verbosity(absl_logging.WARNING)
    import dataclasses

    import jax

    from maskgan_jax import gan, gan_export, gan_load, gan_targets, quality, results
    key_noise, key_target = jax.random.split(jax.random.key(FLAGS.seed))
    if FLAGS.noise.startswith("gan:"):
        try:
            sample_fn, info = gan_load.load_noise_sampler(FLAGS.noise[4:])
        except (FileNotFoundError, ValueError) as e:
            raise app.UsageError(f"--noise={FLAGS.noise}: {e}") from None
        config = gan.GanConfig.from_json(info["config"])
        source = {"step": info["step"], "config": info["config"]}
    elif FLAGS.noise in _REFERENCE:
        config = gan.GanConfig(slice_len=FLAGS.slice_len, target=FLAGS.noise)
        sample_fn = lambda k, n: gan_targets.sample_target(config, k, n)  # noqa: E731
        source = {}
    else:
        raise app.UsageError(f"--noise={FLAGS.noise!r}: expected white, pink, brown or gan:DIR")
    target_cfg = dataclasses.replace(config, target=FLAGS.target or (config.target if source else "white"))
    t0 = time.perf_counter()
    generated = gan_export.sample_clips(sample_fn, key_noise, FLAGS.num_clips)
    folder = None
    if target_cfg.target.startswith("dir:"):
        try:
            folder = gan_load.target_folder(target_cfg, FLAGS.noise[4:])
        except ValueError as e:
            raise app.UsageError(f"--noise={FLAGS.noise}: {e}") from None
    target = gan_export.target_clips(target_cfg, key_target, FLAGS.num_clips, folder)
    report = quality.gate(generated, target, seed=FLAGS.seed, classifier=FLAGS.classifier)
    report.update(kind="noise_quality", noise=FLAGS.noise, target=target_cfg.target, seed=FLAGS.seed,
                  seconds=time.perf_counter() - t0, **source, versions=results.versions())
    print(quality.format_gate(report))
    if FLAGS.out:
        results.write_text_atomic(FLAGS.out, json.dumps(report, indent=1))


def run():
    cli.run(main, __name__)


if __name__ == "__main__":
    run()
