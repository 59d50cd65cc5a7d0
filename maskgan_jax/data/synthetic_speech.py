"""Source-filter speech for the embedded corpora: phones, speakers, accents, emotions.

A Rosenberg glottal pulse train (pitch and voice quality per speaker, age and emotion,
jitter and shimmer) plus aspiration and frication noise excites a cascade of four formant
resonators; formant targets come from phone tables (Peterson & Barney style averages for
an adult male), scaled by the speaker's vocal-tract length and shifted per accent. The
filter is applied frame by frame in the frequency domain (short-time overlap-add), so a
whole batch of utterances is synthesised with array operations only.
"""
from __future__ import annotations

import dataclasses

import numpy as np

SAMPLE_RATE = 16000
HOP = 128            # samples between filter frames (8 ms at 16 kHz)
_WIN = 256           # analysis window; frames are zero-padded to _NFFT so filtering stays linear
_NFFT = 512

# Phone table: F1, F2, F3 (Hz, adult male), duration (ms), voicing, aspiration, frication
# amplitude, frication centre (Hz), frication bandwidth (Hz), overall amplitude.
_V = dict(voice=1.0, asp=0.0, fric=0.0, fc=0.0, fb=1.0, amp=1.0)
PHONES: dict[str, dict[str, float]] = {
    # vowels
    "i": dict(_V, f=(270, 2290, 3010), dur=120), "I": dict(_V, f=(390, 1990, 2550), dur=90),
    "e": dict(_V, f=(530, 1840, 2480), dur=110), "ae": dict(_V, f=(660, 1720, 2410), dur=140),
    "a": dict(_V, f=(730, 1090, 2440), dur=140), "o": dict(_V, f=(570, 840, 2410), dur=130),
    "U": dict(_V, f=(440, 1020, 2240), dur=90), "u": dict(_V, f=(300, 870, 2240), dur=120),
    "V": dict(_V, f=(640, 1190, 2390), dur=100), "R": dict(_V, f=(490, 1350, 1690), dur=120),
    "@": dict(_V, f=(500, 1500, 2500), dur=70),
    # sonorants
    "m": dict(_V, f=(250, 1000, 2200), dur=70, amp=0.35), "n": dict(_V, f=(250, 1500, 2500), dur=65, amp=0.35),
    "N": dict(_V, f=(250, 2000, 2700), dur=70, amp=0.35), "l": dict(_V, f=(360, 1000, 2800), dur=65, amp=0.7),
    "r": dict(_V, f=(420, 1300, 1600), dur=65, amp=0.7), "w": dict(_V, f=(300, 700, 2200), dur=60, amp=0.7),
    "j": dict(_V, f=(280, 2200, 3000), dur=60, amp=0.7),
    # fricatives
    "s": dict(f=(500, 1500, 2500), dur=110, voice=0.0, asp=0.0, fric=0.5, fc=5500, fb=2500, amp=1.0),
    "z": dict(f=(300, 1500, 2500), dur=90, voice=0.3, asp=0.0, fric=0.35, fc=5500, fb=2500, amp=1.0),
    "S": dict(f=(500, 1800, 2500), dur=120, voice=0.0, asp=0.0, fric=0.5, fc=3000, fb=1800, amp=1.0),
    "f": dict(f=(500, 1400, 2500), dur=100, voice=0.0, asp=0.0, fric=0.15, fc=4500, fb=6000, amp=1.0),
    "v": dict(f=(300, 1400, 2500), dur=70, voice=0.4, asp=0.0, fric=0.1, fc=4500, fb=6000, amp=1.0),
    "T": dict(f=(500, 1500, 2500), dur=90, voice=0.0, asp=0.0, fric=0.12, fc=6000, fb=5000, amp=1.0),
    "D": dict(f=(300, 1500, 2500), dur=50, voice=0.5, asp=0.0, fric=0.08, fc=5000, fb=5000, amp=1.0),
    "h": dict(f=(500, 1500, 2500), dur=70, voice=0.0, asp=0.6, fric=0.0, fc=0.0, fb=1.0, amp=1.0),
    "_": dict(f=(500, 1500, 2500), dur=120, voice=0.0, asp=0.0, fric=0.0, fc=0.0, fb=1.0, amp=0.0),
}
# Stops expand to closure + burst (+ aspiration when voiceless): (burst centre Hz, voiced).
STOPS = {"p": (1000, False), "t": (4500, False), "k": (2500, False),
         "b": (1000, True), "d": (4000, True), "g": (2200, True)}
