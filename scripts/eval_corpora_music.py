"""Music for the FMA-layout evaluation corpus: a small note-event renderer, one arranger per genre.

The instruments are built differently from the project's embedded (wavetable) generator:
Karplus-Strong plucked strings, two-operator FM voices, an additive piano with inharmonic
partials, a pitch-swept kick, noise snares/claps/hats, tabla-like membranes with pitch
bends; effects are saturation, FFT-domain tone filters and a noise-tail reverb, and each
layer gets its own stereo position. Each genre (FMA small's eight) has its own arranger:
tempo range, scale, rhythm, instruments and production. An artist fixes key, tempo,
brightness, drive, reverb and mix, so an artist's tracks sound alike and artist is the
grouping for cross-validation; a track draws its own progression, melody and fills.
"""
from __future__ import annotations

import numpy as np

SR = 22050
GENRES = ("Electronic", "Experimental", "Folk", "Hip-Hop", "Instrumental", "International", "Pop", "Rock")

MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)
DORIAN = (0, 2, 3, 5, 7, 9, 10)
PENTA = (0, 2, 4, 7, 9)
MINOR_PENTA = (0, 3, 5, 7, 10)
HIJAZ = (0, 1, 4, 5, 7, 8, 10)


def hz(midi: float) -> float:
    return 440.0 * 2.0 ** ((midi - 69.0) / 12.0)


def note(scale, root: int, degree: int) -> int:
    """MIDI note of a scale degree (any integer; wraps into octaves)."""
    o, d = divmod(degree, len(scale))
    return root + 12 * o + scale[d]


# --------------------------------------------------------------------------- instruments

def _t(n: int) -> np.ndarray:
    return np.arange(n) / SR


def envelope(n: int, attack: float, decay: float) -> np.ndarray:
    t = _t(n)
    a = np.minimum(1.0, t / max(attack, 1e-4))
    return a * np.exp(-np.maximum(t - attack, 0.0) / max(decay, 1e-4))


def pluck(f: float, n: int, rng, bright: float = 0.6, sustain: float = 0.996) -> np.ndarray:
    """Karplus-Strong string, processed one delay-line period at a time."""
    period = max(2, int(round(SR / f)))
    buf = rng.uniform(-1, 1, period)
    for _ in range(int(3 * (1 - bright)) + 1):   # darker strings start from smoother noise
        buf = 0.5 * (buf + np.roll(buf, 1))
    out = np.empty(n)
    for s in range(0, n, period):
        k = min(period, n - s)
        out[s:s + k] = buf[:k]
        buf = sustain * 0.5 * (buf + np.roll(buf, 1))
    return out * envelope(n, 0.002, 10.0)


def fm(f: float, n: int, ratio: float = 1.0, index: float = 2.0, index_decay: float = 0.3,
       attack: float = 0.01, decay: float = 0.4, vibrato: float = 0.0) -> np.ndarray:
    """Two-operator FM voice with a decaying modulation index (bells, basses, leads, flutes)."""
    t = _t(n)
    vib = 1.0 + vibrato * np.sin(2 * np.pi * 5.5 * t)
    phase = 2 * np.pi * np.cumsum(f * vib) / SR
    mod = index * np.exp(-t / max(index_decay, 1e-3)) * np.sin(ratio * phase)
    return np.sin(phase + mod) * envelope(n, attack, decay)


def piano(f: float, n: int, bright: float = 0.6) -> np.ndarray:
    """Additive piano-like tone: stretched (inharmonic) partials, higher ones dying faster."""
    t = _t(n)
    out = np.zeros(n)
    for k in range(1, 9):
        fk = k * f * np.sqrt(1 + 4e-4 * k * k)
        if fk > SR / 2 - 500:
            break
        out += (k ** -(2.0 - bright)) * np.sin(2 * np.pi * fk * t) * np.exp(-t * (1.2 + 0.9 * k))
    return out * envelope(n, 0.003, 5.0)


