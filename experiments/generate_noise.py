"""Writes MaskGAN masking noise as 16-bit wav, calibrated to a dB SPL level (≤ 45 unless allowed).

    python -m experiments.generate_noise --workdir=/tmp/maskgan --seconds=30 --out=noise.wav --spl_db=45
    python -m experiments.generate_noise --workdir=/tmp/maskgan --num_clips=100 --out=noise_dir/

Prints and writes (next to the output, .json / report.json) the level, spectral flatness
and the per-octave-band power-spectrum deviation from the training target, and every
noise-quality measure with the gate's verdict (maskgan_jax.quality). --workdir also takes
a folder written by train_maskgan --export_generator.
"""
from __future__ import annotations

from absl import app, flags

from experiments import cli

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "A train_maskgan workdir.")
flags.DEFINE_float("seconds", None, "Length of one continuous, cross-faded stream (written to --out, a .wav).")
flags.DEFINE_integer("num_clips", None, "Number of separate clips (written into the folder --out).")
flags.DEFINE_string("out", None, "Output wav (with --seconds) or folder (with --num_clips).")
flags.DEFINE_float("spl_db", 45.0, "Playback level in dB SPL.")
flags.DEFINE_bool("allow_above_comfort", False, "Allow levels above the 45 dB SPL comfort limit (research only).")
flags.DEFINE_float("fullscale_spl", 90.0, "Playback calibration: dB SPL of a 0 dBFS RMS signal.")
flags.DEFINE_float("crossfade_ms", 50.0, "Cross-fade between consecutive clips of a stream.")
flags.DEFINE_integer("step", None, "Checkpoint step (default: the latest).")
flags.DEFINE_integer("seed", 0, "Random seed of the latents.")
flags.DEFINE_string("target_dir", None, "The training target's folder, for a run trained on dir:FOLDER "
                    "(config.json's folder is followed only when it lies inside the workdir).")
flags.DEFINE_integer("gate_clips", 32, "Clips per side of the noise-quality gate in the report (0 = none).")
flags.DEFINE_bool("gate_classifier", True, "Include the gate's two-sample classifier test (seconds on a CPU).")


def main(argv):
    if not FLAGS.workdir or not FLAGS.out:
        raise app.UsageError("--workdir and --out are required")
    if (FLAGS.seconds is None) == (FLAGS.num_clips is None):
        raise app.UsageError("give exactly one of --seconds (one stream) or --num_clips (separate clips)")
    # Imported here so that --help answers without loading JAX.
    from maskgan_jax import gan_generate, levels
    if FLAGS.spl_db > levels.COMFORT_LIMIT_SPL and not FLAGS.allow_above_comfort:
        raise app.UsageError(f"--spl_db={FLAGS.spl_db} is above the {levels.COMFORT_LIMIT_SPL:g} dB SPL comfort "
                             f"limit; pass --allow_above_comfort for research sweeps")
    try:
        report = gan_generate.generate_noise(
            FLAGS.workdir, FLAGS.out, num_clips=FLAGS.num_clips, seconds=FLAGS.seconds, spl_db=FLAGS.spl_db,
            allow_above_comfort=FLAGS.allow_above_comfort, seed=FLAGS.seed, fullscale_spl=FLAGS.fullscale_spl,
            crossfade_ms=FLAGS.crossfade_ms, step=FLAGS.step, target_dir=FLAGS.target_dir,
            gate_clips=FLAGS.gate_clips, gate_classifier=FLAGS.gate_classifier)
    except (FileNotFoundError, ValueError) as e:
        raise app.UsageError(f"--workdir={FLAGS.workdir}: {e}") from None
    print(gan_generate.format_report(report))


def run():
    """Console entry point (the same help and errors as python -m)."""
    cli.run(main, __name__)


if __name__ == "__main__":
    run()