VOWELS = frozenset("i I e ae a o U u V R @".split())
DIPHTHONGS = {"aI": ("a", "I"), "aU": ("a", "U"), "oU": ("o", "U"), "eI": ("e", "I")}

# The ten command words of Speech Commands as phone sequences.
COMMAND_WORDS = {
    "yes": "j e s", "no": "n oU", "up": "V p", "down": "d aU n", "left": "l e f t",
    "right": "r aI t", "on": "a n", "off": "o f", "stop": "s t a p", "go": "g oU",
}
# RAVDESS statements 01 and 02.
STATEMENTS = {
    1: ("Kids are talking by the door", "k I d z _ a r t o k I N b aI D @ d o r"),
    2: ("Dogs are sitting by the door", "d o g z _ a r s I t I N b aI D @ d o r"),
}

AGES = ("teens", "twenties", "thirties", "fourties", "fifties", "sixties")
# Mean speaking pitch (Hz) by age for (male, female): male pitch falls into middle age and
# rises again late; female pitch falls steadily with age.
_AGE_F0 = {"teens": (150, 235), "twenties": (125, 218), "thirties": (116, 205),
           "fourties": (110, 192), "fifties": (114, 182), "sixties": (128, 172)}
# Speaking rate falls, jitter and breathiness grow with age; teens have shorter tracts.
_AGE_RATE = {"teens": 1.12, "twenties": 1.06, "thirties": 1.0, "fourties": 0.95, "fifties": 0.9, "sixties": 0.82}
_AGE_JITTER = {"teens": 0.9, "twenties": 0.8, "thirties": 0.9, "fourties": 1.2, "fifties": 1.7, "sixties": 2.5}
_AGE_BREATH = {"teens": 0.8, "twenties": 0.9, "thirties": 1.0, "fourties": 1.2, "fifties": 1.5, "sixties": 2.0}
_AGE_VTL = {"teens": 1.06, "twenties": 1.0, "thirties": 1.0, "fourties": 0.99, "fifties": 0.985, "sixties": 0.98}

# Accents (Common Voice 10 labels): per-vowel (F1, F2) factors, rhoticity, stress-timing
# ratio (stressed/unstressed vowel length), F3 factor, the pitch movement at phrase end, and
# how /t/ and /r/ are made: flapped /t/ between vowels (US), glottal /t/ before consonants
# (England), retroflex stops with a low burst (South Asia), tapped /r/ (Scotland).
ACCENTS = {
    "United States English": dict(
        vowels={"ae": (0.88, 1.08), "a": (1.0, 1.06), "o": (1.08, 1.08)},
        rhotic=True, stress=1.6, f3=1.0, final=-3.0, t="flap", r_dur=1.0),
    "England English": dict(
        vowels={"a": (1.0, 0.85), "o": (0.92, 0.86), "U": (1.0, 1.15), "u": (1.0, 1.18), "ae": (1.08, 0.96)},
        rhotic=False, stress=1.6, f3=1.0, final=-4.5, t="glottal", r_dur=1.0),
    "India and South Asia (India, Pakistan, Sri Lanka)": dict(
        vowels={"V": (1.15, 0.94), "e": (0.88, 1.06), "o": (0.88, 0.94), "@": (1.12, 0.9)},
        rhotic=True, stress=1.1, f3=0.88, final=1.5, t="retroflex", r_dur=0.7),
    "Australian English": dict(
        vowels={"i": (1.12, 0.9), "ae": (0.82, 1.1), "u": (1.0, 1.32), "a": (1.06, 1.12)},
        rhotic=False, stress=1.5, f3=1.02, final=4.0, t="plain", r_dur=1.0),
    "Scottish English": dict(
        vowels={"u": (1.0, 1.38), "U": (0.8, 1.38), "e": (0.84, 1.06), "o": (0.84, 0.94)},
        rhotic=True, stress=1.3, f3=1.08, final=-2.0, t="plain", r_dur=0.45),
}
NEUTRAL_ACCENT = dict(vowels={}, rhotic=True, stress=1.5, f3=1.0, final=-3.0, t="plain", r_dur=1.0)

