"""Embedded corpora: seeded, procedurally generated stand-ins for FMA, Common Voice, RAVDESS
and Speech Commands, written to disk in the real public layouts so the real loaders read them.

Speech comes from a source-filter model (synthetic_speech: pitch by gender and age, formants
by vocal-tract length and accent, prosody by emotion); music from genre styles
(synthetic_music: tempo, scale, timbre, rhythm). Each clip then passes through a recording
channel (level, background noise, room reverberation) so classifiers face nuisance
variation. Generation is deterministic for a seed: every batch draws from its own
generator seeded by (seed, corpus, batch), so the thread count does not change a byte.

A corpus folder carries a manifest with the generation parameters; asking again for the
same corpus reuses it, a different request regenerates it, and a folder that is not a
generated corpus is never written into.
"""
from __future__ import annotations

import concurrent.futures
import csv
import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable

import numpy as np
import soundfile as sf

from maskgan_jax.data import synthetic_music as music
from maskgan_jax.data import synthetic_speech as speech
from maskgan_jax.vocab import TASK_LAYOUTS

LAYOUTS = tuple(TASK_LAYOUTS.values())
MANIFEST = "synthetic_manifest.json"
# Layout revision of the manifest; the generator's source digest is stored beside it.
VERSION = 1
SPEECH_RATE = speech.SAMPLE_RATE
# FMA tracks are written at 22.05 kHz (as many real MP3s are) so loaders exercise resampling.
MUSIC_RATE = 22050
_BATCH = 32


@dataclasses.dataclass(frozen=True)
class Size:
    """How much of each corpus to generate."""

    fma_artists_per_genre: int
    fma_tracks_per_artist: int
    cv_clients: int
    cv_clips_per_client: tuple  # (min, max) inclusive
    ravdess_actors: int
    ravdess_statements: int
    commands_speakers: int
    commands_repeat_prob: float
    background_seconds: float


SIZES = {
    # A few hundred clips per task: enough for the CNN attackers to learn.
    "default": Size(fma_artists_per_genre=10, fma_tracks_per_artist=4, cv_clients=80,
                    cv_clips_per_client=(2, 8), ravdess_actors=24, ravdess_statements=2,
                    commands_speakers=48, commands_repeat_prob=0.15, background_seconds=10.0),
    # A few dozen clips per task, for tests.
    "tiny": Size(fma_artists_per_genre=2, fma_tracks_per_artist=2, cv_clients=12,
                 cv_clips_per_client=(2, 3), ravdess_actors=4, ravdess_statements=1,
                 commands_speakers=4, commands_repeat_prob=0.0, background_seconds=2.0),
}


def layout_name(task_or_layout: str) -> str:
    """Layout for a task (mgi, udi, sei, commands) or a layout name (fma, common_voice, ...)."""
    if task_or_layout in TASK_LAYOUTS:
        return TASK_LAYOUTS[task_or_layout]
    if task_or_layout in LAYOUTS:
        return task_or_layout
    raise ValueError(f"unknown task or layout {task_or_layout!r}; expected one of "
                     f"{', '.join(TASK_LAYOUTS)} or {', '.join(LAYOUTS)}")


