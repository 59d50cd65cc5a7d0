"""Trains a universal masker against the attackers (maskgan_jax.masker); `--noise=masker:DIR` plays it.

    python -m experiments.train_masker --workdir=/tmp/masker
    python -m experiments.train_masker --workdir=/tmp/masker --tasks=udi,sei --rounds=200

The masker is a learned spectral shape over white noise, normalised to unit RMS and mixed at
SNR = --speech_spl - --noise_spl (45 dB SPL at most): the attackers (probe and a small CNN per
private task on the embedded corpora's training split) and the command recogniser are
retrained on masked audio round after round, and the masker steps towards the ensemble's
(current attackers and a pool of past ones) uniform predictions while keeping the recogniser's
loss low. The workdir gets config.json, masker.npz and metrics.jsonl (a rerun trains afresh).
"""
from __future__ import annotations

import sys

from absl import app, flags

from experiments import cli

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Run folder: config.json, masker.npz, metrics.jsonl.")
flags.DEFINE_list("tasks", None, "Private tasks whose attackers the masker confuses (default udi).")
flags.DEFINE_string("utility_task", None, "Task whose recogniser must keep working (default commands; '' none).")
flags.DEFINE_enum("data_size", None, ["default", "tiny"], "Size of the embedded corpora.")
flags.DEFINE_string("cache_dir", None, "Embedded corpora and array stores (default $MASKGAN_JAX_CACHE "
                    "or ~/.cache/maskgan_jax).")
flags.DEFINE_integer("rounds", None, "Masker updates (each after an attacker update).")
flags.DEFINE_integer("warmup_rounds", None, "Attacker updates on white noise before the masker moves.")
flags.DEFINE_integer("batch_size", None, "Clips per task per update (a multiple of the device count).")
flags.DEFINE_integer("bands", None, "Learned log-gains over mel-spaced bands.")
flags.DEFINE_float("masker_lr", None, "Adam learning rate of the masker's log-gains.")
flags.DEFINE_float("attacker_lr", None, "Adam learning rate of the attackers.")
flags.DEFINE_integer("pool_size", None, "Past attacker snapshots in the masker's ensemble.")
flags.DEFINE_float("utility_weight", None, "Weight of the command recogniser's loss in the masker's objective.")
flags.DEFINE_float("noise_spl", None, "Masker level, dB SPL (at most 45).")
flags.DEFINE_float("speech_spl", None, "Speech level, dB SPL (the SNR is speech_spl - noise_spl).")
flags.DEFINE_integer("seed", None, "Seed of initialisation, batches and noise.")
flags.DEFINE_integer("num_devices", None, "Devices for data parallelism (default: all local).")

_FIELDS = ("utility_task", "data_size", "rounds", "warmup_rounds", "batch_size", "bands", "masker_lr",
           "attacker_lr", "pool_size", "utility_weight", "noise_spl", "speech_spl", "seed", "num_devices")


def main(argv):
    if not FLAGS.workdir:
        raise app.UsageError("--workdir is required")
    # Imported here so that --help answers without loading JAX.
    import dataclasses

    from maskgan_jax import masker
    over = cli.overrides(_FIELDS)
    if FLAGS.tasks is not None:
        over["tasks"] = tuple(FLAGS.tasks)
    try:
        cfg = dataclasses.replace(masker.MaskerConfig(), **over).validate()
    except ValueError as e:
        raise app.UsageError(str(e)) from None
    last = masker.train(cfg, FLAGS.workdir, FLAGS.cache_dir, log=lambda m: print(m, file=sys.stderr, flush=True))
    print(f"[train_masker] {FLAGS.workdir}: confusion {last.get('confusion', float('nan')):.4f}, "
          f"recogniser loss {last.get('utility_loss', float('nan')):.4f} -> --noise=masker:{FLAGS.workdir}")


def run():
    """Console entry point (the same help and errors as python -m)."""
    cli.run(main, __name__)


if __name__ == "__main__":
    run()