# RAVDESS emotions (codes 01..08): pitch factor, pitch range factor, energy (dB), tempo,
# jitter factor, open quotient (voice quality: low = tense, high = breathy), aspiration,
# final pitch movement (semitones).
EMOTIONS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
EMOTION_PROSODY = {
    "neutral":   dict(f0=1.0, range=1.0, energy=0.0, tempo=1.0, jitter=1.0, oq=0.6, asp=0.03, final=-3.0),
    "calm":      dict(f0=0.96, range=0.7, energy=-3.0, tempo=0.9, jitter=0.8, oq=0.68, asp=0.06, final=-2.0),
    "happy":     dict(f0=1.25, range=1.8, energy=4.0, tempo=1.1, jitter=1.0, oq=0.55, asp=0.03, final=1.0),
    "sad":       dict(f0=0.92, range=0.5, energy=-5.0, tempo=0.75, jitter=1.6, oq=0.72, asp=0.09, final=-4.0),
    "angry":     dict(f0=1.2, range=1.6, energy=8.0, tempo=1.15, jitter=1.3, oq=0.42, asp=0.02, final=-5.0),
    "fearful":   dict(f0=1.35, range=1.2, energy=1.0, tempo=1.2, jitter=2.6, oq=0.6, asp=0.06, final=2.0),
    "disgust":   dict(f0=0.9, range=1.2, energy=1.0, tempo=0.8, jitter=1.3, oq=0.5, asp=0.04, final=-5.0),
    "surprised": dict(f0=1.4, range=2.2, energy=3.0, tempo=1.0, jitter=1.0, oq=0.58, asp=0.04, final=5.0),
}


# Spelling of phones, and syllable parts, for pseudo-English sentences.
_SPELL = {"i": "ee", "I": "i", "e": "e", "ae": "a", "a": "ah", "o": "aw", "U": "oo", "u": "u", "V": "u",
          "R": "er", "@": "a", "m": "m", "n": "n", "N": "ng", "l": "l", "r": "r", "w": "w", "j": "y",
          "s": "s", "z": "z", "S": "sh", "f": "f", "v": "v", "T": "th", "D": "th", "h": "h", "p": "p",
          "t": "t", "k": "k", "b": "b", "d": "d", "g": "g"}
_ONSETS = "m n l r w j s z S f v T D h p t k b d g".split()
_NUCLEI = "i I e ae a o U u V R @".split()
_CODAS = "m n N l s z f v t k d".split()


def lexicon(rng: np.random.Generator, n_words: int) -> list[tuple[str, tuple]]:
    """Pseudo-English words for Common Voice sentences: (spelling, phones) of 1-3 syllables."""
    words = []
    for _ in range(n_words):
        phones = []
        for _ in range(int(rng.integers(1, 4))):
            if rng.random() < 0.8:
                phones.append(str(rng.choice(_ONSETS)))
            phones.append(str(rng.choice(_NUCLEI)))
            if rng.random() < 0.35:
                phones.append(str(rng.choice(_CODAS)))
        words.append(("".join(_SPELL[p] for p in phones), tuple(phones)))
    return words


@dataclasses.dataclass(frozen=True)
class Speaker:
    """One synthetic talker: pitch, vocal-tract scale, formant idiosyncrasy, voice quality, accent."""

    f0: float            # mean pitch, Hz
    vtl: float           # formant scale (1 = adult male tract; shorter tract -> larger)
    formant_idio: tuple  # per-formant factors, the speaker's own colouring
    rate: float          # speaking-rate factor
    jitter: float        # cycle-to-cycle pitch perturbation (fraction)
    shimmer: float       # cycle-to-cycle amplitude perturbation (fraction)
    oq: float            # glottal open quotient
    asp: float           # aspiration (breathiness) level
    accent: str          # key of ACCENTS, or "" for a neutral accent
    range_st: float      # intonation range, semitones


