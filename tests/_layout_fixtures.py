"""Tiny corpora in the four real public layouts, broken and escaping entries included."""
from __future__ import annotations

import csv
import os

import numpy as np
import soundfile as sf

SR = 16000


def write_audio(path, seed=0, fmt=None):
    """A 20 ms clip libsndfile can read (format from the extension unless given)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    wave = 0.1 * np.random.default_rng(seed).standard_normal(320).astype(np.float32)
    sf.write(path, wave, SR, format=fmt)
    return path


# FMA: (track id, subset, split, genre_top, artist id, bio with a quoted newline or '')
FMA_TRACKS = [
    (2, "small", "training", "Hip-Hop", "1", 'says "hi"\nsecond line'),
    (5, "small", "training", "Hip-Hop", "1", ""),
    (10, "small", "validation", "Pop", "6", ""),
    (140, "small", "test", "Folk", "54", ""),
    (141, "small", "training", "", "54", ""),         # no genre_top: skipped, counted
    (1482, "medium", "training", "Rock", "300", ""),   # only in medium
    (99134, "small", "test", "Pop", "7", ""),          # audio missing: broken
    (155066, "large", "training", "Jazz", "9", ""),    # only in large
]


def make_fma(root, sizes=("small",)):
    """fma_metadata/tracks.csv (two header rows + pandas' track_id row) and fma_<size>/NNN/NNNNNN.mp3."""
    meta = os.path.join(root, "fma_metadata")
    os.makedirs(meta, exist_ok=True)
    top = ["", "album", "artist", "artist", "set", "set", "track", "track"]
    sub = ["", "title", "bio", "id", "split", "subset", "genre_top", "title"]
    with open(os.path.join(meta, "tracks.csv"), "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(top)
        w.writerow(sub)
        w.writerow(["track_id"] + [""] * (len(top) - 1))
        for tid, subset, split, genre, artist, bio in FMA_TRACKS:
            w.writerow([tid, "Album", bio, artist, split, subset, genre, f"Track {tid}"])
    rank = {"small": 0, "medium": 1, "large": 2, "full": 3}
    for size in sizes:
        for tid, subset, *_ in FMA_TRACKS:
            if tid == 99134 or rank[subset] > rank[size]:
                continue
            t = f"{tid:06d}"
            write_audio(os.path.join(root, f"fma_{size}", t[:3], t + ".mp3"), seed=tid, fmt="MP3")
    return root


CV_HEADER = ["client_id", "path", "sentence", "up_votes", "down_votes", "age", "gender", "accents",
             "variant", "locale", "segment"]
# (client, path, age, gender, accents)
CV_ROWS = [
    ("c1", "common_voice_en_1.mp3", "twenties", "male_masculine", "United States English"),
    ("c1", "common_voice_en_2.mp3", "twenties", "male_masculine", "United States English"),
    ("c2", "common_voice_en_3.mp3", "fourties", "female_feminine", "England English"),
    ("c3", "common_voice_en_4.mp3", "", "", ""),                       # every label missing
    ("c4", "common_voice_en_5.mp3", "teens", "non-binary", "England English|Scottish English"),
    ("c5", "common_voice_en_6.mp3", "sixties", "do_not_wish_to_say", "India and South Asia"),
    ("c6", "common_voice_en_missing.mp3", "thirties", "male_masculine", ""),   # audio missing
    ("c7", "../escape.mp3", "thirties", "female_feminine", ""),               # escapes clips/
    ("c8", "/etc/passwd", "thirties", "female_feminine", ""),                 # absolute
]
CV_LEGACY_HEADER = ["client_id", "path", "sentence", "up_votes", "down_votes", "age", "gender", "accent"]
CV_LEGACY_ROWS = [
    ("c1", "a.mp3", "twenties", "male", "us"),
    ("c2", "b.mp3", "fourties", "female", "england"),
    ("c3", "c.mp3", "thirties", "other", ""),
]


def _write_tsv(path, header, rows):
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("\t".join(header) + "\n")
        for r in rows:
            f.write("\t".join(r) + "\n")


def _cv_line(row, header):
    client, path, age, gender, accent = row
    values = {"client_id": client, "path": path, "sentence": 'He said "stop', "up_votes": "2",
              "down_votes": "0", "age": age, "gender": gender, "accents": accent, "accent": accent,
              "variant": "", "locale": "en", "segment": ""}
    return [values[h] for h in header]


def make_common_voice(root, legacy=False):
    """validated.tsv, train/dev/test.tsv and clips/*.mp3 of one language folder."""
    header, rows = (CV_LEGACY_HEADER, CV_LEGACY_ROWS) if legacy else (CV_HEADER, CV_ROWS)
    os.makedirs(os.path.join(root, "clips"), exist_ok=True)
    lines = [_cv_line(r, header) for r in rows]
    _write_tsv(os.path.join(root, "validated.tsv"), header, lines)
    if not legacy:
        _write_tsv(os.path.join(root, "train.tsv"), header, lines[0:2])
        _write_tsv(os.path.join(root, "dev.tsv"), header, lines[2:3])
        _write_tsv(os.path.join(root, "test.tsv"), header, lines[3:4])
    for i, (_, path, *_rest) in enumerate(rows):
        if "missing" in path or "/" in path or ".." in path:
            continue
        write_audio(os.path.join(root, "clips", path), seed=i, fmt="MP3")
    # A real file just outside clips/ that the escaping row names: it must never be listed.
    write_audio(os.path.join(root, "escape.mp3"), fmt="MP3")
    return root


RAVDESS_FILES = {
    "Actor_01": ["03-01-01-01-01-01-01.wav", "03-01-05-02-01-02-01.wav", "03-02-03-01-01-01-01.wav",
                 "03-01-08-01-02-01-01.wav"],
    "Actor_12": ["03-01-05-01-02-01-12.wav", "03-01-04-01-01-01-12.wav", "03-02-06-02-02-02-12.wav",
                 "03-01-02-01-01-01-07.wav",   # actor field disagrees with the folder: broken
                 "03-01-09-01-01-01-12.wav",   # emotion code 09: broken
                 "notes.wav"],                 # not the naming scheme: broken
}


def make_ravdess(root):
    """Actor_NN/MM-VV-EE-II-SS-RR-AA.wav files, speech and song."""
    for actor, names in RAVDESS_FILES.items():
        for i, name in enumerate(names):
            write_audio(os.path.join(root, actor, name), seed=i)
    return root


SC_FILES = {
    "yes": ["0a7c2a8d_nohash_0.wav", "0a7c2a8d_nohash_1.wav", "1b4c9b89_nohash_0.wav"],
    "no": ["0a7c2a8d_nohash_0.wav", "2c6d3924_nohash_0.wav"],
    "marvin": ["3d3ddaf8_nohash_0.wav"],
}


def make_speech_commands(root):
    """Word folders, _background_noise_, validation_list.txt and testing_list.txt."""
    for word, names in SC_FILES.items():
        for i, name in enumerate(names):
            write_audio(os.path.join(root, word, name), seed=i)
    write_audio(os.path.join(root, "_background_noise_", "white_noise.wav"))
    with open(os.path.join(root, "validation_list.txt"), "w") as f:
        f.write("yes/1b4c9b89_nohash_0.wav\nno/ffffffff_nohash_0.wav\n../outside.wav\n")
    with open(os.path.join(root, "testing_list.txt"), "w") as f:
        f.write("no/2c6d3924_nohash_0.wav\nmarvin/3d3ddaf8_nohash_0.wav\n/abs/yes.wav\n")
    return root
