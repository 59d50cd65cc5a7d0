"""Embedded corpora: real public layouts, determinism, reuse, and labels the audio carries."""
from __future__ import annotations

import csv
import hashlib
import os
import re
import resource
import time

import numpy as np
import pytest
import soundfile as sf

from maskgan_jax.data import synthetic, synthetic_music, synthetic_speech


def _cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The four tiny corpora (two writer threads), with the CPU and wall time they took."""
    root = str(tmp_path_factory.mktemp("embedded"))
    cpu, wall = _cpu_seconds(), time.perf_counter()
    folders = synthetic.make_all(root, seed=0, size="tiny", workers=2)
    return folders, _cpu_seconds() - cpu, time.perf_counter() - wall


def _tree_digest(root: str) -> dict[str, str]:
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, root)] = hashlib.sha256(f.read()).hexdigest()
    return out


def _yin_f0(path: str) -> float:
    """Median pitch (Hz) over the clip's loud frames (librosa's YIN as the reference tracker)."""
    import librosa
    x, sr = sf.read(path, dtype="float32")
    f0 = librosa.yin(x, fmin=60, fmax=500, sr=sr, frame_length=1024, hop_length=256)
    rms = librosa.feature.rms(y=x, frame_length=1024, hop_length=256)[0][: len(f0)]
    return float(np.median(f0[rms > 0.3 * rms.max()]))


# --- layouts ----------------------------------------------------------------------------------


def test_fma_layout(tiny):
    root = tiny[0]["fma"]
    with open(os.path.join(root, "fma_metadata", "tracks.csv"), newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    top, sub, index_row = rows[0], rows[1], rows[2]
    columns = {(a, b): i for i, (a, b) in enumerate(zip(top, sub))}
    for key in [("set", "subset"), ("set", "split"), ("track", "genre_top"), ("artist", "id")]:
        assert key in columns, f"tracks.csv header lacks {key}"
    assert index_row[0] == "track_id" and not any(index_row[1:])
    small = [r for r in rows[3:] if r[columns["set", "subset"]] == "small"]
    assert len(small) == 8 * 2 * 2
    assert {r[columns["set", "split"]] for r in small} == {"training", "validation", "test"}
    assert {r[columns["track", "genre_top"]] for r in small} == set(synthetic_music.GENRES)
    for r in small:
        tid = f"{int(r[0]):06d}"
        path = os.path.join(root, "fma_small", tid[:3], tid + ".mp3")
        info = sf.info(path)
        assert info.format == "MP3" and info.samplerate == synthetic.MUSIC_RATE, path
        assert abs(info.duration - 2.5) < 0.05, (path, info.duration)
    # Tracks of bigger subsets are listed without audio in fma_small, as in the real file.
    assert any(r[columns["set", "subset"]] != "small" for r in rows[3:])


def test_common_voice_layout(tiny):
    root = tiny[0]["common_voice"]
    tables = {}
    for name in ("validated.tsv", "train.tsv", "dev.tsv", "test.tsv"):
        with open(os.path.join(root, name), encoding="utf-8") as f:
            lines = f.read().splitlines()
        assert lines[0].split("\t") == ["client_id", "path", "sentence", "up_votes", "down_votes", "age",
                                        "gender", "accents", "locale", "segment"]
        tables[name] = [dict(zip(lines[0].split("\t"), line.split("\t"))) for line in lines[1:]]
    validated = tables["validated.tsv"]
    assert sorted(r["path"] for r in validated) == sorted(
        r["path"] for n in ("train.tsv", "dev.tsv", "test.tsv") for r in tables[n])
    clients = [{r["client_id"] for r in tables[n]} for n in ("train.tsv", "dev.tsv", "test.tsv")]
    assert all(clients) and not (clients[0] & clients[1] or clients[0] & clients[2] or clients[1] & clients[2])
    for r in validated:
        assert re.fullmatch(r"[0-9a-f]{128}", r["client_id"])
        assert re.fullmatch(r"common_voice_en_\d+\.mp3", r["path"])
        assert sf.info(os.path.join(root, "clips", r["path"])).format == "MP3"
        assert r["age"] in synthetic_speech.AGES + ("",)
        assert r["gender"] in ("male", "female", "")
        assert r["accents"] in tuple(synthetic_speech.ACCENTS) + ("",)
        assert 1.0 < sf.info(os.path.join(root, "clips", r["path"])).duration < 6.0
    for field in ("age", "gender", "accents"):
        assert any(r[field] == "" for r in validated), f"no missing {field}: the loaders' missing-label path is untested"
        assert len({r[field] for r in validated if r[field]}) >= 2


def test_ravdess_layout(tiny):
    root = tiny[0]["ravdess"]
    actors = sorted(os.listdir(root))
    assert actors == ["Actor_01", "Actor_02", "Actor_03", "Actor_04", synthetic.MANIFEST]
    emotions = set()
    for actor in actors[:-1]:
        for name in os.listdir(os.path.join(root, actor)):
            m = re.fullmatch(r"03-01-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)\.wav", name)
            assert m, name
            emotion, intensity, statement, repetition, actor_no = (int(g) for g in m.groups())
            assert 1 <= emotion <= 8 and statement in (1, 2) and repetition in (1, 2)
            assert intensity == 1 or (intensity == 2 and emotion != 1), name  # neutral has no strong
            assert f"Actor_{actor_no:02d}" == actor
            info = sf.info(os.path.join(root, actor, name))
            assert info.samplerate == 16000 and info.subtype == "PCM_16"
            emotions.add(emotion)
    assert emotions == set(range(1, 9))


def test_speech_commands_layout(tiny):
    root = tiny[0]["speech_commands"]
    words = sorted(n for n in os.listdir(root) if os.path.isdir(os.path.join(root, n)) and not n.startswith("_"))
    assert words == sorted(synthetic_speech.COMMAND_WORDS)
    speakers_of = {}
    for word in words:
        for name in os.listdir(os.path.join(root, word)):
            m = re.fullmatch(r"([0-9a-f]{8})_nohash_(\d+)\.wav", name)
            assert m, name
            info = sf.info(os.path.join(root, word, name))
            assert info.samplerate == 16000 and info.frames == 16000
            speakers_of[f"{word}/{name}"] = m.group(1)
    lists = {}
    for name in ("validation_list.txt", "testing_list.txt"):
        with open(os.path.join(root, name)) as f:
            lists[name] = f.read().split()
        assert lists[name] and all(entry in speakers_of for entry in lists[name])
    val = {speakers_of[e] for e in lists["validation_list.txt"]}
    test = {speakers_of[e] for e in lists["testing_list.txt"]}
    train = set(speakers_of.values()) - val - test
    assert train and not (val & test)
    noise = os.listdir(os.path.join(root, "_background_noise_"))
    assert len(noise) >= 2 and all(n.endswith(".wav") for n in noise)


def test_real_loaders_read_the_corpora(tiny):
    from maskgan_jax.data import layouts
    root = os.path.dirname(tiny[0]["fma"])
    expect = {"mgi": (32, {"genre": 8}), "udi": (None, {"age": None, "gender": 2, "accent": None}),
              "sei": (32, {"emotion": 8}), "commands": (None, {"word": 10})}
    for task, (n_items, classes) in expect.items():
        corpus = layouts.load_corpus(root, task)
        assert corpus.broken == [], (task, corpus.broken[:3])
        if n_items is not None:
            assert len(corpus.items) == n_items, task
        assert set(corpus.classes) == set(classes), task
        for attribute, n_classes in classes.items():
            if n_classes is not None:
                assert len(corpus.classes[attribute]) == n_classes, (task, attribute)
        assert len({item.group for item in corpus.items}) > 1, task
    cv = layouts.load_corpus(root, "udi")
    assert all(min(cv.labels_of(a)) == -1 for a in ("age", "gender", "accent"))  # missing labels read as missing
    assert len(cv.items) == sum(1 for _ in os.scandir(os.path.join(root, "common_voice", "clips")))


# --- determinism and reuse --------------------------------------------------------------------


def test_same_seed_same_bytes_for_any_thread_count(tiny, tmp_path):
    # Music to MP3 and speech to WAV: both generators and both writers.
    for layout in ("fma", "speech_commands"):
        again = synthetic.make_corpus(layout, str(tmp_path / layout), seed=0, size="tiny", workers=1)
        assert _tree_digest(again) == _tree_digest(tiny[0][layout]), layout
    other = synthetic.make_corpus("speech_commands", str(tmp_path / "other"), seed=1, size="tiny")
    a, b = _tree_digest(other), _tree_digest(tiny[0]["speech_commands"])
    assert not set(a.values()) & set(b.values())  # another seed: other audio and metadata


def test_reuse_regenerate_and_refuse(tmp_path):
    root = str(tmp_path / "sc")
    synthetic.make_corpus("commands", root, seed=3, size="tiny")
    manifest = os.path.join(root, synthetic.MANIFEST)
    stamp = os.stat(manifest).st_mtime_ns
    start = time.perf_counter()
    assert synthetic.make_corpus("speech_commands", root, seed=3, size="tiny") == root
    assert time.perf_counter() - start < 0.5 and os.stat(manifest).st_mtime_ns == stamp
    before = _tree_digest(root)
    synthetic.make_corpus("commands", root, seed=4, size="tiny")  # a different request regenerates
    assert synthetic.read_manifest(root)["params"]["seed"] == 4 and _tree_digest(root) != before
    foreign = tmp_path / "real_corpus"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("not generated")
    with pytest.raises(ValueError, match="real_corpus.*not a generated corpus"):
        synthetic.make_corpus("sei", str(foreign), size="tiny")
    assert (foreign / "keep.txt").read_text() == "not generated"
    with pytest.raises(ValueError, match="unknown task or layout 'speech'"):
        synthetic.make_corpus("speech", str(tmp_path / "x"))
    with pytest.raises(ValueError, match="unknown size 'huge'"):
        synthetic.make_corpus("sei", str(tmp_path / "x"), size="huge")


def test_tiny_generation_time(tiny):
    _, cpu, wall = tiny
    # Measured ~5 s of CPU on the 2-core dev box; wall time depends on how busy the box is.
    assert cpu < 20.0, f"tiny corpora took {cpu:.1f} s of CPU ({wall:.1f} s wall)"


def test_default_sizes_are_a_few_hundred_clips():
    s = synthetic.SIZES["default"]
    assert 300 <= len(synthetic_music.GENRES) * s.fma_artists_per_genre * s.fma_tracks_per_artist <= 600
    assert 300 <= s.cv_clients * np.mean(s.cv_clips_per_client) <= 600
    assert 300 <= s.ravdess_actors * len(synthetic_speech.EMOTIONS) * s.ravdess_statements <= 600
    assert 300 <= s.commands_speakers * len(synthetic_speech.COMMAND_WORDS) * (1 + s.commands_repeat_prob) <= 600


# --- the labels are in the signal --------------------------------------------------------------


def test_pitch_follows_gender(tiny):
    rav = tiny[0]["ravdess"]
    f0 = {actor: [_yin_f0(os.path.join(rav, actor, n)) for n in os.listdir(os.path.join(rav, actor))]
          for actor in ("Actor_01", "Actor_02", "Actor_03", "Actor_04")}
    male = np.median(f0["Actor_01"] + f0["Actor_03"])    # odd actors are male in RAVDESS
    female = np.median(f0["Actor_02"] + f0["Actor_04"])
    assert 80 < male < 170 and 150 < female < 300 and female > 1.4 * male, (male, female)
    cv = tiny[0]["common_voice"]
    with open(os.path.join(cv, "validated.tsv")) as f:
        rows = [line.split("\t") for line in f.read().splitlines()[1:]]
    by_gender = {"male": [], "female": []}
    for row in rows:
        if row[6]:
            by_gender[row[6]].append(_yin_f0(os.path.join(cv, "clips", row[1])))
    threshold = np.sqrt(np.median(by_gender["male"]) * np.median(by_gender["female"]))
    correct = sum(f < threshold for f in by_gender["male"]) + sum(f >= threshold for f in by_gender["female"])
    assert correct / sum(map(len, by_gender.values())) > 0.85


def test_emotion_moves_loudness_and_pitch(tiny):
    rav = tiny[0]["ravdess"]
    for actor in ("Actor_01", "Actor_02", "Actor_03", "Actor_04"):
        clip = {int(n.split("-")[2]): os.path.join(rav, actor, n) for n in os.listdir(os.path.join(rav, actor))}
        level = {e: float(np.sqrt(np.mean(sf.read(p)[0] ** 2))) for e, p in clip.items()}
        assert level[5] > 1.5 * level[4], actor          # angry louder than sad (RMS)
        assert _yin_f0(clip[8]) > _yin_f0(clip[4]), actor  # surprised higher than sad


def _log_mel_stats(path: str) -> np.ndarray:
    import librosa
    x, sr = sf.read(path, dtype="float32")
    m = librosa.power_to_db(librosa.feature.melspectrogram(y=x, sr=sr, n_fft=1024, hop_length=256, n_mels=40))
    # Spectral envelope, its spread, and how fast it changes (rhythm, phone transitions).
    return np.concatenate([m.mean(1), m.std(1), np.abs(np.diff(m, axis=1)).mean(1)])


def test_genre_and_word_generalise_across_groups(tiny):
    """A nearest-class-mean classifier trained on other artists/speakers beats chance by far
    (tiny corpora: one other artist per genre, three other speakers per word to learn from)."""
    from maskgan_jax.data import layouts
    root = os.path.dirname(tiny[0]["fma"])
    for task, attribute in (("mgi", "genre"), ("commands", "word")):
        corpus = layouts.load_corpus(root, task)
        x = np.stack([_log_mel_stats(item.path) for item in corpus.items])
        x = (x - x.mean(0)) / (x.std(0) + 1e-6)
        y = np.asarray(corpus.labels_of(attribute))
        groups = np.asarray([item.group for item in corpus.items])
        correct = 0
        for g in np.unique(groups):
            test = groups == g
            means = np.stack([x[~test & (y == c)].mean(0) for c in range(y.max() + 1)])
            pred = np.argmin(((x[test][:, None, :] - means[None]) ** 2).sum(-1), axis=1)
            correct += int((pred == y[test]).sum())
        accuracy, chance = correct / len(y), 1.0 / (y.max() + 1)
        # Seed 0 measures 0.50 (genre) and 0.35 (word); label-free audio would sit at chance.
        assert accuracy > 2.5 * chance, f"{task}: leave-one-group-out accuracy {accuracy:.2f} (chance {chance:.2f})"


def test_fast_len_is_the_smallest_5_smooth_length():
    def smooth(m):
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        return m == 1
    for n in list(range(1, 400)) + [48000, 48001, 65537]:
        got = synthetic._fast_len(n)
        assert got >= n and smooth(got) and not any(smooth(m) for m in range(n, got)), n