def make_speaker(rng: np.random.Generator, gender: str, age: str, accent: str) -> Speaker:
    """A random speaker of a gender ('male'/'female'), age bracket and accent."""
    female = gender == "female"
    f0 = _AGE_F0[age][int(female)] * float(np.exp(rng.normal(0.0, 0.07)))
    vtl = (1.16 if female else 1.0) * _AGE_VTL[age] * float(np.exp(rng.normal(0.0, 0.035)))
    idio = tuple(float(x) for x in np.exp(rng.normal(0.0, 0.035, 4)))
    breath = (0.05 if female else 0.03) * _AGE_BREATH[age]
    return Speaker(
        f0=f0, vtl=vtl, formant_idio=idio,
        rate=_AGE_RATE[age] * float(np.exp(rng.normal(0.0, 0.08))),
        jitter=0.006 * _AGE_JITTER[age] * float(np.exp(rng.normal(0.0, 0.2))),
        shimmer=0.04 * _AGE_JITTER[age] * float(np.exp(rng.normal(0.0, 0.2))),
        oq=float(np.clip((0.64 if female else 0.56) + rng.normal(0.0, 0.04), 0.35, 0.8)),
        asp=breath * float(np.exp(rng.normal(0.0, 0.3))),
        accent=accent, range_st=float(np.clip(rng.normal(4.5 if female else 3.5, 0.8), 1.5, 8.0)))


@dataclasses.dataclass(frozen=True)
class Utterance:
    """What to say and how: phones, speaker, prosody overrides, silences (s) and loudness (dB)."""

    phones: tuple
    speaker: Speaker
    f0_factor: float = 1.0
    range_factor: float = 1.0
    tempo: float = 1.0
    jitter_factor: float = 1.0
    oq: float | None = None
    asp: float | None = None
    final_st: float | None = None
    energy_db: float = 0.0
    lead_s: float = 0.2
    tail_s: float = 0.2


def emotional(utt: Utterance, emotion: str, strong: bool) -> Utterance:
    """The utterance with an emotion's prosody; 'strong' intensity exaggerates the deviations."""
    p = EMOTION_PROSODY[emotion]
    k = 1.5 if strong else 1.0
    scale = lambda v: float(v) ** k  # noqa: E731 - factors exaggerate multiplicatively
    return dataclasses.replace(
        utt, f0_factor=scale(p["f0"]), range_factor=scale(p["range"]), tempo=scale(p["tempo"]),
        jitter_factor=scale(p["jitter"]), oq=float(np.clip(0.6 + k * (p["oq"] - 0.6), 0.3, 0.85)),
        asp=p["asp"] * (1.3 if strong else 1.0), final_st=p["final"] * k, energy_db=p["energy"] * k)


def parse_phones(text: str) -> tuple:
    """Phone symbols of a space-separated string, diphthongs expanded."""
    out = []
    for sym in text.split():
        out.extend(DIPHTHONGS.get(sym, (sym,)))
        if sym not in DIPHTHONGS and sym not in PHONES and sym not in STOPS:
            raise ValueError(f"unknown phone {sym!r} in {text!r}")
    return tuple(out)


