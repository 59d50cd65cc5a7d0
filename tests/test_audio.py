"""audio.py against soundfile fixtures, scipy's polyphase resampler and analytic sines."""
import numpy as np
import pytest
import scipy.signal
import soundfile as sf

from maskgan_jax import audio


def _sine(freq, rate, seconds, amp=0.5):
    t = np.arange(int(rate * seconds)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _peak_hz(x, rate):
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return np.fft.rfftfreq(len(x), 1 / rate)[np.argmax(spec)]


def _db(x):
    return 10 * np.log10(np.mean(np.square(x, dtype=np.float64)))


# (format, subtype, extension, max abs error of the round trip; None: lossy, checked spectrally)
LOSSLESS = [
    ("WAV", "PCM_U8", "wav", 1 / 128),
    ("WAV", "PCM_16", "wav", 1 / 32768),
    ("WAV", "PCM_24", "wav", 2 ** -23),
    ("WAV", "PCM_32", "wav", 2 ** -31),
    ("WAV", "FLOAT", "wav", 1e-7),
    ("WAV", "DOUBLE", "wav", 1e-7),
    ("FLAC", "PCM_16", "flac", 1 / 32768),
    ("FLAC", "PCM_24", "flac", 2 ** -23),
]
LOSSY = [("OGG", "VORBIS", "ogg"), ("MP3", "MPEG_LAYER_III", "mp3")]


@pytest.mark.parametrize("fmt,subtype,ext,tol", LOSSLESS)
def test_lossless_round_trip(tmp_path, fmt, subtype, ext, tol):
    x = _sine(440.0, 16000, 0.5)
    p = tmp_path / f"x.{ext}"
    sf.write(p, x, 16000, format=fmt, subtype=subtype)
    y = audio.load_audio(p)
    assert y.dtype == np.float32 and y.shape == x.shape
    np.testing.assert_allclose(y, x, atol=tol)


@pytest.mark.parametrize("fmt,subtype,ext", LOSSY)
def test_lossy_formats_keep_pitch_and_level(tmp_path, fmt, subtype, ext):
    x = _sine(1000.0, 44100, 1.0)
    p = tmp_path / f"x.{ext}"
    sf.write(p, x, 44100, format=fmt, subtype=subtype)
    y = audio.load_audio(p, sample_rate=16000)
    assert y.dtype == np.float32 and y.ndim == 1
    assert abs(len(y) - 16000) < 0.05 * 16000
    assert abs(_peak_hz(y, 16000) - 1000.0) < 5.0
    assert abs(_db(y) - _db(x)) < 0.5


def test_stereo_is_averaged_to_mono(tmp_path):
    a, b = _sine(300.0, 16000, 0.25), _sine(700.0, 16000, 0.25, amp=0.25)
    p = tmp_path / "st.wav"
    sf.write(p, np.stack([a, b], axis=1), 16000, subtype="FLOAT")
    np.testing.assert_allclose(audio.load_audio(p), (a + b) / 2, atol=1e-7)


def test_resampling_matches_scipy_polyphase_in_the_passband(tmp_path):
    rng = np.random.default_rng(0)
    t = np.arange(44100) / 44100
    x = sum(rng.uniform(0.05, 0.2) * np.sin(2 * np.pi * f * t + rng.uniform(0, 6))
            for f in (220.0, 1000.0, 2500.0, 5000.0)).astype(np.float32)
    p = tmp_path / "x.wav"
    sf.write(p, x, 44100, subtype="FLOAT")
    y = audio.load_audio(p, sample_rate=16000)
    ref = scipy.signal.resample_poly(x.astype(np.float64), 160, 441)
    assert len(y) == len(ref) == 16000
    mid = slice(800, -800)  # away from the filters' edge transients
    np.testing.assert_allclose(y[mid], ref[mid], atol=5e-3)
    # and against the analytic signal
    n = np.arange(16000) / 16000
    rng = np.random.default_rng(0)
    exact = sum(rng.uniform(0.05, 0.2) * np.sin(2 * np.pi * f * n + rng.uniform(0, 6))
                for f in (220.0, 1000.0, 2500.0, 5000.0))
    np.testing.assert_allclose(y[mid], exact[mid], atol=5e-3)


@pytest.mark.parametrize("src_rate,freq", [(44100, 9000.0), (48000, 12000.0), (22050, 8500.0)])
def test_tone_above_new_nyquist_is_suppressed(tmp_path, src_rate, freq):
    x = _sine(freq, src_rate, 1.0)
    p = tmp_path / "hi.wav"
    sf.write(p, x, src_rate, subtype="FLOAT")
    y = audio.load_audio(p, sample_rate=16000)
    mid = y[1000:-1000]
    attenuation = _db(x) - _db(mid)
    assert attenuation > 40.0, f"alias of {freq} Hz only {attenuation:.1f} dB down"
    # scipy's default polyphase filter lets the same tone through far more (why soxr)
    up, down = 16000 // np.gcd(16000, src_rate), src_rate // np.gcd(16000, src_rate)
    ref = scipy.signal.resample_poly(x.astype(np.float64), up, down)[1000:-1000]
    assert attenuation > _db(x) - _db(ref)


def test_upsampling_preserves_frequency(tmp_path):
    x = _sine(1234.0, 8000, 1.0)
    p = tmp_path / "lo.wav"
    sf.write(p, x, 8000, subtype="PCM_16")
    y = audio.load_audio(p, sample_rate=16000)
    assert len(y) == 16000
    n = np.arange(16000) / 16000
    np.testing.assert_allclose(y[500:-500], (0.5 * np.sin(2 * np.pi * 1234.0 * n))[500:-500],
                               atol=2e-3)


def test_center_crop_and_pad(tmp_path):
    x = np.arange(100, dtype=np.float32) / 100
    p = tmp_path / "r.wav"
    sf.write(p, x, 16000, subtype="FLOAT")
    np.testing.assert_array_equal(audio.load_audio(p, length=40), x[30:70])
    np.testing.assert_array_equal(audio.load_audio(p, length=41), x[29:70])
    padded = audio.load_audio(p, length=110)
    np.testing.assert_array_equal(padded[5:105], x)
    assert not padded[:5].any() and not padded[105:].any()


def test_random_crop_is_seeded(tmp_path):
    x = np.arange(1000, dtype=np.float32) / 1000
    p = tmp_path / "r.wav"
    sf.write(p, x, 16000, subtype="FLOAT")
    a = audio.load_audio(p, length=100, crop="random", seed=3)
    b = audio.load_audio(p, length=100, crop="random", seed=3)
    np.testing.assert_array_equal(a, b)
    offsets = {int(round(audio.load_audio(p, length=100, crop="random", seed=s)[0] * 1000))
               for s in range(20)}
    assert len(offsets) > 10 and all(0 <= o <= 900 for o in offsets)
    off = int(round(a[0] * 1000))
    np.testing.assert_array_equal(a, x[off:off + 100])
    with pytest.raises(ValueError, match="seed"):
        audio.load_audio(p, length=100, crop="random")
    with pytest.raises(ValueError, match="crop"):
        audio.load_audio(p, length=100, crop="middle")


def test_float_int16_conversion_and_clipping():
    pcm = np.arange(-32768, 32768, dtype=np.int16)
    x = audio.int16_to_float(pcm)
    assert x.dtype == np.float32 and x.min() == -1.0 and x.max() == 32767 / 32768
    back, n = audio.float_to_int16(x)
    np.testing.assert_array_equal(back, pcm)
    assert n == 0
    q, n = audio.float_to_int16(np.array([0.0, 0.5, 1.0, -1.0, 1.5, -2.0, 1.0001], np.float32))
    np.testing.assert_array_equal(q, [0, 16384, 32767, -32768, 32767, -32768, 32767])
    assert n == 3
    with pytest.raises(ValueError, match="NaN"):
        audio.float_to_int16(np.array([0.0, np.nan], np.float32))
    with pytest.raises(TypeError):
        audio.int16_to_float(np.zeros(3, np.int32))


def test_save_wav_writes_pcm16_and_round_trips(tmp_path):
    rng = np.random.default_rng(1)
    x = audio.int16_to_float(rng.integers(-32768, 32768, 5000).astype(np.int16))
    p = tmp_path / "out.wav"
    assert audio.save_wav(p, x) == 0
    info = sf.info(p)
    assert info.subtype == "PCM_16" and info.samplerate == 16000 and info.channels == 1
    np.testing.assert_array_equal(audio.load_audio(p), x)
    assert audio.save_wav(tmp_path / "loud.wav", np.array([0.0, 1.2, -1.3, 0.2])) == 2
    read, _ = sf.read(tmp_path / "loud.wav", dtype="int16")
    np.testing.assert_array_equal(read, [0, 32767, -32768, 6554])


def _bad_files(tmp_path):
    x = _sine(440.0, 16000, 0.5)
    cases = {}
    cases["missing file"] = tmp_path / "nope.wav"
    (tmp_path / "zero.wav").write_bytes(b"")
    cases["zero bytes"] = tmp_path / "zero.wav"
    (tmp_path / "text.wav").write_bytes(b"this is a text file, not audio\n" * 20)
    cases["not audio"] = tmp_path / "text.wav"
    for ext, fmt, sub in [("wav", "WAV", "PCM_16"), ("flac", "FLAC", "PCM_16"),
                          ("mp3", "MP3", "MPEG_LAYER_III"), ("ogg", "OGG", "VORBIS")]:
        full = tmp_path / f"full.{ext}"
        sf.write(full, np.tile(x, 4), 16000, format=fmt, subtype=sub)
        data = full.read_bytes()
        (tmp_path / f"trunc.{ext}").write_bytes(data[: len(data) // 2])
        cases[f"truncated|corrupt ({ext})"] = tmp_path / f"trunc.{ext}"
    nan = x.copy()
    nan[10] = np.nan
    sf.write(tmp_path / "nan.wav", nan, 16000, subtype="FLOAT")
    cases["non-finite"] = tmp_path / "nan.wav"
    inf = x.astype(np.float64)
    inf[20] = np.inf
    sf.write(tmp_path / "inf.wav", inf, 16000, subtype="DOUBLE")
    cases["non-finite (inf)"] = tmp_path / "inf.wav"
    sf.write(tmp_path / "empty.wav", np.zeros(0, np.float32), 16000)
    cases["zero frames"] = tmp_path / "empty.wav"
    return cases


def test_bad_inputs_raise_one_audio_error_naming_file_and_reason(tmp_path):
    for reason, path in _bad_files(tmp_path).items():
        with pytest.raises(audio.AudioError) as info:
            audio.load_audio(path)
        msg = str(info.value)
        assert msg.startswith(str(path) + ": "), msg
        want = reason.split(" (")[0]
        assert any(w in msg for w in want.split("|")), (reason, msg)
        assert info.value.path == str(path)


WINDOW_CASES = [(44100, "WAV", "PCM_16", "wav", 1), (48000, "WAV", "FLOAT", "wav", 2),
                (22050, "FLAC", "PCM_16", "flac", 1), (16000, "WAV", "PCM_16", "wav", 1),
                (44100, "OGG", "VORBIS", "ogg", 2), (44100, "MP3", "MPEG_LAYER_III", "mp3", 2),
                (11025, "WAV", "PCM_16", "wav", 1), (16000, "MP3", "MPEG_LAYER_III", "mp3", 1)]


@pytest.mark.parametrize("rate,fmt,subtype,ext,channels", WINDOW_CASES)
def test_cropping_a_long_file_equals_cropping_its_full_decode(tmp_path, rate, fmt, subtype, ext,
                                                               channels):
    x = (0.2 * np.random.default_rng(rate).standard_normal((rate * 5, channels))).astype(np.float32)
    p = tmp_path / f"long.{ext}"
    sf.write(p, x, rate, format=fmt, subtype=subtype)
    full = audio.load_audio(p)  # no length: every frame decoded and resampled
    for crop, seed in [("center", None), ("random", 0), ("random", 7), ("random", [3, 1])]:
        got = audio.load_audio(p, length=16384, crop=crop, seed=seed)
        want = audio.fit_length(full, 16384, crop, seed)
        assert got.shape == (16384,)
        np.testing.assert_allclose(got, want, atol=1e-6, err_msg=f"{crop} {seed}")


# Not Ogg: it declares no length (libvorbisfile reads it from the last page present), so an
# Ogg cut at 80 % is a shorter valid stream, whole-file decode or not.
@pytest.mark.parametrize("ext,fmt,subtype", [("wav", "WAV", "PCM_16"), ("flac", "FLAC", "PCM_16"),
                                             ("mp3", "MP3", "MPEG_LAYER_III")])
def test_truncated_long_file_is_caught_when_only_a_window_is_decoded(tmp_path, ext, fmt, subtype):
    x = _sine(440.0, 44100, 8.0)
    full = tmp_path / f"full.{ext}"
    sf.write(full, x, 44100, format=fmt, subtype=subtype)
    data = full.read_bytes()
    cut = tmp_path / f"cut.{ext}"
    cut.write_bytes(data[: int(len(data) * 0.8)])  # the centre crop itself is intact
    assert audio.load_audio(full, length=16000).shape == (16000,)
    with pytest.raises(audio.AudioError, match="truncated|corrupt"):
        audio.load_audio(cut, length=16000)