def kick(n: int, tune: float = 1.0) -> np.ndarray:
    t = _t(n)
    f = tune * (45 + 120 * np.exp(-t / 0.035))
    return np.sin(2 * np.pi * np.cumsum(f) / SR) * np.exp(-t / 0.22)


def _band_noise(rng, n: int, lo: float, hi: float) -> np.ndarray:
    x = np.fft.rfft(rng.normal(size=n))
    f = np.fft.rfftfreq(n, 1.0 / SR)
    return np.fft.irfft(x * ((f >= lo) & (f <= hi)), n)


def snare(n: int, rng, tone: float = 190.0) -> np.ndarray:
    t = _t(n)
    body = np.sin(2 * np.pi * tone * t) * np.exp(-t / 0.05)
    return 0.5 * body + 2.0 * _band_noise(rng, n, 1500, 9000) * np.exp(-t / 0.11)


def clap(n: int, rng) -> np.ndarray:
    t = _t(n)
    bursts = sum(np.exp(-np.maximum(t - d, 0) / 0.012) * (t >= d) for d in (0.0, 0.011, 0.023))
    return 2.0 * _band_noise(rng, n, 900, 5000) * (bursts + np.exp(-t / 0.09))


def hat(n: int, rng, open_: bool = False) -> np.ndarray:
    t = _t(n)
    return 1.5 * _band_noise(rng, n, 6000, 10500) * np.exp(-t / (0.14 if open_ else 0.025))


def membrane(n: int, f: float, bend: float, decay: float) -> np.ndarray:
    """Tabla/darbuka-like stroke: a damped partial set whose pitch bends after the hit."""
    t = _t(n)
    ff = f * (1.0 + bend * (1 - np.exp(-t / 0.05)))
    ph = 2 * np.pi * np.cumsum(ff) / SR
    return (np.sin(ph) + 0.5 * np.sin(1.5 * ph) + 0.3 * np.sin(2.0 * ph)) * np.exp(-t / decay)


# --------------------------------------------------------------------------- effects and mixing

def tone(x: np.ndarray, lowpass: float, highpass: float = 20.0) -> np.ndarray:
    n = x.shape[0]
    f = np.fft.rfftfreq(n, 1.0 / SR)
    h = 1.0 / np.sqrt(1 + (f / lowpass) ** 4) / np.sqrt(1 + (highpass / np.maximum(f, 1.0)) ** 4)
    return np.fft.irfft(np.fft.rfft(x, axis=0) * h[:, None], n, axis=0)


def reverb(x: np.ndarray, rng, seconds: float, mix: float) -> np.ndarray:
    if mix <= 0:
        return x
    m = int(seconds * SR)
    n = x.shape[0]
    size = 1 << int(np.ceil(np.log2(n + m)))
    out = x.copy()
    for c in range(x.shape[1]):    # decorrelated tails per channel widen the image
        ir = rng.normal(size=m) * np.exp(-6.9 * np.arange(m) / m)
        ir /= np.sqrt(np.sum(ir ** 2))
        out[:, c] += mix * np.fft.irfft(np.fft.rfft(x[:, c], size) * np.fft.rfft(ir, size), size)[:n]
    return out


class Mix:
    """A stereo bus: events are added at a time, level and pan."""

    def __init__(self, seconds: float):
        self.n = int(seconds * SR)
        self.bus = np.zeros((self.n, 2))

    def add(self, sig: np.ndarray, t0: float, level: float = 1.0, pan: float = 0.0):
        s = int(t0 * SR)
        if s >= self.n or s < 0:
            return
        k = min(sig.size, self.n - s)
        g = np.array([np.cos((pan + 1) * np.pi / 4), np.sin((pan + 1) * np.pi / 4)]) * np.sqrt(2) * level
        self.bus[s:s + k] += sig[:k, None] * g[None, :]

    def seconds_left(self, t0: float) -> int:
        return max(0, self.n - int(t0 * SR))