def _segments(utt: Utterance, rng: np.random.Generator):
    """Per-segment parameter rows [S, 11] and lengths in frames [S], for one utterance."""
    spk = utt.speaker
    acc = ACCENTS.get(spk.accent, NEUTRAL_ACCENT)
    rate = spk.rate * utt.tempo
    frame_ms = 1000.0 * HOP / SAMPLE_RATE
    rows, lengths = [], []
    phones = list(utt.phones)
    vowel_count = 0

    def add(p, dur_ms, f=None, voice=None, asp=None, fric=None, fc=None, fb=None, amp=None, stress=0.0):
        f1, f2, f3 = f if f is not None else p["f"]
        rows.append([f1, f2, f3, 3500.0, p["voice"] if voice is None else voice,
                     p["asp"] if asp is None else asp, p["fric"] if fric is None else fric,
                     p["fc"] if fc is None else fc, p["fb"] if fb is None else fb,
                     p["amp"] if amp is None else amp, stress])
        lengths.append(max(1, int(round(dur_ms / rate / frame_ms * float(np.exp(rng.normal(0.0, 0.12)))))))

    for i, sym in enumerate(phones):
        nxt = phones[i + 1] if i + 1 < len(phones) else "_"
        prev = phones[i - 1] if i > 0 else "_"
        if sym == "r" and not acc["rhotic"] and prev in VOWELS and nxt not in VOWELS:
            # Non-rhotic accents drop post-vocalic r and lengthen the vowel instead.
            lengths[-1] = int(lengths[-1] * 1.4) + 1
            continue
        if sym in STOPS:
            centre, voiced = STOPS[sym]
            sil = PHONES["_"]
            if sym in "td" and acc["t"] == "flap" and prev in VOWELS and nxt in VOWELS:
                add(PHONES["r"], 25.0, f=(350, 1600, 2600), amp=0.5)  # a quick voiced tap
                continue
            if sym == "t" and acc["t"] == "glottal" and prev in VOWELS and nxt not in VOWELS:
                add(sil, 60.0)  # glottal stop: closure, no release burst
                continue
            if sym in "td" and acc["t"] == "retroflex":
                centre = 2800
            add(sil, 55.0, f=(300, 1500, 2500), voice=0.12 if voiced else 0.0, amp=1.0 if voiced else 0.0)
            add(sil, 15.0, f=(500, 1500, 2500), fric=0.6, fc=centre, fb=3000.0, amp=1.0)
            if not voiced and nxt in VOWELS:
                add(PHONES["h"], 35.0)
            continue
        p = PHONES[sym]
        dur = p["dur"]
        stress = 0.0
        f = p["f"]
        if sym in VOWELS:
            # Alternate stressed/unstressed syllables; the accent sets how unequal they are.
            stressed = vowel_count % 2 == 0
            vowel_count += 1
            stress = 1.0 if stressed else 0.0
            dur = dur * (acc["stress"] ** 0.5 if stressed else acc["stress"] ** -0.5)
            k1, k2 = acc["vowels"].get(sym, (1.0, 1.0))
            f = (f[0] * k1, f[1] * k2, f[2] * acc["f3"])
            if sym == "R" and not acc["rhotic"]:
                f = (f[0], f[1], 2500.0)
        elif sym == "r":
            f = (f[0], f[1], f[2] / acc["f3"] if acc["f3"] > 1.0 else f[2])
            dur = dur * acc["r_dur"]
        if sym == "_":
            dur = dur * float(rng.uniform(0.6, 1.8))
        add(p, dur, f=f, stress=stress)
    return np.asarray(rows, np.float64), np.asarray(lengths, np.int64)


def _smooth(x_NxF: np.ndarray, width: int) -> np.ndarray:
    """Moving average along frames (edge-padded): coarticulation and amplitude ramps."""
    if width <= 1:
        return x_NxF
    pad = width // 2
    xp = np.pad(x_NxF, ((0, 0), (pad, width - 1 - pad)), mode="edge")
    c = np.cumsum(xp, axis=1)
    c = np.concatenate([np.zeros((x_NxF.shape[0], 1)), c], axis=1)
    return (c[:, width:] - c[:, :-width]) / width


def _upsample(x_NxF: np.ndarray, length: int) -> np.ndarray:
    """Frame-rate tracks to sample rate by linear interpolation (frame f sits at sample f*HOP)."""
    pos = np.arange(length) / HOP
    i0 = np.minimum(pos.astype(np.int64), x_NxF.shape[1] - 1)
    i1 = np.minimum(i0 + 1, x_NxF.shape[1] - 1)
    frac = pos - np.floor(pos)
    return x_NxF[:, i0] * (1.0 - frac) + x_NxF[:, i1] * frac


def _resonators(freq_B: np.ndarray, formants_NxFxK: np.ndarray, bw_NxFxK: np.ndarray) -> np.ndarray:
    """Cascade of second-order resonators, magnitude response, unit gain at 0 Hz: [N, F, B]."""
    f2 = freq_B[None, None, :] ** 2
    h = np.ones(formants_NxFxK.shape[:2] + freq_B.shape, formants_NxFxK.dtype)
    for k in range(formants_NxFxK.shape[2]):
        fk = formants_NxFxK[:, :, k:k + 1]
        bk = bw_NxFxK[:, :, k:k + 1]
        h *= fk ** 2 / np.sqrt((fk ** 2 - f2) ** 2 + (bk * freq_B[None, None, :]) ** 2)
    return h


