"""Scores the randomness of audio: Wald–Wolfowitz runs and Cox–Stuart trend tests.

    python -m experiments.score_randomness --inputs=DIR_OR_FILE[,...] --out=scores.jsonl
    python -m experiments.score_randomness --dataset=udi --noise=white --noise_spl=45 --out=s.jsonl

With --inputs, writes one JSON line per file (kind "file", or kind "error" for a file that
could not be read, which is skipped). With --dataset (a task: mgi, udi, sei, commands,
meaning its embedded corpus, or a corpus folder in a public layout), every clip of the
corpus's array store is scored, after --noise (none, white, pink, brown, speech_shaped,
babble, gan:DIR, dir:DIR, masker:DIR)
is mixed in at --noise_spl under speech at --speech_spl (the recording model of
maskgan_jax.levels); each clip's noise is the one the attack hears for the same row and
--seed (maskgan_jax.masking). One JSON line per clip
(kind "clip"). Both end with a summary (kind "summary": mean p, mean z and the fraction
of p < 0.05 for each test). Audio is scored as int16 PCM.
"""
from __future__ import annotations

import os
import sys

from absl import app, flags

from experiments import cli

from maskgan_jax.vocab import TASKS

FLAGS = flags.FLAGS
flags.DEFINE_list("inputs", None, "Audio files or folders (searched recursively), comma separated.")
flags.DEFINE_string("dataset", None, "mgi | udi | sei | commands (the embedded corpus) or a corpus folder.")
flags.DEFINE_enum("data_size", "default", ["default", "tiny"], "Size of the embedded corpus.")
flags.DEFINE_integer("data_seed", 0, "Seed of the embedded corpus.")
flags.DEFINE_string("cache_dir", None, "Embedded corpora and array stores (default $MASKGAN_JAX_CACHE "
                    "or ~/.cache/maskgan_jax).")
flags.DEFINE_string("noise", "none", "Noise mixed into --dataset clips: none | white | pink | brown | "
                    "speech_shaped | babble (built from the corpus) | gan:WORKDIR | dir:FOLDER_OF_WAVS | "
                    "masker:WORKDIR.")
flags.DEFINE_float("noise_spl", 45.0, "Noise level, dB SPL (at most 45 unless allowed).")
flags.DEFINE_float("speech_spl", 60.0, "Speech level, dB SPL (the SNR is speech_spl - noise_spl).")
flags.DEFINE_bool("allow_above_comfort", False, "Allow --noise_spl above the 45 dB SPL comfort limit.")
flags.DEFINE_integer("seed", 0, "Seed of the noise (and of each clip's room).")
flags.DEFINE_enum("channel", "digital", ["digital", "room"],
                  "digital: the noise added at the SNR; room: the microphone's recording of talker and masker "
                  "in a simulated room (one per clip).")
flags.DEFINE_integer("rooms", 32, "Room channel: rooms in the impulse-response bank.")
flags.DEFINE_integer("batch_clips", 256, "Clips mixed and scored at a time.")
flags.DEFINE_integer("num_threads", None, "Threads for scoring clips (default: all).")
flags.DEFINE_string("out", None, "Output JSON-lines file (written atomically).")
flags.DEFINE_integer("sample_rate", 16000, "Rate the audio is resampled to before scoring.")
flags.DEFINE_bool("progress", True, "Progress line with ETA on stderr.")


def _loader(sample_rate: int):
    from maskgan_jax import audio   # see main
    return lambda path: audio.float_to_int16(audio.load_audio(path, sample_rate=sample_rate))[0]


def score_dataset(st, noise: str, seed: int, noise_spl: float, speech_spl: float,
                  allow_above_comfort: bool, batch_clips: int, num_threads, progress,
                  channel: str = "digital", room_dir: str | None = None, rooms: int = 32) -> list[dict]:
    """One record per clip of an opened store, scored after the noise is mixed in.

    Each clip's noise (and, in the room channel, its room: the microphone's recording is
    scored) is the one the attack hears at test time for the same --seed and row
    (`masking.noise_program` and the rooms keyed by `keys.test_noise`), mixed the same way.
    """
    import jax   # see main
    import numpy as np

    from kernels import score
    from maskgan_jax import attack, attack_loop, audio, keys, masking, room
    snr = masking.check_levels(noise_spl, speech_spl, allow_above_comfort)
    program = masking.noise_program(noise, st.length, corpus=st)
    cfg = attack.AttackConfig(channel=channel, noise_spl=noise_spl, speech_spl=speech_spl,
                              allow_above_comfort=allow_above_comfort, rooms=rooms)
    hear = attack_loop.Hearing(program, snr, False, attack.room_channel(cfg, st.length, room_dir))
    mix = jax.jit(masking.mix)
    through_room = jax.jit(lambda c, z, r, a: room.room_mix_rms(c, z, r, a[1], a[2]))
    records = []
    for start in range(0, len(st), batch_clips):
        rows = np.arange(start, min(len(st), start + batch_clips))
        pcm = st.batch(rows)
        clipped = np.zeros(rows.size, np.int64)
        if program is not None or hear.room is not None:
            b = hear.with_noise({"index": np.asarray(rows, np.int32)}, keys.test_noise(seed))
            clean = audio.int16_to_float(pcm)
            if hear.room is not None:
                heard = through_room(clean, b.get("noise"), b["room"], hear.args)
                mixed, n_clip = heard.mic, heard.n_clipped
            else:
                mixed, n_clip = mix(clean, b["noise"], np.float32(snr))
            pcm = audio.float_to_int16(np.clip(np.asarray(mixed), -1.0, 1.0))[0]
            clipped = np.asarray(n_clip, np.int64)
        s = score.score_clips(pcm, num_threads=num_threads)
        for j, r in enumerate(rows.tolist()):
            rec = {"kind": "clip", "task": st.task, "dataset": st.name, "path": str(st.paths[r]),
                   "row": r, "noise": noise, "noise_spl": None if noise == "none" else noise_spl, "channel": channel,
                   "speech_spl": speech_spl, "seed": seed, "samples": int(pcm.shape[1]),
                   "n_clipped": int(clipped[j])}
            rec.update({k: v[j].item() for k, v in s.items()})
            records.append(rec)
        if progress is not None:
            progress(rows.size)
    return records