def _steps(pattern: str):
    return [i for i, c in enumerate(pattern) if c == "x"]


def _drums(m: Mix, a: dict, rng, step: float, bars: int, pats: dict, swing: float = 0.0):
    """16-step drum patterns per bar; 'o' in the hat pattern is an open hat."""
    for b in range(bars):
        for name, pat in pats.items():
            for i, c in enumerate(pat):
                if c == ".":
                    continue
                t = (b * 16 + i) * step + (swing * step if i % 2 else 0.0) + rng.normal(0, 0.003)
                t = max(t, 0.0)
                lv = a["drums"] * rng.uniform(0.8, 1.0)
                if name == "kick":
                    m.add(kick(int(0.5 * SR), a["kick_tune"]), t, 0.9 * lv)
                elif name == "snare":
                    m.add(snare(int(0.35 * SR), rng, a["snare_tone"]), t, 0.45 * lv, 0.05)
                elif name == "clap":
                    m.add(clap(int(0.3 * SR), rng), t, 0.4 * lv, -0.05)
                elif name == "hat":
                    m.add(hat(int(0.3 * SR), rng, c == "o"), t, 0.22 * lv, 0.35)


# --------------------------------------------------------------------------- arrangers

def _electronic(m, a, rng, seconds):
    step = 60 / a["bpm"] / 4
    bars = int(np.ceil(seconds / (16 * step)))
    _drums(m, a, rng, step, bars, {"kick": "x...x...x...x...", "clap": "....x.......x...",
                                   "hat": "..x...x...x...x." if rng.random() < 0.5 else "xxoxxxoxxxoxxxox"})
    prog = [(0, 5, 3, 4), (0, 3, 5, 4), (0, 0, 5, 6)][rng.integers(3)]
    arp = rng.permutation([0, 2, 4, 7])
    for b in range(bars):
        r = prog[b % 4]
        for i in range(16):
            t = (b * 16 + i) * step
            if i % 2 == 0:
                m.add(fm(hz(note(MINOR, a["root"] - 24, r)), int(step * 1.8 * SR), 1.0, 3.0 * a["bright"], 0.08,
                         0.003, 0.12), t, 0.5)
            d = r + arp[i % 4]
            m.add(fm(hz(note(MINOR, a["root"] + 12, d)), int(step * SR), 2.0, 1.5, 0.05, 0.002, 0.06),
                  t, 0.18, 0.4 * np.sin(i))


def _hiphop(m, a, rng, seconds):
    step = 60 / a["bpm"] / 4
    bars = int(np.ceil(seconds / (16 * step)))
    _drums(m, a, rng, step, bars, {"kick": ["x.....x...x.....", "x..x......x..x.."][rng.integers(2)],
                                   "snare": "....x.......x...", "hat": "x.x.x.x.x.x.x.xx"}, swing=0.3)
    prog = [(0, 5), (0, 3), (5, 4)][rng.integers(3)]
    for b in range(bars):
        r = prog[b % 2]
        f = hz(note(MINOR_PENTA, a["root"] - 24, r))
        m.add(fm(f, int(12 * step * SR), 1.0, 0.3, 0.2, 0.005, 0.9), b * 16 * step, 0.7)   # 808-like
        for k in (0, 6):
            chord = [note(MINOR, a["root"], r + d) for d in (0, 2, 4, 6)]
            for c in chord:
                m.add(piano(hz(c), int(5 * step * SR), 0.3 * a["bright"]), (b * 16 + k) * step, 0.08, -0.3)


