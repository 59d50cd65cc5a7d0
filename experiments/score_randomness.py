"""Scores the randomness of audio: Wald–Wolfowitz runs and Cox–Stuart trend tests.

    python -m experiments.score_randomness --inputs=DIR_OR_FILE[,...] --out=scores.jsonl
    python -m experiments.score_randomness --dataset=udi --noise=white --noise_spl=45 --out=s.jsonl

With --inputs, writes one JSON line per file (kind "file", or kind "error" for a file that
could not be read, which is skipped). With --dataset (a task: mgi, udi, sei, commands,
meaning its embedded corpus, or a corpus folder in a public layout), every clip of the
corpus's array store is scored, after --noise (none, white, pink, brown) is mixed in at
--noise_spl under speech at --speech_spl (the recording model of maskgan_jax.levels);
each clip's noise comes from its row index and --seed alone. One JSON line per clip
(kind "clip"). Both end with a summary (kind "summary": mean p, mean z and the fraction
of p < 0.05 for each test). Audio is scored as int16 PCM.
"""
from __future__ import annotations

import hashlib
import os
import sys

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_list("inputs", None, "Audio files or folders (searched recursively), comma separated.")
flags.DEFINE_string("dataset", None, "mgi | udi | sei | commands (the embedded corpus) or a corpus folder.")
flags.DEFINE_enum("data_size", "default", ["default", "tiny"], "Size of the embedded corpus.")
flags.DEFINE_integer("data_seed", 0, "Seed of the embedded corpus.")
flags.DEFINE_string("cache_dir", None, "Embedded corpora and array stores (default $MASKGAN_JAX_CACHE "
                    "or ~/.cache/maskgan_jax).")
flags.DEFINE_enum("noise", "none", ["none", "white", "pink", "brown"], "Noise mixed into --dataset clips.")
flags.DEFINE_float("noise_spl", 45.0, "Noise level, dB SPL (at most 45 unless allowed).")
flags.DEFINE_float("speech_spl", 60.0, "Speech level, dB SPL (the SNR is speech_spl - noise_spl).")
flags.DEFINE_bool("allow_above_comfort", False, "Allow --noise_spl above the 45 dB SPL comfort limit.")
flags.DEFINE_integer("seed", 0, "Seed of the noise.")
flags.DEFINE_integer("batch_clips", 256, "Clips mixed and scored at a time.")
flags.DEFINE_integer("num_threads", None, "Threads for scoring clips (default: all).")
flags.DEFINE_string("out", None, "Output JSON-lines file (written atomically).")
flags.DEFINE_integer("sample_rate", 16000, "Rate the audio is resampled to before scoring.")
flags.DEFINE_bool("progress", True, "Progress line with ETA on stderr.")

TASKS = ("mgi", "udi", "sei", "commands")


def _loader(sample_rate: int):
    from maskgan_jax import audio
    return lambda path: audio.float_to_int16(audio.load_audio(path, sample_rate=sample_rate))[0]