def read_manifest(root: str) -> dict | None:
    """The generation manifest of a corpus folder, or None when there is none (or it is unreadable)."""
    try:
        with open(os.path.join(root, MANIFEST), encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _code_digest() -> str:
    """Digest of the generator's source, so a changed generator never reuses an old corpus."""
    h = hashlib.sha256()
    for module in (__file__, speech.__file__, music.__file__):
        with open(module, "rb") as f:
            h.update(f.read())
    return h.hexdigest()[:16]


def _params(layout: str, seed: int, size: str) -> dict:
    params = {"generator": __name__, "version": VERSION, "code": _code_digest(), "layout": layout,
              "seed": int(seed), "size": size, "size_params": dataclasses.asdict(SIZES[size]),
              "soundfile": sf.__version__, "libsndfile": sf.__libsndfile_version__}
    # As read back from JSON (tuples become lists), so a stored manifest compares equal.
    return json.loads(json.dumps(params))


def make_corpus(task_or_layout: str, root: str, seed: int = 0, size: str = "default",
                workers: int | None = None) -> str:
    """Generate one embedded corpus in its public layout at root (reused when already there); returns root."""
    layout = layout_name(task_or_layout)
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; expected one of {', '.join(SIZES)}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    root = os.path.abspath(root)
    params = _params(layout, seed, size)
    old = read_manifest(root) if os.path.isdir(root) else None
    if old is not None and old.get("params") == params:
        return root
    if os.path.exists(root) and old is None:
        if not os.path.isdir(root) or os.listdir(root):
            raise ValueError(f"{root}: exists and is not a generated corpus (no {MANIFEST}); "
                             f"refusing to write into it, choose an empty or new folder")
    # A private build folder renamed into place at the end: an interrupted run leaves no
    # half corpus at root, and concurrent workers asking for the same corpus do not collide.
    parent, base = os.path.split(root)
    os.makedirs(parent, exist_ok=True)
    partial = tempfile.mkdtemp(prefix=f".{base}.partial-", dir=parent)
    try:
        workers = workers or min(2, os.cpu_count() or 1)
        files = _BUILDERS[layout](partial, int(seed), SIZES[size], workers)
        manifest = {"params": params, "files": len(files), "content_sha256": _content_digest(partial, files)}
        with open(os.path.join(partial, MANIFEST), "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=1, sort_keys=True)
        current = read_manifest(root) if os.path.isdir(root) else None
        if current is not None and current.get("params") == params:
            return root  # another process finished the same corpus first
        if os.path.exists(root):
            # An empty folder or an older generated corpus (checked above).
            shutil.rmtree(root)
        os.replace(partial, root)
    finally:
        if os.path.exists(partial):
            shutil.rmtree(partial)
    return root


def _content_digest(root: str, files: list[str]) -> str:
    """SHA-256 over (path, file SHA-256) of every file: one number to compare corpora across machines."""
    h = hashlib.sha256()
    for rel in sorted(files):
        with open(os.path.join(root, rel), "rb") as f:
            h.update(f"{rel}\0{hashlib.sha256(f.read()).hexdigest()}\n".encode())
    return h.hexdigest()


def make_all(root: str, seed: int = 0, size: str = "default", workers: int | None = None) -> dict[str, str]:
    """Generate the four embedded corpora in root/<layout>; returns {layout: folder}."""
    return {layout: make_corpus(layout, os.path.join(root, layout), seed=seed, size=size, workers=workers)
            for layout in LAYOUTS}


# --- recording channel ----------------------------------------------------------------------


def _fast_len(n: int) -> int:
    """Smallest 2^a 3^b 5^c >= n: FFT sizes that pocketfft handles fastest."""
    best = 1 << max(0, int(n - 1).bit_length())
    p3 = 1
    while p3 < best:
        p35 = p3
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 5
        p3 *= 3
    return best


def _coloured_noise(rng: np.random.Generator, length: int, exponent: float) -> np.ndarray:
    """Unit-RMS noise with power spectrum ~ 1/f^exponent (0 white, 1 pink, 2 brown)."""
    n = _fast_len(length)
    spec = np.fft.rfft(rng.standard_normal(n, np.float32))
    f = np.arange(spec.shape[0], dtype=np.float32)
    f[0] = f[1] if len(f) > 1 else 1.0
    x = np.fft.irfft(spec / f ** np.float32(exponent / 2.0), n=n)[:length]
    return (x / (np.sqrt(np.mean(x ** 2)) + 1e-12)).astype(np.float32)


def _channel(wave: np.ndarray, sample_rate: int, rng: np.random.Generator, level_db: float,
             snr_db: float, reverb: bool) -> np.ndarray:
    """Room reverberation (optional), then scale to level_db dBFS RMS and add noise at snr_db."""
    x = wave.astype(np.float64)
    if reverb:
        rt60 = rng.uniform(0.15, 0.5)
        n_ir = int(rt60 * sample_rate)
        t = np.arange(n_ir) / sample_rate
        ir = rng.standard_normal(n_ir) * np.exp(-6.9 * t / rt60) * rng.uniform(0.05, 0.2)
        ir[: int(0.003 * sample_rate)] = 0.0
        ir[0] = 1.0
        n = _fast_len(len(x) + n_ir)
        x = np.fft.irfft(np.fft.rfft(x, n) * np.fft.rfft(ir, n), n)[: len(wave)]
    rms = np.sqrt(np.mean(x ** 2)) + 1e-12
    x *= 10 ** (level_db / 20) / rms
    noise = _coloured_noise(rng, len(x), rng.uniform(0.0, 1.5))
    x += noise * 10 ** ((level_db - snr_db) / 20)
    peak = np.max(np.abs(x))
    if peak > 0.99:
        x *= 0.99 / peak
    return x.astype(np.float32)


# --- batch rendering and writing --------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Clip:
    path: str            # relative to the corpus root
    sample_rate: int
    level_db: float
    snr_db: float
    reverb: bool
    lead_s: float = 0.0  # silence added before the rendered sound
    total_s: float | None = None  # pad/crop to this length (centred on lead), if given


def _run(root: str, seed: int, layout: str, batches: list[tuple[Callable, list[_Clip]]], workers: int) -> list[str]:
    """Render, pass through the channel and write every batch; returns the files written."""
    layout_id = LAYOUTS.index(layout)

    def job(i: int) -> list[str]:
        render, clips = batches[i]
        rng = np.random.default_rng([seed, layout_id, i])
        waves = render(rng)
        out = []
        for clip, wave in zip(clips, waves):
            lead = int(round(clip.lead_s * clip.sample_rate))
            if clip.total_s is not None:
                total = int(round(clip.total_s * clip.sample_rate))
                wave = np.concatenate([np.zeros(lead, np.float32), wave])[:total]
                wave = np.pad(wave, (0, total - len(wave)))
            elif lead:
                wave = np.concatenate([np.zeros(lead, np.float32), wave])
            wave = _channel(wave, clip.sample_rate, rng, clip.level_db, clip.snr_db, clip.reverb)
            path = os.path.join(root, clip.path)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            if path.endswith(".mp3"):
                sf.write(path, wave, clip.sample_rate, format="MP3")
            else:
                sf.write(path, wave, clip.sample_rate, subtype="PCM_16")
            out.append(clip.path)
        return out

    if workers <= 1:
        results = [job(i) for i in range(len(batches))]
    else:
        # numpy FFTs/ufuncs and libsndfile's encoders release the GIL, so threads overlap.
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            results = list(pool.map(job, range(len(batches))))
    return [p for r in results for p in r]


def _speech_batches(items: list[tuple[speech.Utterance, _Clip]]) -> list[tuple[Callable, list[_Clip]]]:
    """Group utterances of similar length into batches (less padding), in a fixed order."""
    order = sorted(range(len(items)), key=lambda i: (len(items[i][0].phones), i))
    batches = []
    for start in range(0, len(order), _BATCH):
        idx = order[start:start + _BATCH]
        utts = [items[i][0] for i in idx]
        batches.append((lambda rng, utts=utts: speech.synthesize(utts, rng), [items[i][1] for i in idx]))
    return batches


def _gender_age_accent(rng: np.random.Generator) -> tuple[str, str, str]:
    accents = list(speech.ACCENTS)
    return (str(rng.choice(["male", "female"])), str(rng.choice(speech.AGES)),
            accents[int(rng.integers(len(accents)))])


# --- FMA -----------------------------------------------------------------------------------------


def _build_fma(root: str, seed: int, size: Size, workers: int) -> list[str]:
    rng = np.random.default_rng([seed, 0, 10**6])
    n_artists = len(music.GENRES) * size.fma_artists_per_genre
    n_tracks = n_artists * size.fma_tracks_per_artist
    # Real FMA ids are sparse; a few extra metadata rows belong to bigger subsets (no audio
    # in fma_small), as in the full tracks.csv.
    n_extra = max(2, n_tracks // 10)
    ids = np.sort(rng.choice(np.arange(2, 155321), n_tracks + n_extra, replace=False))
    slots = rng.permutation(len(ids))
    artist_ids = rng.choice(np.arange(1, 25000), n_artists + n_extra, replace=False)
    rows, entries = [], []
    splits = _split_groups(rng, n_artists)
    k = 0
    for a in range(n_artists):
        genre = music.GENRES[a % len(music.GENRES)]
        artist = music.make_artist(rng, genre)
        gain = rng.uniform(-26.0, -14.0)
        for _ in range(size.fma_tracks_per_artist):
            tid = int(ids[slots[k]])
            k += 1
            tidx = f"{tid:06d}"
            entries.append((artist, _Clip(path=os.path.join("fma_small", tidx[:3], tidx + ".mp3"),
                                          sample_rate=MUSIC_RATE, level_db=gain + rng.normal(0.0, 1.5),
                                          snr_db=rng.uniform(30.0, 45.0), reverb=False)))
            rows.append((tid, int(artist_ids[a]), splits[a], "small", genre))
    for j in range(n_extra):
        tid = int(ids[slots[k]])
        k += 1
        genre = "" if j % 3 == 0 else music.GENRES[j % len(music.GENRES)]
        rows.append((tid, int(artist_ids[n_artists + j]), "training", "medium" if j % 2 else "large", genre))
    _write_tracks_csv(os.path.join(root, "fma_metadata", "tracks.csv"), rng, rows)
    seconds = 2.5
    batches = []
    for start in range(0, len(entries), _BATCH):
        part = entries[start:start + _BATCH]
        arts = [e[0] for e in part]
        batches.append((lambda r, arts=arts: music.render(arts, seconds, MUSIC_RATE, r), [e[1] for e in part]))
    files = _run(root, seed, "fma", batches, workers)
    return files + [os.path.join("fma_metadata", "tracks.csv")]


def _split_groups(rng: np.random.Generator, n: int, names=("training", "validation", "test")) -> list[str]:
    """80/10/10 split of n groups (artists, speakers), at least one group in each part when n >= 3."""
    n_val = max(1, int(round(0.1 * n))) if n >= 3 else 0
    n_test = max(1, int(round(0.1 * n))) if n >= 3 else 0
    labels = [names[1]] * n_val + [names[2]] * n_test + [names[0]] * (n - n_val - n_test)
    return [labels[i] for i in rng.permutation(n)]


def _write_tracks_csv(path: str, rng: np.random.Generator, rows) -> None:
    """FMA's tracks.csv: two header rows (top level, column) and pandas' index-name row."""
    top = ["", "album", "album", "artist", "artist", "set", "set", "track", "track", "track", "track", "track"]
    sub = ["", "id", "title", "id", "name", "split", "subset", "duration", "genre_top", "genres",
           "genres_all", "title"]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(top)
        w.writerow(sub)
        w.writerow(["track_id"] + [""] * (len(top) - 1))
        for tid, artist_id, split, subset, genre in sorted(rows):
            gid = f"[{music.GENRE_IDS[genre]}]" if genre else "[]"
            w.writerow([tid, artist_id * 7 % 20000, f"Album {artist_id}, vol. {tid % 3 + 1}", artist_id,
                        f"Artist {artist_id}", split, subset, int(rng.integers(60, 400)), genre, gid, gid,
                        f"Track {tid}"])


# --- Common Voice ------------------------------------------------------------------------------

def _build_common_voice(root: str, seed: int, size: Size, workers: int) -> list[str]:
    rng = np.random.default_rng([seed, 1, 10**6])
    lexicon = speech.lexicon(rng, 80)
    header = ["client_id", "path", "sentence", "up_votes", "down_votes", "age", "gender", "accents",
              "locale", "segment"]
    splits = _split_groups(rng, size.cv_clients, ("train", "dev", "test"))
    rows = {"train": [], "dev": [], "test": []}
    items = []
    # Speakers leave demographic fields blank: missing labels, per speaker as in the corpus,
    # at least one speaker per field so loaders always meet them.
    n = size.cv_clients
    blank = {field: set(rng.choice(n, max(1, int(round(p * n))), replace=False).tolist())
             for field, p in (("age", 0.1), ("gender", 0.1), ("accent", 0.25))}
    clip_ids = iter(rng.choice(np.arange(10**7, 4 * 10**7), size.cv_clients * size.cv_clips_per_client[1],
                               replace=False))
    for c in range(size.cv_clients):
        gender, age, accent = _gender_age_accent(rng)
        spk = speech.make_speaker(rng, gender, age, accent)
        client = hashlib.sha512(f"{seed}-{c}-{rng.integers(1 << 62)}".encode()).hexdigest()
        shown = ["" if c in blank[field] else v for field, v in (("age", age), ("gender", gender), ("accent", accent))]
        lo, hi = size.cv_clips_per_client
        for _ in range(int(rng.integers(lo, hi + 1))):
            words = [lexicon[int(i)] for i in rng.integers(0, len(lexicon), int(rng.integers(3, 7)))]
            phones: list[str] = []
            for j, (_, ph) in enumerate(words):
                if j and rng.random() < 0.25:
                    phones.append("_")
                phones.extend(ph)
            text = " ".join(w for w, _ in words).capitalize() + "."
            name = f"common_voice_en_{int(next(clip_ids))}.mp3"
            utt = speech.Utterance(phones=tuple(phones), speaker=spk, lead_s=0.05, tail_s=0.05,
                                   tempo=float(np.exp(rng.normal(0.0, 0.05))))
            clip = _Clip(path=os.path.join("clips", name), sample_rate=SPEECH_RATE,
                         level_db=rng.uniform(-32.0, -16.0), snr_db=rng.uniform(18.0, 35.0),
                         reverb=bool(rng.random() < 0.5), lead_s=rng.uniform(0.15, 0.6))
            items.append((utt, clip))
            up, down = int(rng.integers(2, 6)), int(rng.integers(0, 2))
            rows[splits[c]].append([client, name, text, str(up), str(down), *shown, "en", ""])
    files = _run(root, seed, "common_voice", _speech_batches(items), workers)
    tables = {"validated.tsv": [r for s in ("train", "dev", "test") for r in rows[s]],
              "train.tsv": rows["train"], "dev.tsv": rows["dev"], "test.tsv": rows["test"]}
    for name, table in tables.items():
        with open(os.path.join(root, name), "w", encoding="utf-8", newline="") as f:
            f.write("\t".join(header) + "\n")
            for r in sorted(table, key=lambda r: r[1]):
                f.write("\t".join(r) + "\n")
    return files + list(tables)


# --- RAVDESS ---------------------------------------------------------------------------------------


def _build_ravdess(root: str, seed: int, size: Size, workers: int) -> list[str]:
    rng = np.random.default_rng([seed, 2, 10**6])
    items = []
    for actor in range(1, size.ravdess_actors + 1):
        # RAVDESS: odd actors male, even female; young adult professional actors, North American.
        gender = "male" if actor % 2 else "female"
        spk = speech.make_speaker(rng, gender, str(rng.choice(["twenties", "thirties"])), "United States English")
        actor_db = rng.uniform(-30.0, -22.0)
        for e, emotion in enumerate(speech.EMOTIONS, start=1):
            for statement in range(1, size.ravdess_statements + 1):
                intensity = 1 if emotion == "neutral" else int(rng.integers(1, 3))
                _, phones = speech.STATEMENTS[statement]
                utt = speech.emotional(
                    speech.Utterance(phones=speech.parse_phones(phones), speaker=spk, lead_s=0.05, tail_s=0.05),
                    emotion, strong=intensity == 2)
                name = f"03-01-{e:02d}-{intensity:02d}-{statement:02d}-01-{actor:02d}.wav"
                clip = _Clip(path=os.path.join(f"Actor_{actor:02d}", name), sample_rate=SPEECH_RATE,
                             level_db=actor_db + utt.energy_db + rng.normal(0.0, 1.0),
                             snr_db=rng.uniform(30.0, 45.0), reverb=False, lead_s=rng.uniform(0.3, 0.8))
                items.append((utt, clip))
    return _run(root, seed, "ravdess", _speech_batches(items), workers)


# --- Speech Commands -------------------------------------------------------------------------------


def _build_speech_commands(root: str, seed: int, size: Size, workers: int) -> list[str]:
    rng = np.random.default_rng([seed, 3, 10**6])
    hashes = [f"{int(h):08x}" for h in rng.choice(1 << 32, size.commands_speakers, replace=False)]
    splits = _split_groups(rng, size.commands_speakers)
    items, lists = [], {"validation": [], "test": []}
    for s, h in enumerate(hashes):
        gender, age, accent = _gender_age_accent(rng)
        spk = speech.make_speaker(rng, gender, age, accent)
        for word, phones in speech.COMMAND_WORDS.items():
            reps = 1 + int(rng.random() < size.commands_repeat_prob)
            for k in range(reps):
                utt = speech.Utterance(phones=speech.parse_phones(phones), speaker=spk, lead_s=0.03, tail_s=0.03,
                                       tempo=float(np.exp(rng.normal(0.0, 0.1))),
                                       final_st=float(rng.normal(-2.0, 2.0)))
                rel = f"{word}/{h}_nohash_{k}.wav"
                clip = _Clip(path=os.path.join(word, f"{h}_nohash_{k}.wav"), sample_rate=SPEECH_RATE,
                             level_db=rng.uniform(-34.0, -16.0), snr_db=rng.uniform(15.0, 35.0),
                             reverb=bool(rng.random() < 0.5), lead_s=rng.uniform(0.02, 0.45), total_s=1.0)
                items.append((utt, clip))
                if splits[s] in lists:
                    lists[splits[s]].append(rel)
    files = _run(root, seed, "speech_commands", _speech_batches(items), workers)
    for name, key in (("validation_list.txt", "validation"), ("testing_list.txt", "test")):
        with open(os.path.join(root, name), "w", encoding="utf-8") as f:
            f.writelines(line + "\n" for line in sorted(lists[key]))
        files.append(name)
    folder = os.path.join(root, "_background_noise_")
    os.makedirs(folder)
    n = int(size.background_seconds * SPEECH_RATE)
    t = np.arange(n) / SPEECH_RATE
    tap = _highpass(_coloured_noise(rng, n, 0.5), 800.0) * (1.0 + 0.3 * np.sin(2 * np.pi * 3.1 * t))
    for name, wave in (("white_noise.wav", _coloured_noise(rng, n, 0.0)),
                       ("pink_noise.wav", _coloured_noise(rng, n, 1.0)),
                       ("running_tap.wav", tap)):
        sf.write(os.path.join(folder, name), (0.1 * wave / np.sqrt(np.mean(wave ** 2))).astype(np.float32),
                 SPEECH_RATE, subtype="PCM_16")
        files.append(os.path.join("_background_noise_", name))
    return files


def _highpass(x: np.ndarray, cutoff: float) -> np.ndarray:
    """x with everything below cutoff (Hz) removed, at the speech rate."""
    spec = np.fft.rfft(x)
    spec[np.fft.rfftfreq(len(x), 1.0 / SPEECH_RATE) < cutoff] = 0.0
    return np.fft.irfft(spec, n=len(x)).astype(np.float32)


_BUILDERS = {"fma": _build_fma, "common_voice": _build_common_voice, "ravdess": _build_ravdess,
             "speech_commands": _build_speech_commands}
