"""Procedural music for the embedded FMA stand-in: genre-specific tempo, scale, timbre, rhythm.

Each genre of FMA's "small" subset gets a tempo range, a scale or mode, a melody timbre
(wavetable harmonic tilt, odd-only, distortion or ring modulation), note envelopes, a
chord progression, a bass line and 16-step drum patterns. Artists fix a key, a tempo, a
timbre variant and a production filter, so tracks of one artist sound alike and artist
becomes the grouping for cross-validation. A batch of clips is rendered with array
operations: wavetable lookups driven by phase accumulators, envelopes from the time since
each note's or hit's trigger.
"""
from __future__ import annotations

import dataclasses

import numpy as np

_TABLE = 2048
_HARMONICS = 12
_STEPS = 16  # sixteenth notes per bar

# FMA small's eight top genres and their ids in FMA's genres.csv.
GENRE_IDS = {"Electronic": 15, "Experimental": 38, "Folk": 17, "Hip-Hop": 21,
             "Instrumental": 1235, "International": 2, "Pop": 10, "Rock": 12}
GENRES = tuple(GENRE_IDS)


def _p(s: str) -> tuple:
    """A 16-step pattern from 'x.' notation."""
    return tuple(int(c == "x") for c in s)


# tempo (bpm range), scale, melody step (16ths per note), harmonic tilt, odd-only,
# attack/decay (s), distortion drive, ring-mod ratio, rest probability, progression (scale
# degrees per bar), drum patterns (kick, snare, hat, hand drum), bass pattern, pad level,
# bass level, drum level.
STYLES = {
    "Electronic": dict(bpm=(120, 135), scale=(0, 2, 3, 5, 7, 8, 10), step=2, tilt=1.0, odd=False,
                       attack=0.004, decay=0.18, drive=0.0, ring=0.0, rest=0.15, prog=(0, 5, 3, 4),
                       kick=_p("x...x...x...x..."), snare=_p("....x.......x..."), hat=_p("..x...x...x...x."),
                       hand=_p("................"), bass=_p("x.x.x.x.x.x.x.x."), pad=0.35, bass_lvl=0.8, drums=1.0),
    "Experimental": dict(bpm=(60, 170), scale=(0, 2, 4, 6, 8, 10), step=1, tilt=0.7, odd=False,
                         attack=0.02, decay=0.4, drive=0.0, ring=1.414, rest=0.45, prog=(0, 3, 1, 4),
                         kick=None, snare=None, hat=None, hand=None, bass=_p("x.......x......."),
                         pad=0.0, bass_lvl=0.3, drums=0.7),
    "Folk": dict(bpm=(85, 110), scale=(0, 2, 4, 7, 9), step=2, tilt=1.6, odd=False,
                 attack=0.002, decay=0.35, drive=0.0, ring=0.0, rest=0.1, prog=(0, 3, 4, 0),
                 kick=_p("x.......x......."), snare=_p("................"), hat=_p("................"),
                 hand=_p("................"), bass=_p("x.......x......."), pad=0.0, bass_lvl=0.5, drums=0.25),
    "Hip-Hop": dict(bpm=(80, 98), scale=(0, 3, 5, 7, 10), step=4, tilt=2.4, odd=False,
                    attack=0.01, decay=0.5, drive=0.0, ring=0.0, rest=0.35, prog=(0, 0, 3, 4),
                    kick=_p("x......x..x....."), snare=_p("....x.......x..."), hat=_p("x.x.x.x.x.x.x.x."),
                    hand=_p("................"), bass=_p("x......x..x....."), pad=0.15, bass_lvl=1.2, drums=1.2),
    "Instrumental": dict(bpm=(65, 95), scale=(0, 2, 4, 5, 7, 9, 11), step=2, tilt=2.0, odd=False,
                         attack=0.003, decay=0.8, drive=0.0, ring=0.0, rest=0.1, prog=(0, 5, 3, 4),
                         kick=_p("................"), snare=_p("................"), hat=_p("................"),
                         hand=_p("................"), bass=_p("x...x...x...x..."), pad=0.3, bass_lvl=0.4, drums=0.0),
    "International": dict(bpm=(95, 125), scale=(0, 1, 4, 5, 7, 8, 10), step=1, tilt=0.6, odd=False,
                          attack=0.002, decay=0.45, drive=0.0, ring=0.0, rest=0.2, prog=(0, 0, 1, 0),
                          kick=_p("................"), snare=_p("................"), hat=_p("................"),
                          hand=_p("x..x..x.x..x.x.."), bass=_p("x.......x......."), pad=0.3, bass_lvl=0.4,
                          drums=1.0),
    "Pop": dict(bpm=(100, 125), scale=(0, 2, 4, 5, 7, 9, 11), step=2, tilt=1.3, odd=True,
                attack=0.01, decay=0.3, drive=0.0, ring=0.0, rest=0.15, prog=(0, 4, 5, 3),
                kick=_p("x.......x......."), snare=_p("....x.......x..."), hat=_p("x.x.x.x.x.x.x.x."),
                hand=_p("................"), bass=_p("x...x...x...x..."), pad=0.4, bass_lvl=0.7, drums=0.9),
    "Rock": dict(bpm=(110, 150), scale=(0, 2, 4, 5, 7, 9, 10), step=2, tilt=1.0, odd=False,
                 attack=0.003, decay=0.5, drive=4.0, ring=0.0, rest=0.1, prog=(0, 6, 3, 0),
                 kick=_p("x.....x.x......."), snare=_p("....x.......x..."), hat=_p("x.x.x.x.x.x.x.x."),
                 hand=_p("................"), bass=_p("x.x.x.x.x.x.x.x."), pad=0.5, bass_lvl=0.8, drums=1.1),
}


