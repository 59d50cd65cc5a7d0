"""Speech for the evaluation corpora: espeak-ng voices as speakers, recorded through a per-speaker channel.

A speaker is an espeak-ng voice (its language sets the accent), a voice variant (the
variant's sex sets the gender; f1..f5, m1..m8 and the named ones), a base pitch and speed
(age-like ranges), a pitch range, and a recording channel: level, a low-pass and a
high-pass corner, a short room reverberation and a room-noise floor. A clip adds a little
per-utterance jitter to pitch and rate; prosody (emotion) is spoken through espeak-ng's
SSML ``<prosody pitch rate range volume>``. Nothing here is drawn from the project's
embedded generator.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import tempfile

import numpy as np
import soundfile as sf

ESPEAK_RATE = 22050

# Common Voice accent labels (2023+ releases) -> espeak-ng voices that carry that accent.
ACCENTS = {
    "United States English": ("en-us", "en-us-nyc"),
    "England English": ("en-gb", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd"),
    "Scottish English": ("en-gb-scotland",),
    "West Indies and Bermuda (Bahamas, Bermuda, Jamaica, Trinidad)": ("en-029",),
}
# espeak-ng variants whose voice file declares the sex (the unlabelled and robotic ones left out).
VARIANTS = {
    "female": ("f1", "f2", "f3", "f4", "f5", "Alicia", "Andrea", "Annie", "anika", "aunty",
               "belinda", "linda", "steph", "steph2", "steph3"),
    "male": ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "Andy", "Denis", "Diogo", "Henrique",
             "Hugo", "Lee", "Marco", "antonio", "michel", "miguel", "sandro", "travis", "victor"),
}
# Age brackets as Common Voice names them -> (espeak pitch offset, words per minute, tremor depth).
# Older voices are lower, slower and shakier; the ranges overlap on purpose.
AGE_STYLE = {
    "teens": (12.0, 188.0, 0.0),
    "twenties": (6.0, 182.0, 0.0),
    "thirties": (0.0, 175.0, 0.0),
    "fourties": (-3.0, 168.0, 0.02),
    "fifties": (-7.0, 160.0, 0.05),
    "sixties": (-11.0, 150.0, 0.10),
}
# RAVDESS emotions -> prosody relative to the actor (pitch %, range %, rate %, volume dB,
# voice quality: 0 plain, 1 pressed (mild saturation), 2 tremulous).
EMOTION_PROSODY = {
    "neutral": (0, 0, 100, 0.0, 0),
    "calm": (-6, -40, 88, -3.0, 0),
    "happy": (14, 60, 108, 2.0, 0),
    "sad": (-12, -60, 78, -5.0, 0),
    "angry": (6, 40, 112, 6.0, 1),
    "fearful": (20, 20, 120, -1.0, 2),
    "disgust": (-9, 10, 84, 1.0, 1),
    "surprised": (26, 90, 98, 3.0, 0),
}


class EspeakMissing(RuntimeError):
    """espeak-ng is not installed."""


def find_espeak() -> str:
    """Path of the espeak-ng binary, or EspeakMissing with how to install it."""
    path = shutil.which("espeak-ng")
    if path is None:
        raise EspeakMissing(
            "espeak-ng is not installed; the speech corpora are spoken by it. Install it with\n"
            "  apt-get install -y espeak-ng      (Debian/Ubuntu, as root or with sudo)\n"
            "  brew install espeak-ng            (macOS)\n"
            "or build it from https://github.com/espeak-ng/espeak-ng and put it on PATH.")
    return path


@dataclasses.dataclass(frozen=True)
class Speaker:
    """One synthetic speaker: voice, variant, pitch/speed/range and a recording channel."""
    sid: str
    voice: str
    variant: str
    gender: str
    accent: str
    pitch: float            # espeak -p, 0..99
    speed: float            # espeak -s, words per minute
    range_pct: float        # SSML prosody range, % relative to the voice's default
    tremor: float           # amplitude tremor depth (age-like)
    gain_db: float
    lowpass_hz: float
    highpass_hz: float
    reverb_s: float         # decay time of the room's impulse response (T60-like)
    reverb_mix: float
    snr_db: float           # speech over room-noise floor
    noise_tilt: float       # room-noise spectral slope exponent (0 white, 1 pink)


def draw_speaker(rng: np.random.Generator, sid: str, gender: str | None = None, accent: str | None = None,
                 age: str | None = None) -> Speaker:
    """A random speaker; gender, accent and age (a Common Voice bracket) may be fixed."""
    gender = gender or ("female" if rng.random() < 0.5 else "male")
    accent = accent or str(rng.choice(list(ACCENTS)))
    voice = str(rng.choice(ACCENTS[accent]))
    variant = str(rng.choice(VARIANTS[gender]))
    d_pitch, wpm, tremor = AGE_STYLE[age] if age else (rng.uniform(-8, 8), rng.uniform(155, 190), 0.0)
    return Speaker(
        sid=sid, voice=voice, variant=variant, gender=gender, accent=accent,
        pitch=float(np.clip(50 + d_pitch + rng.normal(0, 7), 5, 95)),
        speed=float(np.clip(wpm + rng.normal(0, 12), 120, 230)),
        range_pct=float(rng.uniform(-30, 40)),
        tremor=float(max(0.0, tremor + rng.normal(0, 0.01))),
        gain_db=float(rng.uniform(-14, -4)),
        lowpass_hz=float(rng.uniform(3500, 7800)),
        highpass_hz=float(rng.uniform(60, 250)),
        reverb_s=float(rng.uniform(0.15, 0.6)),
        reverb_mix=float(rng.uniform(0.05, 0.3)),
        snr_db=float(rng.uniform(22, 45)),
        noise_tilt=float(rng.uniform(0.0, 1.2)))


def _ssml(text: str, pitch_pct: float, range_pct: float, rate_pct: float) -> str:
    body = text.replace("&", "and").replace("<", " ").replace(">", " ")
    return (f'<speak><prosody pitch="{pitch_pct:+.0f}%" range="{range_pct:+.0f}%" '
            f'rate="{rate_pct:.0f}%">{body}</prosody></speak>')


def speak(espeak: str, spk: Speaker, text: str, rng: np.random.Generator, pitch_pct: float = 0.0,
          range_pct: float = 0.0, rate_pct: float = 100.0) -> np.ndarray:
    """float32 speech at ESPEAK_RATE (dry, before the channel), with per-utterance jitter."""
    pitch = pitch_pct + rng.normal(0, 3)
    rate = rate_pct * rng.uniform(0.95, 1.05)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "u.wav")
        cmd = [espeak, "-m", "-z", "-v", f"{spk.voice}+{spk.variant}", "-p", str(int(round(spk.pitch))),
               "-s", str(int(round(spk.speed))), "-w", out,
               _ssml(text, pitch, spk.range_pct + range_pct, rate)]
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)
        wave, sr = sf.read(out, dtype="float32")
    if sr != ESPEAK_RATE:
        raise RuntimeError(f"espeak-ng wrote {sr} Hz, expected {ESPEAK_RATE}")
    if wave.ndim > 1:
        wave = wave.mean(axis=1)
    if wave.size == 0 or not np.any(wave):
        raise RuntimeError(f"espeak-ng produced no audio for {text!r} with voice {spk.voice}+{spk.variant}")
    return wave


def _fft_filter(x: np.ndarray, sr: int, response) -> np.ndarray:
    n = 1 << int(np.ceil(np.log2(max(x.size, 2))))
    f = np.fft.rfftfreq(n, 1.0 / sr)
    return np.fft.irfft(np.fft.rfft(x, n) * response(f), n)[:x.size]


def colored_noise(rng: np.random.Generator, n: int, tilt: float) -> np.ndarray:
    """Gaussian noise with a 1/f^tilt power spectrum, unit RMS."""
    f = np.fft.rfftfreq(n)
    shape = np.where(f > 0, np.maximum(f, 1.0 / n) ** (-tilt / 2.0), 0.0)
    x = np.fft.irfft((rng.normal(size=f.size) + 1j * rng.normal(size=f.size)) * shape, n)
    return x / (np.sqrt(np.mean(x ** 2)) + 1e-12)


def voice_quality(wave: np.ndarray, sr: int, kind: int, rng: np.random.Generator) -> np.ndarray:
    """Emotion-like voice quality: 1 pressed (soft saturation), 2 tremulous (6-9 Hz amplitude shake)."""
    if kind == 1:
        drive = rng.uniform(2.0, 4.0)
        peak = np.max(np.abs(wave)) + 1e-9
        return (np.tanh(drive * wave / peak) / np.tanh(drive) * peak).astype(np.float32)
    if kind == 2:
        t = np.arange(wave.size) / sr
        return (wave * (1.0 + 0.35 * np.sin(2 * np.pi * rng.uniform(6, 9) * t))).astype(np.float32)
    return wave


def record(wave: np.ndarray, sr: int, spk: Speaker, rng: np.random.Generator, length: int,
           lead_s: tuple[float, float] = (0.05, 0.4), level_db: float = 0.0) -> np.ndarray:
    """The speaker's channel: tremor, band limits, room reverb, room noise, level; cut/padded to length."""
    x = wave.astype(np.float64)
    if spk.tremor > 0:
        t = np.arange(x.size) / sr
        x = x * (1.0 + spk.tremor * np.sin(2 * np.pi * rng.uniform(4, 7) * t + rng.uniform(0, 6.3)))
    lp, hp = spk.lowpass_hz, spk.highpass_hz
    x = _fft_filter(x, sr, lambda f: 1.0 / np.sqrt(1 + (f / lp) ** 4) / np.sqrt(1 + (hp / np.maximum(f, 1.0)) ** 4))
    # Room: exponentially decaying noise tail (60 dB down after reverb_s), mixed with the dry path.
    n_ir = int(spk.reverb_s * sr)
    ir = rng.normal(size=n_ir) * np.exp(-6.9 * np.arange(n_ir) / n_ir)
    ir /= np.sqrt(np.sum(ir ** 2)) + 1e-12
    x = np.concatenate([x, np.zeros(n_ir)])
    x = x + spk.reverb_mix * _fft_conv(x, ir)
    start = int(rng.uniform(*lead_s) * sr)
    out = np.zeros(length)
    seg = x[:max(0, length - start)]
    out[start:start + seg.size] = seg
    active = seg[np.abs(seg) > 0.05 * (np.max(np.abs(seg)) + 1e-12)]
    speech_rms = np.sqrt(np.mean(active ** 2)) if active.size else 1e-3
    out += colored_noise(rng, length, spk.noise_tilt) * speech_rms * 10 ** (-spk.snr_db / 20)
    # The peak lands at the speaker's recording level (plus the clip's), below full scale.
    out *= 10 ** (min(spk.gain_db + level_db, -1.0) / 20) / (np.max(np.abs(out)) + 1e-12)
    return np.clip(out, -1.0, 1.0).astype(np.float32)


def _fft_conv(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    n = 1 << int(np.ceil(np.log2(a.size + b.size)))
    return np.fft.irfft(np.fft.rfft(a, n) * np.fft.rfft(b, n), n)[:a.size]
