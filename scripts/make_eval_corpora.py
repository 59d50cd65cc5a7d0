"""Writes small evaluation corpora in the four public layouts, from synthesised speech and rendered music.

    python scripts/make_eval_corpora.py --out=DIR [--only=commands,sei,udi,mgi] [--seed=0]

The attackers are measured on corpora the project never trained on and that do not come
from its embedded generator (maskgan_jax/data/synthetic*.py). Speech is spoken by
espeak-ng (``apt-get install -y espeak-ng``): a speaker is a voice (accent), a voice
variant (gender), a base pitch and speed (age-like ranges), a pitch range and a recording
channel (level, band limits, room reverberation, room-noise floor); see
eval_corpora_speech.py. Music is rendered note by note with plucked strings, FM voices, an
additive piano and synthetic drums, one arranger per genre; see eval_corpora_music.py.

What is written (sizes at the defaults; every corpus is seeded, a rerun with the same
arguments keeps what exists, and each root holds EVAL_CORPUS.json saying how it was made):

  DIR/speech_commands  Speech Commands: <word>/<speaker>_nohash_<n>.wav, 16 kHz, 1 s; the ten
                       standard command words; 40 speakers saying 5-9 of them (~280 clips);
                       validation_list.txt / testing_list.txt by the dataset's hashing rule.
  DIR/ravdess          RAVDESS: Actor_NN/03-01-EE-II-SS-01-NN.wav, 22.05 kHz, 3 s; 8 actors
                       (odd male, even female, North American voices), 12 clips each (96):
                       the eight emotions at normal intensity plus four at strong intensity,
                       the dataset's two statements; emotion as prosody (pitch, range,
                       rate, level) and voice quality (pressed, tremulous).
  DIR/common_voice     Common Voice: validated.tsv, train/dev/test.tsv (by client) and
                       clips/*.mp3 at 32 kHz; 60 clients x 5 sentences (300 clips); labels
                       age (teens..sixties), gender (female_feminine/male_masculine) and
                       accents (four English accents), some left blank as in the real data.
  DIR/fma              FMA: fma_metadata/tracks.csv (three header rows) and
                       fma_small/NNN/NNNNNN.mp3, 44.1 kHz stereo, 6 s; FMA small's eight
                       genres x 4 artists x 4 tracks (128 clips); split by artist.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import soundfile as sf

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import eval_corpora_music as music    # noqa: E402
import eval_corpora_speech as speech  # noqa: E402

FORMAT = "maskgan-jax-eval-corpus/1"
MANIFEST = "EVAL_CORPUS.json"
TASKS = ("commands", "sei", "udi", "mgi")
FOLDER = {"commands": "speech_commands", "sei": "ravdess", "udi": "common_voice", "mgi": "fma"}
WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
EMOTIONS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
STATEMENTS = ("Kids are talking by the door.", "Dogs are sitting by the door.")
SENTENCES = (
    "The kettle is on the stove.", "Please close the window before you leave.",
    "We walked along the river after lunch.", "My sister plays the violin on Sundays.",
    "The train to the city was late again.", "Turn left at the second traffic light.",
    "He forgot his umbrella at the office.", "The garden needs water every evening.",
    "Our neighbours painted their fence green.", "She reads a chapter before going to sleep.",
    "The library opens at nine in the morning.", "I would like a cup of tea, please.",
    "The children built a castle out of sand.", "It rained all weekend in the mountains.",
    "The baker sells fresh bread every day.", "They moved to a small town by the sea.",
    "The meeting has been moved to Thursday.", "A red bicycle leaned against the wall.",
    "The radio was playing an old song.", "Remember to feed the cat tonight.",
    "The museum has a new exhibition on ships.", "He drinks his coffee without sugar.",
    "The bus stop is across the street.", "We need more chairs for the party.",
    "The film was longer than I expected.", "Snow covered the roofs of the village.",
    "The doctor will see you in a moment.", "My grandfather grew tomatoes in the yard.",
    "The shop on the corner closes early.", "Please write your name at the top.",
    "The lake was calm in the early morning.", "She found her keys under the sofa.",
    "The football match starts at three.", "We painted the kitchen a pale yellow.",
    "The phone rang twice and then stopped.", "A cold wind blew from the north.",
    "He carried the boxes up the stairs.", "The soup needs a little more salt.",
    "The lights in the hall are too bright.", "They planted an apple tree last spring.",
)
CV_AGES = ("teens", "twenties", "thirties", "fourties", "fifties", "sixties")
CV_AGE_WEIGHTS = (0.12, 0.28, 0.22, 0.15, 0.13, 0.10)
CV_ACCENT_WEIGHTS = (0.4, 0.3, 0.15, 0.15)
CV_COLUMNS = ("client_id", "path", "sentence_id", "sentence", "sentence_domain", "up_votes", "down_votes",
              "age", "gender", "accents", "variant", "locale", "segment")
# Speech Commands' README: a file's set follows from a hash of its speaker, so a speaker stays in one set.
_MAX_PER_CLASS = 2 ** 27 - 1


def which_set(filename: str, validation_percentage: float = 10.0, testing_percentage: float = 10.0) -> str:
    """The Speech Commands README's rule: hash the name up to '_nohash_' into validation/testing/training."""
    base_name = re.sub(r"_nohash_.*$", "", os.path.basename(filename))
    h = int(hashlib.sha1(base_name.encode()).hexdigest(), 16)
    pct = (h % (_MAX_PER_CLASS + 1)) * (100.0 / _MAX_PER_CLASS)
    if pct < validation_percentage:
        return "validation"
    if pct < validation_percentage + testing_percentage:
        return "testing"
    return "training"


