"""scripts/make_eval_corpora.py writes corpora that the public-layout loaders read as intended."""
import os
import shutil
import sys

import numpy as np
import pytest

from maskgan_jax import audio
from maskgan_jax.data import layouts

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts"))
import make_eval_corpora as mec  # noqa: E402

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="espeak-ng not installed (apt-get install -y espeak-ng)")


def test_which_set_follows_the_speech_commands_readme():
    # The README's rule hashes the speaker part only: every clip of a speaker lands in one set.
    sets = {mec.which_set(f"yes/abcd{i:04d}_nohash_{k}.wav") for i in range(3) for k in range(3)}
    assert sets <= {"training", "validation", "testing"}
    for i in range(50):
        assert len({mec.which_set(f"{w}/{i:08x}_nohash_{k}.wav") for w in ("yes", "no") for k in range(3)}) == 1


@needs_espeak
def test_speech_corpora_load_with_their_labels(tmp_path):
    espeak = mec.speech.find_espeak()
    sc = mec.make_speech_commands(str(tmp_path / "sc"), 0, espeak, speakers=3, words_per_speaker=(2, 2))
    c = layouts.load_corpus(str(tmp_path / "sc"), "commands")
    assert len(c.items) == sc["clips"] >= 6 and not c.broken
    assert len({it.group for it in c.items}) == 3 and c.classes["word"] == sorted(c.classes["word"])
    x = audio.load_audio(c.items[0].path, 16000)
    assert x.size == 16000 and 0 < np.abs(x).max() < 1

    mec.make_ravdess(str(tmp_path / "rv"), 0, espeak, actors=2, strong_per_actor=1)
    c = layouts.load_corpus(str(tmp_path / "rv"), "sei")
    assert len(c.items) == 2 * 9 and not c.broken
    assert sorted({it.labels["emotion"] for it in c.items}) == list(range(8))
    assert {it.group for it in c.items} == {"actor_01", "actor_02"}

    mec.make_common_voice(str(tmp_path / "cv"), 0, espeak, clients=4, clips_per_client=1)
    c = layouts.load_corpus(str(tmp_path / "cv"), "udi")
    assert len(c.items) == 4 and not c.broken
    assert set(c.classes["gender"]) <= {"female", "male"}
    assert {it.split for it in c.items} <= {"train", "valid", "test"}


def test_fma_corpus_loads_with_genres_and_artists(tmp_path):
    info = mec.make_fma(str(tmp_path / "fma"), 0, artists_per_genre=1, tracks_per_artist=1, seconds=1.0)
    c = layouts.load_corpus(str(tmp_path / "fma"), "mgi")
    assert len(c.items) == info["clips"] == 8 and not c.broken
    assert c.classes["genre"] == sorted(mec.music.GENRES)
    assert len({it.group for it in c.items}) == 8
    x = audio.load_audio(c.items[0].path, 16000)
    assert abs(x.size - 16000) < 2000 and np.isfinite(x).all() and np.abs(x).max() > 0.01