def main(argv):
    if bool(FLAGS.inputs) == bool(FLAGS.dataset):
        raise app.UsageError("pass exactly one of --inputs (audio files or folders) and --dataset")
    if not FLAGS.out:
        raise app.UsageError("--out is required (a .jsonl file)")
    if FLAGS.sample_rate <= 0:
        raise app.UsageError(f"--sample_rate must be positive, got {FLAGS.sample_rate}")
    if FLAGS.batch_clips <= 0:
        raise app.UsageError(f"--batch_clips must be positive, got {FLAGS.batch_clips}")
    if FLAGS.inputs and FLAGS.noise != "none":
        raise app.UsageError("--noise applies to --dataset clips; score noisy files as --inputs directly")
    # Imported here so that --help answers without loading JAX.
    from kernels import score
    from maskgan_jax import masking
    from maskgan_jax.data import cache
    from maskgan_jax.progress import Progress
    from maskgan_jax.results import versions, write_jsonl_atomic
    try:
        masking.check_spec(FLAGS.noise)
        if FLAGS.noise != "none":
            masking.check_levels(FLAGS.noise_spl, FLAGS.speech_spl, FLAGS.allow_above_comfort)
    except ValueError as e:
        raise app.UsageError(str(e)) from None
    tests = {"wald_wolfowitz": {"cutoff": "median", "correction": "statsmodels", "ties": "keep"},
             "cox_stuart": {"alternative": "two-sided"}, "representation": "int16 PCM"}
    if FLAGS.dataset:
        try:
            task, folder = (FLAGS.dataset, None) if FLAGS.dataset in TASKS else (None, FLAGS.dataset)
            st = cache.open_task_store(task, folder, FLAGS.cache_dir, FLAGS.data_size, FLAGS.data_seed,
                                       progress=FLAGS.progress, flag="--dataset",
                                       log=lambda m: print(f"score_randomness: {m}", file=sys.stderr))
        except ValueError as e:
            raise app.UsageError(str(e)) from None
        config = {"dataset": FLAGS.dataset, "data_size": FLAGS.data_size, "data_seed": FLAGS.data_seed,
                  "noise": FLAGS.noise, "channel": FLAGS.channel, "noise_spl": FLAGS.noise_spl, "speech_spl": FLAGS.speech_spl,
                  "seed": FLAGS.seed, "store": st.store_dir, **tests}
        with Progress(len(st), "score_randomness", "clips", enabled=FLAGS.progress) as bar:
            records = score_dataset(st, FLAGS.noise, FLAGS.seed, FLAGS.noise_spl, FLAGS.speech_spl,
                                    FLAGS.allow_above_comfort, FLAGS.batch_clips, FLAGS.num_threads,
                                    bar.update, FLAGS.channel,
                                    os.path.join(FLAGS.cache_dir or cache.default_cache_dir(), "rooms"), FLAGS.rooms)
        scored, errors = records, []
        head = {"task": st.task, "dataset": st.name, "noise": FLAGS.noise,
                "noise_spl": None if FLAGS.noise == "none" else FLAGS.noise_spl,
                "speech_spl": FLAGS.speech_spl, "seed": FLAGS.seed, "clips": len(scored),
                "skipped": len(st.broken)}
    else:
        try:
            paths = score.find_audio(FLAGS.inputs)
        except ValueError as e:
            raise app.UsageError(f"--inputs: {e}") from None
        if not paths:
            raise app.UsageError(f"--inputs: no audio files found in {FLAGS.inputs}")
        config = {"inputs": FLAGS.inputs, "sample_rate": FLAGS.sample_rate, **tests}
        with Progress(len(paths), "score_randomness", "files", enabled=FLAGS.progress) as bar:
            records = list(score.score_files(paths, _loader(FLAGS.sample_rate), bar.update))
        scored = [r for r in records if r["kind"] == "file"]
        errors = [r for r in records if r["kind"] == "error"]
        for r in errors:
            print(f"score_randomness: skipped {r['path']}: {r['error']}", file=sys.stderr)
        head = {"task": "randomness", "noise": None, "files": len(scored), "skipped": len(errors)}
    summary = {"kind": "summary", **head, "tests": score.summarize(scored), "config": config,
               "versions": versions()}
    for r in records:
        r["config"] = config
    write_jsonl_atomic(FLAGS.out, records + [summary])
    print(f"score_randomness: {len(scored)} scored, {summary['skipped']} skipped -> {FLAGS.out}",
          file=sys.stderr)


def run():
    """Console entry point (the same help and errors as python -m)."""
    cli.run(main, __name__)


if __name__ == "__main__":
    run()
