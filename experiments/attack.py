"""Runs one inference attack (K-fold) on a corpus, clean or masked, and writes JSON-lines results.

    python -m experiments.attack --task=sei --model=cnn --folds=5 --noise=white --out=sei.jsonl
    python -m experiments.attack --task=udi --model=crnn --noise=gan:runs/maskgan --adversary=adaptive

Without --data_dir the embedded corpus of the task is generated once under the cache folder.
"""
from __future__ import annotations

import dataclasses
import os

from absl import app, flags

from experiments import cli

from maskgan_jax.vocab import ADVERSARIES, CHANNELS, DENOISE_FRONT_END, MODEL_FAMILIES, TASKS

FLAGS = flags.FLAGS
flags.DEFINE_enum("task", None, list(TASKS),
                  "Inference task: music genre (FMA), speaker demographics (Common Voice), "
                  "speech emotion (RAVDESS), or speech commands (utility).")
flags.DEFINE_string("data_dir", None, "Corpus folder in its public layout (default: the embedded corpus).")
flags.DEFINE_string("cache_dir", None, "Embedded corpora and array stores (default $MASKGAN_JAX_CACHE "
                    "or ~/.cache/maskgan_jax).")
flags.DEFINE_enum("data_size", "default", ["default", "tiny"], "Size of the embedded corpus.")
flags.DEFINE_enum("config", "cpu", ["tiny", "cpu", "peer", "paper"],
                  "Named attack config (sizes and training recipe; experiments/configs/attack.py).")
flags.DEFINE_enum("model", "cnn", list(MODEL_FAMILIES), "Attacker family.")
flags.DEFINE_integer("folds", None, "K of the K-fold cross-validation (1 = the corpus's own splits).")
flags.DEFINE_string("noise", "none", "none | white | pink | brown | speech_shaped | babble (built from the corpus) | "
                    "gan:WORKDIR | dir:FOLDER_OF_WAVS | masker:WORKDIR (a trained masker)")
flags.DEFINE_float("noise_spl", 45.0, "Masking noise level, dB SPL (at most 45 unless allowed).")
flags.DEFINE_float("speech_spl", 60.0, "Speech level, dB SPL (the SNR is speech_spl - noise_spl).")
flags.DEFINE_bool("allow_above_comfort", False, "Allow --noise_spl above the 45 dB SPL comfort limit.")
flags.DEFINE_enum("adversary", "static", list(ADVERSARIES),
                  "static: trained on clean audio; adaptive: trained on masked audio; denoise: a "
                  "denoising front end (--front_end, default wiener) before its log-mel.")
flags.DEFINE_enum("channel", "digital", list(CHANNELS),
                  "digital: noise added at the SNR; room: talker, masker, microphone and listener in "
                  "simulated shoebox rooms (the masker's level at the listener, the speech's at 1 m).")
flags.DEFINE_integer("rooms", None, "Room channel: rooms in the impulse-response bank (one per example).")
flags.DEFINE_string("front_end", None, "Adversary front end before the log-mel: none, wiener, subtraction "
                    "(default: wiener for --adversary=denoise, else none).")
flags.DEFINE_enum("front_end_at", "test", ["test", "both"], "Apply the front end at test time or also in training.")
flags.DEFINE_integer("seed", 0, "Seed of folds, initialisation, batch order and noise.")
flags.DEFINE_integer("epochs", None, "At most this many passes over a fold's training split (beyond --min_steps).")
flags.DEFINE_integer("min_steps", None, "At least this many optimiser steps per fold, whatever the corpus size.")
flags.DEFINE_integer("eval_every", None, "Optimiser steps between validations (0: about 40 per fold).")
flags.DEFINE_integer("patience", None, "Validations without improvement before stopping (after --min_steps).")
flags.DEFINE_integer("batch_size", None, "Global batch size (a multiple of the device count).")
flags.DEFINE_float("learning_rate", None, "Peak AdamW learning rate.")
flags.DEFINE_enum("schedule", None, ["constant", "cosine"], "Learning-rate schedule (cosine: warmup, then decay).")
flags.DEFINE_float("weight_decay", None, "AdamW decoupled weight decay.")
flags.DEFINE_float("time_shift", None, "Training augmentation: random circular shift, fraction of the clip.")
flags.DEFINE_integer("time_masks", None, "Training augmentation: SpecAugment masks over frames.")
flags.DEFINE_integer("freq_masks", None, "Training augmentation: SpecAugment masks over mel bands.")
flags.DEFINE_list("channels", None, "Conv channels per block (cnn, crnn), e.g. 32,64,128,128.")
flags.DEFINE_enum("norm", None, ["none", "layer"], "Normalisation after each conv block.")
flags.DEFINE_bool("input_stats", None, "The readout also sees the input log-mel's per-band statistics.")
flags.DEFINE_float("dropout", None, "Dropout on the readout features in training.")
flags.DEFINE_enum("readout_init", None, ["random", "probe"],
                  "probe: a readout on input statistics starts from the probe fitted on each fold.")