def _cache_dir() -> str:
    return FLAGS.cache_dir or os.environ.get("MASKGAN_JAX_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "maskgan_jax")


def open_dataset(dataset: str, cache_dir: str, size: str, data_seed: int, progress: bool):
    """The array store of a task's embedded corpus or of a corpus folder."""
    from maskgan_jax.data import layouts, store, synthetic
    if dataset in TASKS:
        task = dataset
        folder = os.path.join(cache_dir, "embedded", f"{task}-{size}-seed{data_seed}")
        root = synthetic.make_corpus(task, folder, seed=data_seed, size=size)
    elif os.path.isdir(dataset):
        task, root = None, dataset
    else:
        raise ValueError(f"--dataset={dataset}: neither a task ({', '.join(TASKS)}) nor a folder")
    corpus = layouts.load_corpus(root, task)
    for path, reason in corpus.broken:
        print(f"score_randomness: skipped {path}: {reason}", file=sys.stderr)
    # The same store folder as the attack binary's, so a corpus is decoded once.
    tag = hashlib.sha1(os.path.abspath(root).encode()).hexdigest()[:12]
    return store.open_or_build_store(corpus, os.path.join(cache_dir, "stores", f"{corpus.task}-{tag}"),
                                     progress=progress)


def noisy_batches(pcm_BxT_batches, rows_batches, noise: str, seed: int, noise_spl: float,
                  speech_spl: float, allow_above_comfort: bool):
    """Yields (int16 clips, clipped-sample counts) with the noise mixed in on the host."""
    import numpy as np

    from maskgan_jax import audio, levels
    if noise == "none":
        for pcm in pcm_BxT_batches:
            yield pcm, np.zeros(pcm.shape[0], np.int64)
        return
    import jax

    from maskgan_jax import noise as ref_noise
    fn = getattr(ref_noise, noise)
    base = jax.random.key(seed)
    draw = jax.jit(lambda rows, t: jax.vmap(lambda r: fn(jax.random.fold_in(base, r), (t,)))(rows),
                   static_argnums=1)
    for pcm, rows in zip(pcm_BxT_batches, rows_batches):
        n = np.asarray(draw(jax.numpy.asarray(rows, jax.numpy.uint32), pcm.shape[1]))
        mix = levels.mix_at_spl(audio.int16_to_float(pcm), n, speech_spl=speech_spl, noise_spl=noise_spl,
                                allow_above_comfort=allow_above_comfort)
        yield audio.float_to_int16(mix.wave)[0], np.atleast_1d(mix.n_clipped)


def score_dataset(st, noise: str, seed: int, noise_spl: float, speech_spl: float,
                  allow_above_comfort: bool, batch_clips: int, num_threads, progress) -> list[dict]:
    """One record per clip of an opened store, scored after the noise is mixed in."""
    from kernels import score
    row_batches = [list(range(r, min(len(st), r + batch_clips))) for r in range(0, len(st), batch_clips)]
    pcm_batches = (st.batch(b) for b in row_batches)
    records = []
    for idx, (pcm, clipped) in zip(row_batches, noisy_batches(pcm_batches, row_batches, noise, seed,
                                                                noise_spl, speech_spl, allow_above_comfort)):
        s = score.score_clips(pcm, num_threads=num_threads)
        for j, r in enumerate(idx):
            rec = {"kind": "clip", "task": st.task, "dataset": st.name, "path": str(st.paths[r]),
                   "row": r, "noise": noise, "noise_spl": None if noise == "none" else noise_spl,
                   "speech_spl": speech_spl, "seed": seed, "samples": int(pcm.shape[1]),
                   "n_clipped": int(clipped[j])}
            rec.update({k: v[j].item() for k, v in s.items()})
            records.append(rec)
        if progress is not None:
            progress(len(idx))
    return records


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
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
    from kernels import score
    from maskgan_jax.levels import COMFORT_LIMIT_SPL
    from maskgan_jax.progress import Progress
    from maskgan_jax.results import versions, write_jsonl_atomic
    if FLAGS.noise != "none" and FLAGS.noise_spl > COMFORT_LIMIT_SPL and not FLAGS.allow_above_comfort:
        raise app.UsageError(f"--noise_spl={FLAGS.noise_spl:g} exceeds the {COMFORT_LIMIT_SPL:g} dB SPL "
                             f"comfort limit; pass --allow_above_comfort for a research sweep")
    tests = {"wald_wolfowitz": {"cutoff": "median", "correction": "statsmodels", "ties": "keep"},
             "cox_stuart": {"alternative": "two-sided"}, "representation": "int16 PCM"}
    if FLAGS.dataset:
        try:
            st = open_dataset(FLAGS.dataset, _cache_dir(), FLAGS.data_size, FLAGS.data_seed, FLAGS.progress)
        except ValueError as e:
            raise app.UsageError(str(e)) from None
        config = {"dataset": FLAGS.dataset, "data_size": FLAGS.data_size, "data_seed": FLAGS.data_seed,
                  "noise": FLAGS.noise, "noise_spl": FLAGS.noise_spl, "speech_spl": FLAGS.speech_spl,
                  "seed": FLAGS.seed, "store": st.store_dir, **tests}
        with Progress(len(st), "score_randomness", "clips", enabled=FLAGS.progress) as bar:
            records = score_dataset(st, FLAGS.noise, FLAGS.seed, FLAGS.noise_spl, FLAGS.speech_spl,
                                    FLAGS.allow_above_comfort, FLAGS.batch_clips, FLAGS.num_threads,
                                    bar.update)
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
    app.run(main)


if __name__ == "__main__":
    run()
