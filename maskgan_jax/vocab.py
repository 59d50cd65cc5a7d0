"""The study's vocabulary: one place for every name, rate and scale the modules share.

Tasks, noises, adversaries, channels and attacker families are spelled here once; the
attack binary, the study's grid, the report and the data loaders all import them. Rows of
results are addressed with the small typed keys below instead of positional tuples.
"""
from __future__ import annotations

from typing import NamedTuple

# ----------------------------------------------------------------------------- audio

SAMPLE_RATE = 16000          # the generator's rate; every loader resamples to it
CLIP_SAMPLES = 32768         # 2.048 s, the MaskGAN slice
INT16_SCALE = 32768.0        # int16 PCM <-> float: value / 32768 (soundfile's scaling)

# ----------------------------------------------------------------------------- tasks

TASKS = ("mgi", "udi", "sei", "commands")
PRIVACY_TASKS = ("mgi", "udi", "sei")
UTILITY_TASK = "commands"
# Which public layout serves each task (maskgan_jax/data/<layout>.py).
TASK_LAYOUTS = {"mgi": "fma", "udi": "common_voice", "sei": "ravdess", "commands": "speech_commands"}
TASK_TITLES = {"mgi": "music genre", "udi": "speaker demographics (age, gender, accent)",
               "sei": "speech emotion", "commands": "speech commands (utility)"}
LAYOUT_TITLES = {"fma": "FMA", "common_voice": "Common Voice", "ravdess": "RAVDESS",
                 "speech_commands": "Speech Commands"}

# ----------------------------------------------------------------------------- noises

REFERENCE_NOISES = ("white", "pink", "brown")        # drawn on device by maskgan_jax.noise
STUDY_NOISES = (*REFERENCE_NOISES, "gan")             # the study's noises, in table order
# Built from the corpus an attack runs on (maskgan_jax.corpus_noise).
CORPUS_NOISES = ("speech_shaped", "babble")
# Noises a study config may name beyond the default ones; "optimised" is the trained masker
# of the config's masker_workdir (masker:DIR).
OPTIONAL_STUDY_NOISES = (*CORPUS_NOISES, "optimised")
ALL_STUDY_NOISES = (*STUDY_NOISES, *OPTIONAL_STUDY_NOISES)
# Spellings of --noise: a reference or corpus noise, none, or a kind with a folder (gan:DIR, dir:DIR,
# masker:DIR).
NOISE_KINDS_WITH_PATH = ("gan", "dir", "masker")
NOISE_TITLES = {"none": "clean", "white": "white noise", "pink": "pink noise",
                "brown": "brown noise", "gan": "MaskGAN noise", "speech_shaped": "speech-shaped noise",
                "babble": "babble", "optimised": "trained masker"}

# ----------------------------------------------------------------------------- adversaries

# static: trained on clean audio, tested on masked audio; adaptive: trained and tested on
# masked audio; denoise: trained and tested through a denoising front end (attack_steps);
# invert: knows the MaskGAN generator, subtracts the noise it finds (attack_invert).
ADVERSARIES = ("static", "adaptive", "denoise", "invert")
DENOISE_FRONT_END = "wiener"
# digital: the noise added sample by sample at the SNR; room: talker, masking loudspeaker,
# microphone and listener in a simulated shoebox room (room.py).
CHANNELS = ("digital", "room")
# Neural attackers (models/attackers.py) and the probe (probe.py): logistic regression on
# log-mel statistics, the floor every neural attacker must clear.
NEURAL_FAMILIES = ("cnn", "rnn", "crnn")
MODEL_FAMILIES = (*NEURAL_FAMILIES, "probe")


def check_name(value: str, allowed, what: str) -> str:
    """``value`` if it is one of ``allowed``, else a ValueError naming ``what``."""
    if value not in allowed:
        raise ValueError(f"{what}={value!r}: expected one of {', '.join(map(str, allowed))}")
    return value


def noise_rank(noise: str) -> int:
    """Table order of a noise (the study's noises first, anything else after)."""
    return ALL_STUDY_NOISES.index(noise) if noise in ALL_STUDY_NOISES else len(ALL_STUDY_NOISES)


def adversary_rank(adversary: str) -> int:
    """Table order of an adversary."""
    return ADVERSARIES.index(adversary) if adversary in ADVERSARIES else len(ADVERSARIES)


# ----------------------------------------------------------------------------- row keys

class CellKey(NamedTuple):
    """One attack cell's coordinates; ``level`` is None for the clean baseline."""
    task: str
    model: str
    noise: str
    level: float | None
    adversary: str
    seed: int
    channel: str = "digital"


class RowKey(NamedTuple):
    """A report row: one noise at one level against one adversary, through one channel."""
    noise: str
    level: float
    adversary: str
    channel: str = "digital"


class FoldKey(NamedTuple):
    """One fold of one attacker: the unit that clean and masked results are paired on."""
    model: str
    seed: int
    fold: int