@dataclasses.dataclass(frozen=True)
class Artist:
    """A synthetic artist: genre, key, tempo, timbre variant and production filter."""

    genre: str
    root_hz: float
    bpm: float
    tilt: float
    cutoff_hz: float
    gains: tuple  # melody, pad, bass, drums (linear)


def make_artist(rng: np.random.Generator, genre: str) -> Artist:
    """A random artist of a genre."""
    st = STYLES[genre]
    lo, hi = st["bpm"]
    return Artist(genre=genre, root_hz=float(220.0 * 2 ** (rng.integers(-5, 7) / 12)),
                  bpm=float(rng.uniform(lo, hi)), tilt=float(st["tilt"] + rng.normal(0.0, 0.25)),
                  cutoff_hz=float(np.exp(rng.uniform(np.log(2500.0), np.log(9000.0)))),
                  gains=tuple(float(x) for x in np.exp(rng.normal(0.0, 0.3, 4))))


def _tables(tilt_N: np.ndarray, odd_N: np.ndarray) -> np.ndarray:
    """One-period wavetables [N, _TABLE] with harmonic amplitudes k^-tilt (odd-only where asked)."""
    k = np.arange(1, _HARMONICS + 1, dtype=np.float32)
    amp = k[None, :] ** -tilt_N[:, None].astype(np.float32)
    amp = amp * np.where(odd_N[:, None], k[None, :] % 2 == 1, True)
    phase = np.arange(_TABLE, dtype=np.float32) / _TABLE
    basis = np.sin(2 * np.pi * k[:, None] * phase[None, :])
    tab = amp @ basis
    return tab / np.abs(tab).max(axis=1, keepdims=True)


def _lookup(table_NxL: np.ndarray, freq_NxT: np.ndarray, sr: int) -> np.ndarray:
    """Wavetable oscillator: a phase accumulator indexes each clip's table."""
    phase = np.cumsum(freq_NxT * np.float32(1.0 / sr), axis=1, dtype=np.float32)
    idx = ((phase - np.floor(phase)) * _TABLE).astype(np.int32) % _TABLE
    idx += (np.arange(table_NxL.shape[0], dtype=np.int32) * _TABLE)[:, None]
    return table_NxL.reshape(-1)[idx]


_NEVER = np.float32(1e6)  # "samples since" before the first trigger: every envelope is ~0


