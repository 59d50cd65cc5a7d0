"""Trains (or resumes) the MaskGAN noise generator; metrics as JSON lines in the workdir.

    python -m experiments.train_maskgan --config=cpu --workdir=/tmp/maskgan --steps=300
    python -m experiments.train_maskgan --config=cpu --workdir=/tmp/maskgan --steps=300 --export_generator=DIR

Rerunning with the same --workdir resumes from its latest checkpoint (the flags that
define the model must match the run's config.json). Quick noise-quality measures are
logged at every checkpoint. --export_generator writes the trained generator alone (with
the commands and commits that trained it and the noise-quality gate's figures) to a
folder that --noise=gan:DIR and generate_noise accept like a workdir.
"""
from __future__ import annotations

import sys

from absl import app, flags

from experiments import cli

FLAGS = flags.FLAGS
flags.DEFINE_string("config", "cpu", "Named config: tiny | cpu | cpu_quality | paper (experiments/configs/maskgan.py).")
flags.DEFINE_string("workdir", None, "Run folder: config.json, metrics.jsonl, checkpoints/ (resumed if present).")
flags.DEFINE_integer("steps", None, "Total training steps (generator updates) to reach.")
flags.DEFINE_integer("batch_size", None, "Global batch size (a multiple of the device count).")
flags.DEFINE_integer("dim", None, "WaveGAN model width d.")
flags.DEFINE_integer("slice_len", None, "Samples per clip: 16384, 32768 or 65536.")
flags.DEFINE_enum("loss", None, ["wgan-gp", "minimax"], "Adversarial loss.")
flags.DEFINE_integer("n_critic", None, "Critic updates per generator update.")
flags.DEFINE_float("learning_rate", None, "Adam learning rate of both players.")
flags.DEFINE_float("gp_weight", None, "WGAN-GP gradient-penalty weight λ.")
flags.DEFINE_string("target", None, "Target noise: white | pink | brown | dir:FOLDER_OF_AUDIO.")
flags.DEFINE_float("target_rms", None, "RMS every target clip is scaled to (0.1 = -20 dBFS).")
flags.DEFINE_integer("latent_dim", None, "Size of the generator's uniform latent z.")
flags.DEFINE_integer("pack", None, "PacGAN: clips the critic scores jointly (1 = the reference critic).")
flags.DEFINE_integer("mbstd_group", None, "Minibatch-stddev feature in the critic over groups of N inputs (0 = off).")
flags.DEFINE_integer("corr_group", None, "Critic feature: RMS waveform correlation within groups of N clips (0 = off).")
flags.DEFINE_integer("spectral_frame", None,
                     "Critic head on log-spectrum statistics over frames of N samples (0 = off).")
flags.DEFINE_integer("amplitude_points", None,
                     "Critic head input: each clip's smooth amplitude CDF at N levels (0 = off).")
flags.DEFINE_bool("antisymmetric", None, "Generator as an odd function of z, (g(z) - g(-z)) / 2 (no shared component).")
flags.DEFINE_integer("quality_clips", None, "Clips of the noise-quality measures logged at every checkpoint (0 = off).")
flags.DEFINE_enum("compute_dtype", None, ["float32", "bfloat16"],
                  "Dtype the generator and critic compute in (parameters and optimizer state stay float32).")
flags.DEFINE_integer("seed", None, "Random seed (initialisation, latents, target noise).")
flags.DEFINE_integer("log_every", None, "Steps between metric lines.")
flags.DEFINE_integer("checkpoint_every", None, "Steps between checkpoints.")
flags.DEFINE_integer("keep_checkpoints", None, "How many recent checkpoints to keep.")
flags.DEFINE_string("export_generator", None,
                    "After training, export the generator (and its gate figures) to this folder.")
flags.DEFINE_integer("export_gate_clips", 64,
                     "Clips per side of the gate check written with --export_generator (0 = none).")
flags.DEFINE_integer("num_devices", None, "Use the first N devices (default: all).")
flags.DEFINE_string("coordinator_address", None, "Multi-host: JAX coordinator host:port.")
flags.DEFINE_integer("num_processes", None, "Multi-host: number of processes.")
flags.DEFINE_integer("process_id", None, "Multi-host: this process's id.")

_FIELDS = ("steps", "batch_size", "dim", "slice_len", "loss", "n_critic", "learning_rate", "gp_weight", "target",
           "target_rms", "latent_dim", "pack", "mbstd_group", "corr_group", "spectral_frame", "amplitude_points",
           "antisymmetric", "quality_clips", "compute_dtype", "seed", "log_every", "checkpoint_every", "keep_checkpoints")


def main(argv):
    if not FLAGS.workdir:
        raise app.UsageError("--workdir is required")
    # Imported here so that --help answers without loading JAX.
    from experiments.configs import maskgan as configs
    from maskgan_jax import gan, gan_export, parallel, quality
    try:
        config = configs.get_config(FLAGS.config, **{k: getattr(FLAGS, k) for k in _FIELDS})
    except ValueError as e:
        msg = str(e)
        raise app.UsageError(msg if msg.startswith("--") else f"--{msg}") from None
    if FLAGS.coordinator_address or FLAGS.num_processes:
        parallel.initialize_distributed(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
    say = (lambda m: print(m, file=sys.stderr, flush=True)) if parallel.is_main_process() else (lambda m: None)
    if parallel.is_main_process():
        gan_export.record_run(FLAGS.workdir)
    gan.train(config, FLAGS.workdir, num_devices=FLAGS.num_devices, log_fn=say)
    if FLAGS.export_generator and parallel.is_main_process():
        info = gan_export.export_generator(FLAGS.workdir, FLAGS.export_generator, gate_clips=FLAGS.export_gate_clips)
        say(f"exported step {info['step']} ({info['generator_bytes'] / 1e6:.2f} MB) to {FLAGS.export_generator}")
        if info["gate"] is not None:
            say(quality.format_gate(info["gate"]))


def run():
    """Console entry point (the same help and errors as python -m)."""
    cli.run(main, __name__)


if __name__ == "__main__":
    run()