def _rock(m, a, rng, seconds):
    step = 60 / a["bpm"] / 4
    bars = int(np.ceil(seconds / (16 * step)))
    _drums(m, a, rng, step, bars, {"kick": "x.....x.x.......", "snare": "....x.......x...",
                                   "hat": "x.x.x.x.x.x.x.x." if rng.random() < 0.6 else "o.o.o.o.o.o.o.o."})
    scale = MINOR if rng.random() < 0.5 else MAJOR
    prog = [(0, 3, 4, 3), (0, 5, 3, 4), (0, 6, 5, 4)][rng.integers(3)]
    guitar = np.zeros(m.n)
    for b in range(bars):
        r = prog[b % 4]
        for i in range(0, 16, 2):
            t = (b * 16 + i) * step
            for iv in (0, 7, 12):   # power chord: root, fifth, octave
                sig = pluck(hz(note(scale, a["root"] - 12, r) + iv), int(2 * step * SR), rng, a["bright"])
                s = int(t * SR)
                k = min(sig.size, m.n - s)
                if k > 0:
                    guitar[s:s + k] += sig[:k]
            m.add(pluck(hz(note(scale, a["root"] - 24, r)), int(2 * step * SR), rng, 0.3), t, 0.5)
    g = np.tanh(a["drive"] * 4 * guitar / (np.max(np.abs(guitar)) + 1e-9))
    m.add(g, 0.0, 0.35, -0.4)
    m.add(np.roll(g, int(0.012 * SR)), 0.0, 0.35, 0.4)     # double-tracked