def _ola_filter(x_NxT: np.ndarray, gain_NxFxB: np.ndarray, extra_NxFxB: np.ndarray | None = None) -> np.ndarray:
    """Time-varying filter: windowed frames times a per-frame magnitude response (plus extra
    frame spectra), overlap-added."""
    n, t = x_NxT.shape
    frames = gain_NxFxB.shape[1]
    need = (frames - 1) * HOP + _WIN
    xp = np.pad(x_NxT, ((0, 0), (0, max(0, need - t))))
    # Periodic Hann at hop WIN/2 sums to exactly 1.
    win = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(_WIN) / _WIN)).astype(np.float32)
    fr = np.lib.stride_tricks.sliding_window_view(xp, _WIN, axis=1)[:, ::HOP][:, :frames] * win
    spec = np.fft.rfft(fr, n=_NFFT, axis=2) * gain_NxFxB
    if extra_NxFxB is not None:
        spec += extra_NxFxB
    y = np.fft.irfft(spec, n=_NFFT, axis=2)
    per = _NFFT // HOP
    out = np.zeros((n, frames + per - 1, HOP), np.float32)
    y = y.reshape(n, frames, per, HOP)
    for j in range(per):
        out[:, j:j + frames] += y[:, :, j]
    # Frame f starts at sample f*HOP; the window's centre sits at WIN/2 within it.
    return out.reshape(n, -1)[:, :t]