def _since(trig_NxS: np.ndarray, step_NxT: np.ndarray, tau_NxT: np.ndarray, step_len_N: np.ndarray) -> np.ndarray:
    """Samples since the most recent trigger at or before each sample (_NEVER before the first)."""
    s = trig_NxS.shape[1]
    last = np.where(trig_NxS > 0, np.arange(s, dtype=np.int32)[None, :], -(1 << 20))
    last = np.maximum.accumulate(last, axis=1)
    at = np.take_along_axis(last, step_NxT, axis=1)
    since = (step_NxT - at).astype(np.float32) * step_len_N[:, None] + tau_NxT
    return np.minimum(since, _NEVER)


def _per_step(values_NxK: np.ndarray, index_NxT: np.ndarray) -> np.ndarray:
    """Values held per note/bar, expanded to samples."""
    return np.take_along_axis(values_NxK.astype(np.float32), index_NxT, axis=1)


def render(artists: list[Artist], seconds: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Float waveforms [N, T] of one track excerpt per artist entry (artists may repeat)."""
    f32 = np.float32
    n = len(artists)
    t_len = int(round(seconds * sample_rate))
    st = [STYLES[a.genre] for a in artists]
    col = lambda v: np.asarray(v, np.float32)[:, None]  # noqa: E731
    bpm = np.asarray([a.bpm for a in artists]) * np.exp(rng.normal(0.0, 0.02, n))
    step_len = (sample_rate * 60.0 / bpm / 4.0).astype(f32)
    # Start somewhere inside the track, as an excerpt would.
    offset = rng.integers(0, _STEPS, n).astype(f32)[:, None]
    pos = np.arange(t_len, dtype=f32)[None, :] / step_len[:, None] + offset
    step = pos.astype(np.int32)
    tau = (pos - step) * step_len[:, None]
    del pos
    n_steps = int(step.max()) + 2
    sr_inv = f32(1.0 / sample_rate)

    # Melody: a random walk on scale degrees, one note per `step` sixteenths, with rests.
    mstep = np.asarray([s["step"] for s in st], np.int32)
    walk = np.cumsum(rng.integers(-2, 3, (n, n_steps)), axis=1) + rng.integers(0, 5, (n, 1))
    walk = np.abs((walk + 14) % 28 - 14)  # reflect into two octaves of degrees
    semis = np.zeros((n, n_steps))
    for i, s in enumerate(st):
        sc = np.asarray(s["scale"])
        semis[i] = sc[walk[i] % len(sc)] + 12 * (walk[i] // len(sc))
    root = np.asarray([a.root_hz for a in artists])[:, None]
    rest = rng.random((n, n_steps)) < col([s["rest"] for s in st])
    mel_freq = _per_step(root * 2.0 ** (semis / 12.0), step // mstep[:, None])
    slot_of_step = np.arange(n_steps)[None, :] // mstep[:, None]
    mel_trig = (np.arange(n_steps)[None, :] % mstep[:, None] == 0) & ~np.take_along_axis(rest, slot_of_step, axis=1)
    since_m = _since(mel_trig, step, tau, step_len)
    att = col([s["attack"] for s in st]) * sample_rate
    dec = col([s["decay"] for s in st]) * sample_rate * np.exp(rng.normal(0.0, 0.15, (n, 1))).astype(f32)
    env = (1.0 - np.exp(-since_m / att)) * np.exp(-since_m / dec)
    tilt = np.asarray([a.tilt for a in artists])
    mel_tab = _tables(np.maximum(tilt, 0.3), np.asarray([s["odd"] for s in st]))
    melody = _lookup(mel_tab, mel_freq, sample_rate) * env
    ring = col([s["ring"] for s in st])
    if np.any(ring > 0):
        rm = np.sin(f32(2 * np.pi) * np.cumsum(mel_freq * ring * sr_inv, axis=1))
        melody = np.where(ring > 0, melody * rm, melody)

    # Chords: one per bar from the genre's progression (scale degrees -> triads, or power
    # chords where the style is distorted); the bass plays chord roots two octaves down.
    bar = step // _STEPS
    n_bars = n_steps // _STEPS + 1
    chord = np.zeros((n, n_bars, 3))
    bass_semi = np.zeros((n, n_bars))
    for i, s in enumerate(st):
        sc = np.asarray(s["scale"])
        deg = np.asarray(s["prog"])[np.arange(n_bars) % len(s["prog"])]
        for v in range(3):
            d = deg + ((0, 4, 7)[v] if s["drive"] > 0 else 2 * v)
            chord[i, :, v] = sc[d % len(sc)] + 12 * (d // len(sc)) - 12
        bass_semi[i] = sc[deg % len(sc)] - 24
    drive = col([s["drive"] for s in st])
    pad_tab = _tables(np.full(n, 2.0), np.zeros(n, bool))
    pad = sum(_lookup(pad_tab, _per_step(root * 2.0 ** (chord[:, :, v] / 12.0), bar), sample_rate)
              for v in range(3))
    bar_pos = ((step % _STEPS).astype(f32) * step_len[:, None] + tau) / (_STEPS * step_len[:, None])
    pad *= np.minimum(bar_pos * 10.0, 1.0) * (1.0 - 0.5 * bar_pos)
    if np.any(drive > 0):
        pad = np.where(drive > 0, np.tanh(drive * pad) / np.tanh(np.maximum(drive, 1e-3)), pad)
        melody = np.where(drive > 0, np.tanh(drive * melody), melody)

    def patterns(key, density):
        base = np.zeros((n, _STEPS), np.int64)
        for i, s in enumerate(st):
            base[i] = s[key] if s[key] is not None else (rng.random(_STEPS) < density)
        # Players vary: a few hits added or dropped, only on instruments the style uses.
        flips = (rng.random((n, _STEPS)) < 0.06) & base.any(axis=1, keepdims=True)
        base = np.where(flips, 1 - base, base)
        return np.tile(base, (1, n_steps // _STEPS + 1))[:, :n_steps]

    since_b = _since(patterns("bass", 0.2), step, tau, step_len)
    bass_env = (1 - np.exp(-since_b / f32(0.005 * sample_rate))) * np.exp(-since_b / f32(0.25 * sample_rate))
    bass_tab = _tables(np.full(n, 3.0), np.zeros(n, bool))
    bass = _lookup(bass_tab, _per_step(root * 2.0 ** (bass_semi / 12.0), bar), sample_rate) * bass_env

    # Drums from the time since each instrument's last hit.
    def hit(key, density, tau_s):
        since = _since(patterns(key, density), step, tau, step_len)
        return since, np.exp(-since / f32(tau_s * sample_rate))

    def sweep(since, f_end, f_extra, tau_s):
        # Pitch falling from f_end + f_extra to f_end: integrated phase of the glide.
        k = f32(tau_s * sample_rate)
        return np.sin(f32(2 * np.pi) * sr_inv * (f_end * since + f_extra * k * (1 - np.exp(-since / k))))

    since_k, env_k = hit("kick", 0.15, 0.06)
    kick = env_k * sweep(since_k, 50.0, 90.0, 0.02)
    since_s, env_s = hit("snare", 0.1, 0.05)
    noise = rng.standard_normal((n, t_len), f32)
    snare = env_s * (0.7 * noise + 0.5 * np.sin(f32(2 * np.pi * 185.0) * sr_inv * since_s))
    _, env_h = hit("hat", 0.25, 0.015)
    hat = env_h * 0.35 * np.diff(noise, axis=1, prepend=f32(0))
    since_d, env_d = hit("hand", 0.1, 0.09)
    hand = env_d * sweep(since_d, 180.0, 120.0, 0.03)

    g = np.asarray([a.gains for a in artists], f32)
    mix = (0.5 * g[:, 0:1] * melody + col([s["pad"] for s in st]) * 0.4 * g[:, 1:2] * pad
           + col([s["bass_lvl"] for s in st]) * 0.6 * g[:, 2:3] * bass
           + col([s["drums"] for s in st]) * 0.5 * g[:, 3:4] * (kick + snare + hat + hand))
    # Production: the artist's low-pass (a gentle 2nd-order roll-off), applied in frequency.
    spec = np.fft.rfft(mix, axis=1)
    freqs = np.fft.rfftfreq(t_len, 1.0 / sample_rate)
    cutoff = np.asarray([a.cutoff_hz for a in artists])[:, None]
    spec *= (1.0 / (1.0 + (freqs[None, :] / cutoff) ** 4)).astype(f32)
    return np.fft.irfft(spec, n=t_len, axis=1).astype(f32)