def _folk(m, a, rng, seconds):
    step = 60 / a["bpm"] / 4
    bars = int(np.ceil(seconds / (16 * step)))
    prog = [(0, 3, 4, 0), (0, 5, 3, 4), (0, 4, 5, 3)][rng.integers(3)]
    pattern = [0, 4, 2, 4, 7, 4, 2, 4] if rng.random() < 0.5 else [0, 2, 4, 7, 4, 2, 0, 2]
    for b in range(bars):
        r = prog[b % 4]
        for i in range(0, 16, 2):
            d = r + pattern[(i // 2) % 8]
            m.add(pluck(hz(note(MAJOR, a["root"] - 12, d)), int(1.2 * SR), rng, a["bright"], 0.997),
                  (b * 16 + i) * step + rng.normal(0, 0.006), 0.35, -0.3)
        if rng.random() < 0.7:   # flute-like FM melody, slow notes with vibrato
            for i in range(0, 16, 4):
                d = r + int(rng.choice([0, 2, 4, 5]))
                m.add(fm(hz(note(MAJOR, a["root"] + 12, d)), int(4 * step * SR), 1.0, 0.6, 1.0, 0.06, 1.0, 0.006),
                      (b * 16 + i) * step, 0.18, 0.3)
        if a["drums"] > 0.5:     # light shaker
            for i in range(0, 16, 2):
                m.add(hat(int(0.1 * SR), rng), (b * 16 + i) * step, 0.06, 0.5)


def _pop(m, a, rng, seconds):
    step = 60 / a["bpm"] / 4
    bars = int(np.ceil(seconds / (16 * step)))
    _drums(m, a, rng, step, bars, {"kick": "x.......x.x.....", "snare": "....x.......x...", "clap": "....x.......x...",
                                   "hat": "x.x.x.x.x.x.x.x."})
    prog = (0, 4, 5, 3)
    off = int(rng.integers(4))
    for b in range(bars):
        r = prog[(b + off) % 4]
        for k in (0, 8):
            for d in (0, 2, 4):
                m.add(piano(hz(note(MAJOR, a["root"], r + d)), int(8 * step * SR), a["bright"]),
                      (b * 16 + k) * step, 0.12, -0.2)
        m.add(pluck(hz(note(MAJOR, a["root"] - 24, r)), int(8 * step * SR), rng, 0.4), b * 16 * step, 0.5)
        for i in range(0, 16, 2):
            if rng.random() < 0.7:
                d = int(rng.choice([0, 1, 2, 4]))
                m.add(fm(hz(note(PENTA, a["root"] + 12, r + d)), int(2 * step * SR), 3.5, 1.2, 0.4, 0.004, 0.25),
                      (b * 16 + i) * step, 0.14, 0.25)


def _instrumental(m, a, rng, seconds):
    step = 60 / a["bpm"] / 4
    bars = int(np.ceil(seconds / (16 * step)))
    scale = MAJOR if rng.random() < 0.5 else DORIAN
    prog = [(0, 5, 3, 4), (0, 3, 0, 4), (5, 3, 0, 4)][rng.integers(3)]
    for b in range(bars):
        r = prog[b % 4]
        for d in (0, 2, 4):   # slow FM string pad
            m.add(fm(hz(note(scale, a["root"] - 12, r + d)), int(16 * step * SR), 1.0, 0.8, 2.0, 0.5, 3.0, 0.004),
                  b * 16 * step, 0.12, (d - 2) * 0.3)
        for i in range(0, 16, 2):   # piano arpeggio
            d = r + (0, 2, 4, 7, 9, 7, 4, 2)[(i // 2) % 8]
            m.add(piano(hz(note(scale, a["root"], d)), int(1.5 * SR), a["bright"]), (b * 16 + i) * step, 0.2, 0.1)


def _international(m, a, rng, seconds):
    step = 60 / a["bpm"] / 4
    bars = int(np.ceil(seconds / (16 * step)))
    scale = HIJAZ if rng.random() < 0.5 else PENTA
    # Hand drums: low (dum) and high (tek) strokes in a 3+3+2 feel.
    dum = _steps("x.....x...x.....")
    tek = _steps("...x..x.x..x.x.x") if rng.random() < 0.5 else _steps("..x..x...x.x..x.")
    for b in range(bars):
        for i in dum:
            m.add(membrane(int(0.5 * SR), 95 * a["kick_tune"], -0.15, 0.25), (b * 16 + i) * step,
                  0.6 * a["drums"], -0.1)
        for i in tek:
            m.add(membrane(int(0.25 * SR), 420 * a["kick_tune"], 0.06, 0.08), (b * 16 + i) * step,
                  0.3 * a["drums"], 0.2)
    f0 = hz(a["root"] - 24)
    m.add(fm(f0, m.n, 2.0, 0.8, 100.0, 0.3, 100.0, 0.002), 0.0, 0.15)       # drone
    m.add(fm(1.5 * f0, m.n, 1.0, 0.5, 100.0, 0.3, 100.0, 0.002), 0.0, 0.08)
    d = 0
    t = 0.0
    while t < seconds:
        d = int(np.clip(d + rng.choice([-2, -1, -1, 1, 1, 2]), -3, 9))
        dur = step * int(rng.choice([1, 2, 2, 3, 4]))
        m.add(pluck(hz(note(scale, a["root"] + 12, d)), int(0.8 * SR), rng, a["bright"], 0.995), t, 0.3, 0.35)
        t += dur


def _experimental(m, a, rng, seconds):
    # No steady pulse: Poisson onsets of FM clusters, noise sweeps and glitches, microtonal pitches.
    t = 0.0
    while t < seconds:
        kind = rng.integers(4)
        if kind == 0:
            f = 60 * 2 ** rng.uniform(0, 5)
            m.add(fm(f, int(rng.uniform(0.2, 2.0) * SR), rng.uniform(0.5, 7.1), rng.uniform(2, 12),
                     rng.uniform(0.05, 1.0), rng.uniform(0.001, 0.5), rng.uniform(0.1, 1.5)),
                  t, 0.3, rng.uniform(-1, 1))
        elif kind == 1:
            n = int(rng.uniform(0.1, 1.5) * SR)
            lo = rng.uniform(100, 3000)
            m.add(_band_noise(rng, n, lo, lo * rng.uniform(1.2, 4)) * envelope(n, rng.uniform(0.001, 0.5), 0.3) * 3,
                  t, 0.3, rng.uniform(-1, 1))
        elif kind == 2:
            g = np.sign(np.sin(2 * np.pi * rng.uniform(20, 400) * _t(int(0.08 * SR))))
            for _ in range(int(rng.integers(2, 8))):
                m.add(g, t + rng.uniform(0, 0.5), 0.1, rng.uniform(-1, 1))
        else:
            m.add(membrane(int(0.6 * SR), rng.uniform(50, 600), rng.uniform(-0.5, 0.5), rng.uniform(0.05, 0.4)),
                  t, 0.4, rng.uniform(-1, 1))
        t += rng.exponential(0.35 / a["density"])


ARRANGERS = {"Electronic": _electronic, "Experimental": _experimental, "Folk": _folk, "Hip-Hop": _hiphop,
             "Instrumental": _instrumental, "International": _international, "Pop": _pop, "Rock": _rock}
TEMPO = {"Electronic": (118, 134), "Experimental": (60, 160), "Folk": (80, 112), "Hip-Hop": (80, 96),
         "Instrumental": (60, 88), "International": (90, 126), "Pop": (96, 124), "Rock": (108, 150)}
# Production per genre: (lowpass Hz range, reverb seconds range, reverb mix range, drive range).
PRODUCTION = {"Electronic": ((6000, 10000), (0.3, 1.0), (0.05, 0.25), (0.0, 0.3)),
              "Experimental": ((2500, 10000), (0.5, 3.0), (0.1, 0.6), (0.0, 0.8)),
              "Folk": ((4000, 8000), (0.3, 1.2), (0.05, 0.2), (0.0, 0.0)),
              "Hip-Hop": ((3000, 7000), (0.2, 0.6), (0.02, 0.12), (0.0, 0.4)),
              "Instrumental": ((4000, 9000), (1.0, 2.5), (0.15, 0.4), (0.0, 0.0)),
              "International": ((4000, 9000), (0.3, 1.2), (0.05, 0.25), (0.0, 0.1)),
              "Pop": ((6000, 10000), (0.4, 1.2), (0.08, 0.2), (0.0, 0.2)),
              "Rock": ((4000, 8000), (0.3, 0.9), (0.05, 0.2), (0.6, 1.0))}


def draw_artist(genre: str, rng: np.random.Generator) -> dict:
    """An artist of a genre: key, tempo, brightness, drive, production and drum style."""
    lp, rv, mix, dr = PRODUCTION[genre]
    return {"genre": genre, "root": int(rng.integers(55, 67)), "bpm": float(rng.uniform(*TEMPO[genre])),
            "bright": float(rng.uniform(0.3, 0.9)), "drive": float(rng.uniform(*dr)),
            "lowpass": float(rng.uniform(*lp)), "reverb_s": float(rng.uniform(*rv)),
            "reverb_mix": float(rng.uniform(*mix)), "drums": float(rng.uniform(0.6, 1.0)),
            "kick_tune": float(rng.uniform(0.85, 1.2)), "snare_tone": float(rng.uniform(160, 240)),
            "density": float(rng.uniform(0.7, 1.5)), "level_db": float(rng.uniform(-6, -1))}


def render_track(artist: dict, rng: np.random.Generator, seconds: float = 6.0) -> np.ndarray:
    """float32 stereo [n, 2] at SR: the arrangement, then the artist's production chain."""
    m = Mix(seconds)
    ARRANGERS[artist["genre"]](m, artist, rng, seconds)
    x = m.bus
    if artist["drive"] > 0:
        x = np.tanh((1 + 2 * artist["drive"]) * x / (np.max(np.abs(x)) + 1e-9))
    x = tone(x, artist["lowpass"], 30.0)
    x = reverb(x, rng, artist["reverb_s"], artist["reverb_mix"])
    fade = np.minimum(1.0, np.minimum(np.arange(m.n), np.arange(m.n)[::-1]) / (0.02 * SR))
    x = x * fade[:, None]
    x *= 10 ** (artist["level_db"] / 20) / (np.max(np.abs(x)) + 1e-9)
    return x.astype(np.float32)