flags.DEFINE_integer("n_mels", None, "Mel bands of the attacker's log-mel.")
flags.DEFINE_integer("hidden", None, "Recurrent width (rnn, crnn).")
flags.DEFINE_integer("layers", None, "Recurrent layers (rnn, crnn).")
flags.DEFINE_enum("cell", None, ["gru", "lstm"], "Recurrent cell.")
flags.DEFINE_enum("compute_dtype", None, ["float32", "bfloat16"],
                  "Dtype the attacker's layers compute in (parameters and optimizer state stay float32).")
flags.DEFINE_integer("num_devices", None, "Devices for data parallelism (default: all local).")
flags.DEFINE_string("coordinator_address", None, "Multi-host: JAX coordinator host:port (one attack over "
                    "every process's devices; results written by process 0).")
flags.DEFINE_integer("num_processes", None, "Multi-host: number of processes.")
flags.DEFINE_integer("process_id", None, "Multi-host: this process's id.")
flags.DEFINE_string("out", None, "JSON-lines output file (folds + summary; a rerun resumes).")
flags.mark_flags_as_required(["task", "out"])


def main(argv):
    # Imported here so that --help answers without loading JAX.
    from experiments.configs import attack as configs
    from maskgan_jax import attack, parallel
    from maskgan_jax.data import cache
    if FLAGS.coordinator_address or FLAGS.num_processes:
        # Before any computation: every process then sees the global devices.
        parallel.initialize_distributed(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
    over = cli.overrides(("folds", "epochs", "min_steps", "eval_every", "patience", "batch_size", "learning_rate",
                          "schedule", "weight_decay", "time_shift", "time_masks", "freq_masks", "readout_init",
                          "hidden", "layers", "cell", "norm", "input_stats", "dropout", "rooms", "compute_dtype",
                          "num_devices"))
    if FLAGS.n_mels is not None:
        over["mel"] = dataclasses.replace(configs.get(FLAGS.config, FLAGS.model).mel, n_mels=FLAGS.n_mels)
    if FLAGS.channels is not None:
        try:
            over["channels"] = tuple(int(c) for c in FLAGS.channels)
        except ValueError:
            raise app.UsageError(f"--channels={','.join(FLAGS.channels)}: expected integers") from None
    try:
        cfg = configs.get(FLAGS.config, FLAGS.model, task=FLAGS.task, noise=FLAGS.noise,
                          noise_spl=FLAGS.noise_spl, speech_spl=FLAGS.speech_spl,
                          allow_above_comfort=FLAGS.allow_above_comfort, adversary=FLAGS.adversary,
                          front_end=FLAGS.front_end or (DENOISE_FRONT_END if FLAGS.adversary == "denoise" else "none"),
                          channel=FLAGS.channel, front_end_at=FLAGS.front_end_at, seed=FLAGS.seed,
                          **over).validate()
    except ValueError as e:
        raise app.UsageError(str(e)) from None
    try:
        data = cache.open_task_store(FLAGS.task, FLAGS.data_dir, FLAGS.cache_dir, FLAGS.data_size)
    except ValueError as e:   # includes the layout loaders' LayoutError
        raise app.UsageError(str(e)) from None
    records = attack.run_attack(cfg, data, FLAGS.out,
                                room_dir=os.path.join(FLAGS.cache_dir or cache.default_cache_dir(), "rooms"))
    if not parallel.is_main_process():
        return
    s = records[-1]
    lo, hi = s["ci95"]
    ci = f" (95% CI {lo:.4f}..{hi:.4f})" if lo is not None else ""
    print(f"[attack] {FLAGS.task} {FLAGS.model} noise={FLAGS.noise} adversary={FLAGS.adversary}: "
          f"accuracy {s['accuracy']:.4f}{ci} over {s['n_folds']} fold(s) -> {FLAGS.out}")


def run():
    """Console entry point (the same help and errors as python -m)."""
    cli.run(main, __name__)


if __name__ == "__main__":
    run()
