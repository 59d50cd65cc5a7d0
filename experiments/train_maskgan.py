"""Trains (or resumes) the MaskGAN noise generator; metrics as JSON lines in the workdir.

    python -m experiments.train_maskgan --config=cpu --workdir=/tmp/maskgan --steps=300

Rerunning with the same --workdir resumes from its latest checkpoint (the flags that
define the model must match the run's config.json).
"""
from __future__ import annotations

import sys

from absl import app, flags

from experiments import cli

FLAGS = flags.FLAGS
flags.DEFINE_string("config", "cpu", "Named config: tiny | cpu | paper (experiments/configs/maskgan.py).")
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
flags.DEFINE_integer("seed", None, "Random seed (initialisation, latents, target noise).")
flags.DEFINE_integer("log_every", None, "Steps between metric lines.")
flags.DEFINE_integer("checkpoint_every", None, "Steps between checkpoints.")
flags.DEFINE_integer("keep_checkpoints", None, "How many recent checkpoints to keep.")
flags.DEFINE_integer("num_devices", None, "Use the first N devices (default: all).")
flags.DEFINE_string("coordinator_address", None, "Multi-host: JAX coordinator host:port.")
flags.DEFINE_integer("num_processes", None, "Multi-host: number of processes.")
flags.DEFINE_integer("process_id", None, "Multi-host: this process's id.")

_FIELDS = ("steps", "batch_size", "dim", "slice_len", "loss", "n_critic", "learning_rate", "gp_weight", "target",
           "target_rms", "seed", "log_every", "checkpoint_every", "keep_checkpoints")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not FLAGS.workdir:
        raise app.UsageError("--workdir is required")
    # Imported here so that --help answers without loading JAX.
    from experiments.configs import maskgan as configs
    from maskgan_jax import gan, parallel
    try:
        config = configs.get_config(FLAGS.config, **{k: getattr(FLAGS, k) for k in _FIELDS})
    except ValueError as e:
        msg = str(e)
        raise app.UsageError(msg if msg.startswith("--") else f"--{msg}") from None
    if FLAGS.coordinator_address or FLAGS.num_processes:
        parallel.initialize_distributed(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
    say = (lambda m: print(m, file=sys.stderr, flush=True)) if parallel.is_main_process() else (lambda m: None)
    gan.train(config, FLAGS.workdir, num_devices=FLAGS.num_devices, log_fn=say)


def run():
    """Console entry point (the same help and errors as python -m)."""
    cli.run(main, __name__)


if __name__ == "__main__":
    run()
