"""The array store: decoding through the process pool, broken-file manifest, path safety, reuse, atomicity."""
import json
import os
import resource
import socket
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from maskgan_jax import audio
from maskgan_jax.data import batches, store, store_build
from maskgan_jax.data.base import Corpus, Item

RATE, LENGTH = 8000, 4000


def _tone(freq, rate, seconds, amp=0.5, channels=1):
    t = np.arange(int(rate * seconds)) / rate
    x = amp * np.sin(2 * np.pi * freq * t)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


def _corpus(root):
    root.mkdir(exist_ok=True)
    good = [  # name, data, rate, format, subtype, labels, group, split
        ("a.wav", _tone(300, 8000, 1.0), 8000, "WAV", "PCM_16", {"emotion": 0, "age": 1}, "s1", "train"),
        ("b.flac", _tone(500, 22050, 2.0), 22050, "FLAC", "PCM_16", {"emotion": 1}, "s1", "train"),
        ("c.mp3", _tone(700, 44100, 0.4, channels=2), 44100, "MP3", "MPEG_LAYER_III",
         {"emotion": 2, "age": 0}, "s2", "valid"),
        ("d.ogg", _tone(900, 16000, 0.7), 16000, "OGG", "VORBIS", {"emotion": 1, "age": 0}, "s3", "test"),
        ("e.wav", _tone(200, 8000, 0.3, amp=1.5), 8000, "WAV", "FLOAT", {"emotion": 0}, "s3", "test"),
    ]
    items = []
    for name, data, rate, fmt, sub, labels, group, split in good:
        sf.write(root / name, data.astype(np.float32), rate, format=fmt, subtype=sub)
        items.append(Item(path=str(root / name), labels=labels, group=group, split=split))
    (root / "empty.wav").write_bytes(b"")
    full = root / "a.wav"
    (root / "trunc.wav").write_bytes(full.read_bytes()[:3000])
    (root / "text.wav").write_text("not audio at all\n" * 30)
    for name in ("empty.wav", "trunc.wav", "text.wav", "missing.wav"):
        items.insert(2, Item(path=str(root / name), labels={"emotion": 0}, group="s9", split="train"))
    # a relative path is resolved inside the corpus root
    items.append(Item(path="a.wav", labels={"emotion": 2, "age": 1}, group="s4", split="train"))
    # Metadata that leads out of the root (a real audio file lies there): listed, never read.
    sf.write(root.parent / "outside.wav", _tone(400, 8000, 0.5).astype(np.float32), 8000)
    for escaping in ("../outside.wav", str(root.parent / "outside.wav"), f"{root}/../outside.wav"):
        items.append(Item(path=escaping, labels={"emotion": 1}, group="s5", split="train"))
    return Corpus(name="toy", task="sei", root=str(root), items=items,
                  classes={"emotion": ["calm", "happy", "sad"], "age": ["young", "old"]},
                  broken=[("notes.csv:3", "a malformed metadata row")])


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    corpus = _corpus(root / "toy")
    out = root / "stores" / "toy"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(store_build, "_MIN_POOL_ITEMS", 2)  # use the process pool even for 10 files
        s = store_build.build_store(corpus, out, sample_rate=RATE, length=LENGTH, workers=2,
                              progress=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # CPU time of the reaped pool workers: the decoding ran in other processes
    worker_cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return corpus, out, s, worker_cpu


def test_build_decodes_every_good_file_through_the_pool(built):
    corpus, out, s, worker_cpu = built
    assert worker_cpu > 0
    good = [it for it in corpus.items if not os.path.basename(it.path).startswith(
        ("empty", "trunc", "text", "missing", "outside"))]
    assert len(s) == len(good) == 6
    assert s.audio.dtype == np.int16 and s.audio.shape == (6, LENGTH)
    for row, it in enumerate(good):
        path = it.path if os.path.isabs(it.path) else os.path.join(corpus.root, it.path)
        want, _ = audio.float_to_int16(audio.load_audio(path, RATE, LENGTH))
        np.testing.assert_array_equal(s.audio[row], want, err_msg=it.path)
        # Paths are kept relative to the corpus root (a moved corpus keeps its store).
        assert s.paths[row] == os.path.relpath(path, corpus.root)
        assert s.groups[row] == it.group and s.splits[row] == it.split
        for attr in ("emotion", "age"):
            assert s.labels[attr][row] == it.labels.get(attr, -1)
        assert s.audio[row].any()
    assert s.labels["emotion"].dtype == np.int32
    assert s.classes == corpus.classes and s.attributes == ["emotion", "age"]
    assert s.sample_rate == RATE and s.length == LENGTH and s.name == "toy" and s.task == "sei"
    assert s.index["clipped_items"] == 1  # e.wav has samples at 1.5


def test_broken_files_are_listed_with_reasons(built, capsys):
    corpus, out, s, _ = built
    reasons = dict(s.broken)
    root = corpus.root
    assert reasons[os.path.join(root, "empty.wav")] == "zero bytes"
    assert reasons[os.path.join(root, "missing.wav")] == "missing file"
    assert reasons[os.path.join(root, "trunc.wav")].startswith("truncated")
    assert reasons[os.path.join(root, "text.wav")].startswith("not audio")
    outside = os.path.join(os.path.dirname(root), "outside.wav")
    for escaping in ("../outside.wav", outside, f"{root}/../outside.wav"):
        assert reasons[escaping] == store_build.ESCAPES_ROOT, escaping
    assert reasons["notes.csv:3"] == "a malformed metadata row"
    assert len(s.broken) == 8 and s.index["num_broken"] == 8
    with open(out / "broken.jsonl") as f:
        stages = [json.loads(line)["stage"] for line in f]
    assert stages.count("decode") == 7 and stages.count("layout") == 1


def test_broken_count_is_printed_even_when_quiet(tmp_path, capsys):
    corpus = _corpus(tmp_path / "c")
    store_build.build_store(corpus, tmp_path / "s", RATE, LENGTH, workers=1, progress=False)
    err = capsys.readouterr().err
    assert "6 of 13 clips decoded" in err and "7 failed to decode, 1 broken" in err


def test_store_files_are_json_npy_and_raw(built):
    _, out, s, _ = built
    assert sorted(os.listdir(out)) == ["audio.int16", "broken.jsonl", "index.json", "labels.npy"]
    labels = np.load(out / "labels.npy", allow_pickle=False)
    assert labels.shape == (6, 2)
    assert os.path.getsize(out / "audio.int16") == 6 * LENGTH * 2
    assert not [n for n in os.listdir(out.parent) if n.startswith(".")]


def test_open_store_matches_build(built):
    _, out, s, _ = built
    t = store.open_store(out)
    np.testing.assert_array_equal(np.asarray(t.audio), np.asarray(s.audio))
    assert isinstance(t.audio, np.memmap) and t.audio.mode == "r"
    for a in s.labels:
        np.testing.assert_array_equal(t.labels[a], s.labels[a])
    assert list(t.paths) == list(s.paths) and t.broken == s.broken
    assert list(t.splits) == ["train", "train", "valid", "test", "test", "train"]


def test_batch_reader(built):
    _, _, s, _ = built
    idx = np.array([4, 0, 4, 2])
    b = s.batch(idx)
    assert b.dtype == np.int16 and b.shape == (4, LENGTH)
    for k, i in enumerate(idx):
        np.testing.assert_array_equal(b[k], s.audio[i])
    with pytest.raises(IndexError):
        s.batch([6])


def test_host_batches_cover_rows_once_and_pad_the_last(built):
    _, _, s, _ = built
    data = batches.as_array_data(s)
    rows = np.array([5, 1, 3, 0, 2])
    got = list(batches.host_batches(data, rows, 2, ["emotion", "age"], np.random.default_rng(3)))
    assert [b["weight"].tolist() for b in got] == [[1, 1], [1, 1], [1, 0]]
    real = np.concatenate([b["index"][b["weight"] > 0] for b in got])
    assert sorted(real.tolist()) == sorted(rows.tolist()) and real.tolist() != rows.tolist()
    for b in got:
        np.testing.assert_array_equal(b["audio"], s.audio[b["index"]])
        assert b["labels"]["age"].tolist() == s.labels["age"][b["index"]].tolist()
    again = list(batches.host_batches(data, rows, 2, ["emotion"], np.random.default_rng(3)))
    assert [b["index"].tolist() for b in again] == [b["index"].tolist() for b in got]
    in_order = list(batches.host_batches(data, rows, 5, ["emotion"]))
    assert in_order[0]["index"].tolist() == rows.tolist()


def test_open_or_build_reuses_and_rebuilds(tmp_path, capsys):
    corpus = _corpus(tmp_path / "c")
    out = tmp_path / "s"
    a = store_build.open_or_build_store(corpus, out, RATE, LENGTH, workers=1, progress=False)
    built_at = os.stat(out / "index.json").st_mtime_ns
    b = store_build.open_or_build_store(corpus, out, RATE, LENGTH, workers=1, progress=False)
    assert os.stat(out / "index.json").st_mtime_ns == built_at and b.fingerprint == a.fingerprint
    # a touched source file with the same bytes keeps the store (its contents are checked)
    st = os.stat(tmp_path / "c" / "a.wav")
    os.utime(tmp_path / "c" / "a.wav", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    c = store_build.open_or_build_store(corpus, out, RATE, LENGTH, workers=1, progress=False)
    assert c.fingerprint == a.fingerprint and os.stat(out / "audio.int16").st_mtime_ns <= built_at + 10**9
    # so do other parameters
    d = store_build.open_or_build_store(corpus, out, RATE, LENGTH // 2, workers=1, progress=False)
    assert d.length == LENGTH // 2 and d.audio.shape == (6, LENGTH // 2)
    assert store.open_store(out).length == LENGTH // 2


def test_a_copied_corpus_and_store_are_reused_and_a_changed_file_is_not(tmp_path, capsys):
    import shutil
    corpus = _corpus(tmp_path / "c")
    first = store_build.open_or_build_store(corpus, tmp_path / "s", RATE, LENGTH, workers=1, progress=False)
    # Copy corpus and store elsewhere with fresh file times (as `cp -r` does) and load them there.
    shutil.copytree(tmp_path / "c", tmp_path / "moved" / "c", copy_function=shutil.copy)
    shutil.copytree(tmp_path / "s", tmp_path / "moved" / "s", copy_function=shutil.copy)
    shutil.copy(tmp_path / "outside.wav", tmp_path / "moved" / "outside.wav")
    old_root, new_root = str(tmp_path), str(tmp_path / "moved")
    moved = Corpus(name=corpus.name, task=corpus.task, root=corpus.root.replace(old_root, new_root),
                   classes=corpus.classes, broken=corpus.broken,
                   items=[Item(it.path.replace(old_root, new_root), it.labels, it.group, it.split)
                          for it in corpus.items])
    built = os.stat(tmp_path / "moved" / "s" / "audio.int16").st_mtime_ns
    again = store_build.open_or_build_store(moved, tmp_path / "moved" / "s", RATE, LENGTH, workers=1,
                                            progress=True)
    assert "store: building" not in capsys.readouterr().err
    assert again.fingerprint == first.fingerprint
    assert os.stat(tmp_path / "moved" / "s" / "audio.int16").st_mtime_ns == built
    np.testing.assert_array_equal(np.asarray(again.audio), np.asarray(first.audio))
    # Same size, other bytes: rebuilt.
    wav = tmp_path / "moved" / "c" / "a.wav"
    data = bytearray(wav.read_bytes())
    data[-200:] = bytes(200)
    wav.write_bytes(bytes(data))
    store_build.open_or_build_store(moved, tmp_path / "moved" / "s", RATE, LENGTH, workers=1, progress=True)
    assert "a corpus file changed" in capsys.readouterr().err


def test_interrupted_build_leaves_no_store(tmp_path, monkeypatch):
    corpus = _corpus(tmp_path / "c")
    out = tmp_path / "stores" / "s"

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(store_build, "_write_tables", boom)
    with pytest.raises(KeyboardInterrupt):
        store_build.build_store(corpus, out, RATE, LENGTH, workers=1, progress=False)
    assert os.listdir(out.parent) == []
    monkeypatch.undo()
    good = store_build.build_store(corpus, out, RATE, LENGTH, workers=1, progress=False)
    monkeypatch.setattr(store_build, "_write_tables", boom)
    with pytest.raises(KeyboardInterrupt):
        store_build.build_store(corpus, out, RATE, LENGTH // 2, workers=1, progress=False)
    kept = store.open_store(out)  # the previous store is untouched
    assert kept.length == LENGTH and kept.fingerprint == good.fingerprint
    assert os.listdir(out.parent) == ["s"]


def test_stale_temporary_folders_are_removed(tmp_path):
    corpus = _corpus(tmp_path / "c")
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead = int(proc.stdout)
    stale = tmp_path / f".s.building-{socket.gethostname()}-{dead}-deadbeef"
    stale.mkdir()
    (stale / "audio.int16").write_bytes(b"\0" * 10)
    store_build.build_store(corpus, tmp_path / "s", RATE, LENGTH, workers=1, progress=False)
    assert not stale.exists()


def test_damaged_or_missing_stores_are_refused(built, tmp_path):
    _, out, _, _ = built
    with pytest.raises(store.StoreError, match="no store here"):
        store.open_store(tmp_path / "nothing")
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in os.listdir(out):
        (copy / name).write_bytes((out / name).read_bytes())
    with open(copy / "audio.int16", "r+b") as f:
        f.truncate(1000)
    with pytest.raises(store.StoreError, match="damaged store, audio.int16 has 1000 bytes"):
        store.open_store(copy)
    os.remove(copy / "index.json")
    with pytest.raises(store.StoreError, match="index.json missing"):
        store.open_store(copy)
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(store.StoreError, match="not a store"):
        store_build.build_store(_corpus(tmp_path / "c"), other, RATE, LENGTH, workers=1, progress=False)
    assert (other / "notes.txt").read_text() == "keep me"


def test_corpus_with_only_broken_files(tmp_path):
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "x.wav").write_bytes(b"")
    corpus = Corpus(name="bad", task="sei", root=str(tmp_path / "c"),
                    items=[Item(path="x.wav", labels={"emotion": 0})], classes={"emotion": ["a"]},
                    broken=[])
    s = store_build.build_store(corpus, tmp_path / "s", RATE, LENGTH, workers=2, progress=False)
    assert len(s) == 0 and s.audio.shape == (0, LENGTH) and s.broken == [("x.wav", "zero bytes")]
    assert len(store.open_store(tmp_path / "s")) == 0