def synthesize(utts: list[Utterance], rng: np.random.Generator) -> list[np.ndarray]:
    """Float waveforms (16 kHz) of utterances, synthesised as one batch; loudness not yet normalised."""
    plans = []
    for u in utts:
        seg, lens = _segments(u, rng)
        lead = int(round(u.lead_s * SAMPLE_RATE / HOP))
        tail = int(round(u.tail_s * SAMPLE_RATE / HOP))
        plans.append((seg, lens, lead, tail))
    total = [int(lens.sum()) + lead + tail for seg, lens, lead, tail in plans]
    nf = max(total)
    n = len(utts)
    k_params = plans[0][0].shape[1]
    track = np.zeros((n, nf, k_params))
    track[:, :, 0:4] = (500.0, 1500.0, 2500.0, 3500.0)
    track[:, :, 8] = 1.0
    for i, (seg, lens, lead, tail) in enumerate(plans):
        body = np.repeat(seg, lens, axis=0)
        track[i, lead:lead + len(body)] = body
        track[i, lead + len(body):, 0:4] = body[-1, 0:4]
        track[i, :lead, 0:4] = body[0, 0:4]
    # Coarticulation: formants glide (~40 ms), sources ramp (~16-24 ms).
    formants = np.stack([_smooth(track[:, :, k], 5) for k in range(4)], axis=2)
    voice = _smooth(track[:, :, 4] * track[:, :, 9], 3)
    asp_seg = _smooth(track[:, :, 5], 3)
    fric = _smooth(track[:, :, 6], 2)
    fc = _smooth(track[:, :, 7], 3)
    fb = _smooth(track[:, :, 8], 3)
    stress = _smooth(track[:, :, 10], 9)

    spk = [u.speaker for u in utts]
    col = lambda vals: np.asarray(vals, np.float64)[:, None]  # noqa: E731
    vtl = col([s.vtl for s in spk])
    idio = np.asarray([s.formant_idio for s in spk])[:, None, :]
    formants = formants * vtl[:, :, None] * idio
    formants[:, :, 3] = np.maximum(formants[:, :, 3], formants[:, :, 2] + 300.0)
    bw = np.stack([50.0 + 0.06 * formants[:, :, 0], 60.0 + 0.04 * formants[:, :, 1],
                   80.0 + 0.03 * formants[:, :, 2], 120.0 + 0.03 * formants[:, :, 3]], axis=2)
    bw[:, :, 0] += 120.0 * (track[:, :, 9] < 0.5) * (track[:, :, 4] > 0)  # nasals: broad F1
    fc = fc * vtl ** 0.5

    # Intonation (semitones): declination, accents on stressed vowels, a phrase-final
    # movement, slow drift; the speaker's range and the emotion scale it.
    t_frac = np.arange(nf)[None, :] / max(nf - 1, 1)
    span = col([s.range_st for s in spk]) * col([u.range_factor for u in utts])
    final = col([u.final_st if u.final_st is not None else ACCENTS.get(u.speaker.accent, NEUTRAL_ACCENT)["final"]
                 for u in utts])
    ends = np.asarray([lead + lens.sum() for seg, lens, lead, tail in plans])[:, None]
    in_last = np.clip(1.0 - (ends - np.arange(nf)[None, :]) / (0.35 * SAMPLE_RATE / HOP), 0.0, 1.0)
    drift = _smooth(rng.normal(0.0, 1.0, (n, nf)), 25) * 2.0
    semis = (-0.5 * span * t_frac + 0.6 * span * stress + final * in_last ** 2
             + drift * span / 4.0)
    f0 = col([s.f0 for s in spk]) * col([u.f0_factor for u in utts]) * 2.0 ** (semis / 12.0)

    length = nf * HOP
    f32 = np.float32
    f0_s = _upsample(f0.astype(f32), length)
    jit = col([s.jitter for s in spk]) * col([u.jitter_factor for u in utts])
    shim = col([s.shimmer for s in spk]) * col([u.jitter_factor for u in utts])
    # Per-cycle perturbations: noise on a ~4 ms grid, held between points.
    grid = 64
    cells = length // grid + 1
    jitter_s = np.repeat(rng.standard_normal((n, cells), f32), grid, axis=1)[:, :length]
    shim_s = np.repeat(rng.standard_normal((n, cells), f32), grid, axis=1)[:, :length]
    # Vibrato-like tremor for high jitter (fearful voices shake).
    tremor = np.sin(2 * np.pi * 5.5 * np.arange(length, dtype=f32)[None, :] / SAMPLE_RATE
                    + rng.uniform(0, 6.3, (n, 1)).astype(f32))
    f0_s *= (1.0 + jit * jitter_s + 0.5 * np.maximum(jit - 0.01, 0.0) * tremor).astype(f32)
    # Phase in float64: a float32 running sum drifts over seconds of cycles.
    phase = np.cumsum(f0_s / SAMPLE_RATE, axis=1, dtype=np.float64)
    p = (phase - np.floor(phase)).astype(f32)
    oq = col([u.oq if u.oq is not None else s.oq for u, s in zip(utts, spk)]).astype(f32)
    tp, tn = 0.65 * oq, 0.35 * oq
    flow = np.where(p < tp, 0.5 - 0.5 * np.cos(np.pi * p / tp),
                    np.where(p < tp + tn, np.cos(0.5 * np.pi * np.clip((p - tp) / tn, 0, 1)), f32(0)))
    # Lip radiation differentiates the flow; the abrupt closure is the broadband excitation.
    source = np.diff(flow, axis=1, prepend=flow[:, :1]) * (SAMPLE_RATE / col([s.f0 for s in spk]) / 8.0).astype(f32)
    source *= (1.0 + shim * shim_s).astype(f32)
    asp_level = col([u.asp if u.asp is not None else s.asp for u, s in zip(utts, spk)]).astype(f32)
    noise = rng.standard_normal((n, length), f32)
    excitation = _upsample(voice.astype(f32), length) * (source + asp_level * 4.0 * flow * noise)
    excitation += _upsample(asp_seg.astype(f32), length) * 0.4 * noise

    freqs = np.fft.rfftfreq(_NFFT, 1.0 / SAMPLE_RATE).astype(f32)
    tract = _resonators(freqs, formants.astype(f32), bw.astype(f32))
    # Frication is shaped noise, so its frame spectra are drawn directly: complex Gaussian
    # with the power a Hann-windowed unit white noise frame has.
    fric_shape = 1.0 / np.sqrt(1.0 + ((freqs[None, None, :] - fc[:, :, None].astype(f32))
                                      / (0.5 * fb[:, :, None].astype(f32))) ** 2)
    fric_shape *= (freqs > 500.0) * fric[:, :, None].astype(f32) * np.sqrt(f32(3 * _WIN / 16))
    spec = rng.standard_normal((n, nf, len(freqs), 2), f32)
    fric_spec = (spec[..., 0] + 1j * spec[..., 1]) * fric_shape
    wave = _ola_filter(excitation, tract, fric_spec)
    return [wave[i, :total[i] * HOP] for i in range(n)]
