"""Scores the randomness of audio files: Wald–Wolfowitz runs and Cox–Stuart trend tests.

    python -m experiments.score_randomness --inputs=DIR_OR_FILE[,...] --out=scores.jsonl

Writes one JSON line per file (kind "file", or kind "error" for a file that could not be
read, which is skipped) and a final summary (kind "summary": mean p, mean z and the
fraction of p < 0.05 for each test). Audio is read as mono at --sample_rate and scored
as int16 PCM.
"""
from __future__ import annotations

import sys

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_list("inputs", None, "Audio files or folders (searched recursively), comma separated.")
flags.DEFINE_string("out", None, "Output JSON-lines file (written atomically).")
flags.DEFINE_integer("sample_rate", 16000, "Rate the audio is resampled to before scoring.")
flags.DEFINE_bool("progress", True, "Progress line with ETA on stderr.")


def _loader(sample_rate: int):
    try:
        from maskgan_jax import audio
    except ImportError:
        audio = None
    if audio is not None:
        return lambda path: audio.float_to_int16(audio.load_audio(path, sample_rate=sample_rate))[0]

    import numpy as np
    import soundfile as sf

    def load(path):
        wave, rate = sf.read(path, dtype="float32", always_2d=True)
        if rate != sample_rate:
            raise ValueError(f"sample rate {rate} Hz, expected {sample_rate} Hz "
                             f"(resampling needs maskgan_jax.audio)")
        return wave.mean(axis=1, dtype=np.float32) if wave.shape[1] > 1 else wave[:, 0]

    return load


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not FLAGS.inputs:
        raise app.UsageError("--inputs is required (audio files or folders)")
    if not FLAGS.out:
        raise app.UsageError("--out is required (a .jsonl file)")
    if FLAGS.sample_rate <= 0:
        raise app.UsageError(f"--sample_rate must be positive, got {FLAGS.sample_rate}")
    from kernels import score
    from maskgan_jax.progress import Progress
    from maskgan_jax.results import versions, write_jsonl_atomic
    try:
        paths = score.find_audio(FLAGS.inputs)
    except ValueError as e:
        raise app.UsageError(f"--inputs: {e}") from None
    if not paths:
        raise app.UsageError(f"--inputs: no audio files found in {FLAGS.inputs}")
    config = {"inputs": FLAGS.inputs, "sample_rate": FLAGS.sample_rate,
              "wald_wolfowitz": {"cutoff": "median", "correction": "statsmodels", "ties": "keep"},
              "cox_stuart": {"alternative": "two-sided"}, "representation": "int16 PCM"}
    with Progress(len(paths), "score_randomness", "files", enabled=FLAGS.progress) as bar:
        records = list(score.score_files(paths, _loader(FLAGS.sample_rate), bar.update))
    scored = [r for r in records if r["kind"] == "file"]
    errors = [r for r in records if r["kind"] == "error"]
    for r in errors:
        print(f"score_randomness: skipped {r['path']}: {r['error']}", file=sys.stderr)
    summary = {"kind": "summary", "task": "randomness", "noise": None, "files": len(scored),
               "skipped": len(errors), "tests": score.summarize(scored), "config": config,
               "versions": versions()}
    for r in records:
        r["config"] = config
    write_jsonl_atomic(FLAGS.out, records + [summary])
    print(f"score_randomness: {len(scored)} file(s) scored, {len(errors)} skipped -> {FLAGS.out}",
          file=sys.stderr)


def run():
    app.run(main)


if __name__ == "__main__":
    run()