def _resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    import soxr
    return x if sr_in == sr_out else soxr.resample(x, sr_in, sr_out, quality="HQ").astype(np.float32)


def _write(path: str, wave: np.ndarray, sr: int, fmt: str = "WAV"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if fmt == "WAV":
        sf.write(path, wave, sr, subtype="PCM_16", format="WAV")
    else:
        sf.write(path, wave, sr, format=fmt)


def _rng(seed: int, task: str) -> np.random.Generator:
    return np.random.default_rng([seed, TASKS.index(task), 0x6576])


# --------------------------------------------------------------------------- Speech Commands

def make_speech_commands(root: str, seed: int, espeak: str, speakers: int = 40,
                         words_per_speaker: tuple[int, int] = (5, 9)) -> dict:
    """Ten command words from ``speakers`` speakers, 16 kHz, 1 s clips."""
    rng = _rng(seed, "commands")
    n = 0
    for s in range(speakers):
        sid = hashlib.sha1(f"cmd-{seed}-{s}".encode()).hexdigest()[:8]
        spk = speech.draw_speaker(rng, sid)
        k = int(rng.integers(words_per_speaker[0], words_per_speaker[1] + 1))
        for word in rng.choice(WORDS, size=k, replace=False):
            for rep in range(2 if rng.random() < 0.1 else 1):
                dry = speech.speak(espeak, spk, str(word), rng)
                dry = _resample(dry, speech.ESPEAK_RATE, 16000)
                clip = speech.record(dry, 16000, spk, rng, 16000, lead_s=(0.0, max(0.0, 0.9 - dry.size / 16000)))
                _write(os.path.join(root, str(word), f"{sid}_nohash_{rep}.wav"), clip, 16000)
                n += 1
    files = sorted(os.path.join(w, f) for w in WORDS if os.path.isdir(os.path.join(root, w))
                   for f in os.listdir(os.path.join(root, w)))
    for list_name, which in (("validation_list.txt", "validation"), ("testing_list.txt", "testing")):
        with open(os.path.join(root, list_name), "w") as fh:
            fh.writelines(f + "\n" for f in files if which_set(f) == which)
    return {"clips": n, "speakers": speakers, "words": list(WORDS), "sample_rate": 16000}


# --------------------------------------------------------------------------- RAVDESS

def make_ravdess(root: str, seed: int, espeak: str, actors: int = 8, strong_per_actor: int = 4) -> dict:
    """Eight emotions per actor at normal intensity, plus ``strong_per_actor`` at strong intensity."""
    rng = _rng(seed, "sei")
    n = 0
    us = "United States English"
    for a in range(1, actors + 1):
        spk = speech.draw_speaker(rng, f"actor_{a:02d}", gender="male" if a % 2 else "female", accent=us)
        expressive = rng.uniform(0.6, 1.3)     # actors differ in how much they show
        strong = [EMOTIONS[1 + (a * strong_per_actor + i) % 7] for i in range(strong_per_actor)]
        takes = [(e, 1) for e in EMOTIONS] + [(e, 2) for e in strong]
        used = set()
        for emotion, intensity in takes:
            code = EMOTIONS.index(emotion) + 1
            statement = int(rng.integers(1, 3))
            rep = 1 if (code, intensity, statement) not in used else 2
            used.add((code, intensity, statement))
            pitch, rng_pct, rate, vol, quality = speech.EMOTION_PROSODY[emotion]
            g = expressive * (1.6 if intensity == 2 else 1.0)
            dry = speech.speak(espeak, spk, STATEMENTS[statement - 1], rng, pitch_pct=g * pitch,
                               range_pct=g * rng_pct, rate_pct=100 + g * (rate - 100))
            dry = speech.voice_quality(dry, speech.ESPEAK_RATE, quality, rng)
            clip = speech.record(dry, speech.ESPEAK_RATE, spk, rng, 3 * speech.ESPEAK_RATE, lead_s=(0.3, 0.7),
                                 level_db=g * vol)
            name = f"03-01-{code:02d}-{intensity:02d}-{statement:02d}-{rep:02d}-{a:02d}.wav"
            _write(os.path.join(root, f"Actor_{a:02d}", name), clip, speech.ESPEAK_RATE)
            n += 1
    return {"clips": n, "actors": actors, "emotions": list(EMOTIONS), "sample_rate": speech.ESPEAK_RATE}


# --------------------------------------------------------------------------- Common Voice

def make_common_voice(root: str, seed: int, espeak: str, clients: int = 60, clips_per_client: int = 5) -> dict:
    """``clients`` speakers with age, gender and accent; some labels left blank; mp3 at 32 kHz."""
    rng = _rng(seed, "udi")
    accents = list(speech.ACCENTS)
    rows, clip_id = [], 20000000 + int(rng.integers(0, 1000000))
    for c in range(clients):
        gender = "female" if rng.random() < 0.47 else "male"
        age = str(rng.choice(CV_AGES, p=CV_AGE_WEIGHTS))
        accent = str(rng.choice(accents, p=CV_ACCENT_WEIGHTS))
        client_id = hashlib.sha256(f"cv-{seed}-{c}".encode()).hexdigest()
        spk = speech.draw_speaker(rng, client_id, gender=gender, accent=accent, age=age)
        # As in the real data, many clients leave some of their profile blank.
        spelled = gender + ("_feminine" if gender == "female" else "_masculine")
        shown = {"age": age if rng.random() > 0.1 else "",
                 "gender": spelled if rng.random() > 0.05 else "",
                 "accents": accent if rng.random() > 0.15 else ""}
        for s in rng.choice(len(SENTENCES), size=clips_per_client, replace=False):
            clip_id += int(rng.integers(1, 50))
            path = f"common_voice_en_{clip_id}.mp3"
            dry = speech.speak(espeak, spk, SENTENCES[s], rng)
            length = dry.size + int(1.0 * speech.ESPEAK_RATE)
            clip = speech.record(dry, speech.ESPEAK_RATE, spk, rng, length, lead_s=(0.2, 0.6))
            _write(os.path.join(root, "clips", path), _resample(clip, speech.ESPEAK_RATE, 32000), 32000, "MP3")
            rows.append({"client_id": client_id, "path": path,
                         "sentence_id": hashlib.sha256(SENTENCES[s].encode()).hexdigest()[:64],
                         "sentence": SENTENCES[s], "sentence_domain": "", "up_votes": str(int(rng.integers(2, 5))),
                         "down_votes": "0", "age": shown["age"], "gender": shown["gender"],
                         "accents": shown["accents"], "variant": "", "locale": "en", "segment": ""})
    order = rng.permutation(clients)
    split_of = {hashlib.sha256(f"cv-{seed}-{c}".encode()).hexdigest(): ("train" if i < 0.7 * clients else
                "dev" if i < 0.85 * clients else "test") for i, c in enumerate(order)}
    for name, keep in (("validated.tsv", None), ("train.tsv", "train"), ("dev.tsv", "dev"), ("test.tsv", "test")):
        with open(os.path.join(root, name), "w", newline="") as fh:
            w = csv.DictWriter(fh, CV_COLUMNS, delimiter="\t", quoting=csv.QUOTE_NONE, lineterminator="\n")
            w.writeheader()
            w.writerows(r for r in rows if keep is None or split_of[r["client_id"]] == keep)
    return {"clips": len(rows), "clients": clients, "sample_rate": 32000, "format": "mp3",
            "attributes": {"age": list(CV_AGES), "gender": ["female", "male"], "accent": accents}}


# --------------------------------------------------------------------------- FMA

def make_fma(root: str, seed: int, artists_per_genre: int = 4, tracks_per_artist: int = 4,
             seconds: float = 6.0) -> dict:
    """FMA small's eight genres, ``artists_per_genre`` x ``tracks_per_artist`` tracks each; mp3 44.1 kHz stereo."""
    rng = _rng(seed, "mgi")
    total = len(music.GENRES) * artists_per_genre * tracks_per_artist
    track_ids = rng.choice(np.arange(2, 155320), size=total, replace=False)
    artist_ids = rng.choice(np.arange(1, 24000), size=len(music.GENRES) * artists_per_genre, replace=False)
    splits = ("training", "validation", "test") + ("training",) * max(0, artists_per_genre - 3)
    rows, k = [], 0
    for g, genre in enumerate(music.GENRES):
        for a in range(artists_per_genre):
            artist = music.draw_artist(genre, rng)
            aid = int(artist_ids[g * artists_per_genre + a])
            split = splits[a % len(splits)]
            for t in range(tracks_per_artist):
                tid = int(track_ids[k])
                k += 1
                wave = music.render_track(artist, rng, seconds)
                path = os.path.join(root, "fma_small", f"{tid:06d}"[:3], f"{tid:06d}.mp3")
                _write(path, _resample(wave, music.SR, 44100), 44100, "MP3")
                rows.append([str(tid), str(aid), f"{genre} artist {a + 1}", split, "small", genre,
                             f"Track {t + 1}", f"{seconds:.0f}"])
    rows.sort(key=lambda r: int(r[0]))
    os.makedirs(os.path.join(root, "fma_metadata"), exist_ok=True)
    with open(os.path.join(root, "fma_metadata", "tracks.csv"), "w", newline="") as fh:
        w = csv.writer(fh)
        # pandas' MultiIndex CSV: two header rows, then the index name row.
        w.writerow(["", "artist", "artist", "set", "set", "track", "track", "track"])
        w.writerow(["", "id", "name", "split", "subset", "genre_top", "title", "duration"])
        w.writerow(["track_id", "", "", "", "", "", "", ""])
        w.writerows(rows)
    return {"clips": total, "genres": list(music.GENRES), "artists": len(artist_ids), "sample_rate": 44100,
            "format": "mp3", "seconds": seconds}


# --------------------------------------------------------------------------- driver

def _espeak_version(espeak: str) -> str:
    out = subprocess.run([espeak, "--version"], capture_output=True, text=True, check=False).stdout
    return out.strip().splitlines()[0] if out.strip() else "unknown"


def build(task: str, out_dir: str, seed: int, espeak: str | None, log=print) -> str:
    """Writes one corpus under out_dir (kept if its manifest matches); returns its root."""
    root = os.path.join(out_dir, FOLDER[task])
    params = {"format": FORMAT, "task": task, "layout": FOLDER[task], "seed": seed}
    man = os.path.join(root, MANIFEST)
    if os.path.isfile(man):
        with open(man) as fh:
            old = json.load(fh)
        if all(old.get(k) == v for k, v in params.items()):
            log(f"[eval-corpora] {root}: exists ({old.get('clips')} clips), kept")
            return root
        raise SystemExit(f"{root} holds a different corpus ({old.get('task')}, seed {old.get('seed')}); "
                         "remove it or pick another --out")
    if os.path.exists(root):
        raise SystemExit(f"{root} exists without {MANIFEST}; remove it or pick another --out")
    tmp = root + ".building"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    t0 = time.perf_counter()
    if task == "commands":
        info = make_speech_commands(tmp, seed, espeak)
    elif task == "sei":
        info = make_ravdess(tmp, seed, espeak)
    elif task == "udi":
        info = make_common_voice(tmp, seed, espeak)
    else:
        info = make_fma(tmp, seed)
    info.update(params)
    info["seconds_to_build"] = round(time.perf_counter() - t0, 1)
    info["generator"] = "scripts/make_eval_corpora.py"
    if task != "mgi":
        info["espeak_ng"] = _espeak_version(espeak)
    with open(os.path.join(tmp, MANIFEST), "w") as fh:
        json.dump(info, fh, indent=1)
    os.rename(tmp, root)
    log(f"[eval-corpora] {root}: {info['clips']} clips in {info['seconds_to_build']} s")
    return root


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="Folder that receives one subfolder per corpus.")
    p.add_argument("--only", default=",".join(TASKS), help="Comma-separated tasks: commands,sei,udi,mgi.")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    tasks = [t.strip() for t in args.only.split(",") if t.strip()]
    bad = [t for t in tasks if t not in TASKS]
    if bad:
        p.error(f"--only: unknown task(s) {bad}; expected some of {TASKS}")
    espeak = None
    if any(t != "mgi" for t in tasks):
        try:
            espeak = speech.find_espeak()
        except speech.EspeakMissing as e:
            raise SystemExit(str(e)) from None
    os.makedirs(args.out, exist_ok=True)
    for t in tasks:
        build(t, args.out, args.seed, espeak)


if __name__ == "__main__":
    main()
