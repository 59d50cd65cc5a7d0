"""The mel filterbank and (log-)mel spectrogram against librosa (the reference)."""
import functools

import jax
import jax.numpy as jnp
import librosa
import numpy as np
import pytest

from maskgan_jax import features, parallel

SR = 16000


def _white(n, seed=0):
    return 0.3 * np.random.default_rng(seed).standard_normal(n)


def _chirp(n, sr=SR):
    t = np.arange(n) / sr
    return 0.8 * np.sin(2 * np.pi * (50.0 * t + 0.5 * (sr / 2.5 - 50.0) * t ** 2 / max(t[-1], 1e-9)))


def _speech_like(n, sr=SR, seed=1):
    """Voiced bursts (harmonics of a gliding pitch, syllable envelopes) with silent gaps."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sr
    f0 = 120.0 + 30.0 * np.sin(2 * np.pi * 3.0 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    voiced = sum(np.sin(h * phase) / h for h in range(1, 12))
    envelope = np.clip(np.sin(2 * np.pi * 4.0 * t), 0.0, None) ** 2
    return 0.2 * envelope * voiced + 1e-3 * rng.standard_normal(n)


SIGNALS = {"white": _white, "chirp": _chirp, "speech": _speech_like,
           "silence": lambda n: np.zeros(n)}

# (sample_rate, n_fft, hop, n_mels, fmin, fmax, length): lengths are not multiples of hop;
# the last rows exercise odd n_fft and the gather path (n_fft and hop coprime).
CONFIGS = [
    (16000, 1024, 256, 128, 0.0, None, 8000 + 77),
    (16000, 512, 128, 40, 80.0, 7600.0, 5000 + 3),
    (22050, 2048, 512, 96, 30.0, None, 11025),
    (16000, 400, 160, 80, 20.0, 4000.0, 4321),
    (8000, 255, 64, 32, 0.0, 3000.0, 2049),
    (16000, 256, 97, 24, 0.0, None, 1500),
]


def _batch(n):
    return np.stack([f(n) for f in SIGNALS.values()]).astype(np.float32)


def _reference(x, sr, n_fft, hop, n_mels, fmin, fmax):
    return librosa.feature.melspectrogram(y=np.asarray(x, np.float64), sr=sr, n_fft=n_fft,
                                          hop_length=hop, n_mels=n_mels, fmin=fmin, fmax=fmax)


def _assert_close_to_max(got, ref, tol=1e-4):
    """Every clip within tol of its own spectrogram maximum; silent clips exactly zero."""
    assert got.shape == ref.shape, (got.shape, ref.shape)
    for g, r in zip(got.reshape(-1, *ref.shape[-2:]), ref.reshape(-1, *ref.shape[-2:])):
        peak = r.max()
        if peak == 0.0:
            np.testing.assert_array_equal(g, 0.0)
        else:
            err = np.abs(g - r).max() / peak
            assert err <= tol, f"max error {err:.2e} of the clip's maximum (limit {tol})"


@pytest.mark.parametrize("sr,n_fft,n_mels,fmin,fmax", [
    (16000, 1024, 128, 0.0, None), (22050, 2048, 96, 30.0, 8000.0), (8000, 255, 32, 0.0, 3000.0),
    (44100, 512, 64, 300.0, 16000.0)])
def test_filterbank_matches_librosa(sr, n_fft, n_mels, fmin, fmax):
    ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    got = features.mel_filterbank(sr, n_fft, n_mels, fmin, fmax)
    assert got.shape == ref.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6 * ref.max())


@pytest.mark.parametrize("impl", ["xla", "host"])
@pytest.mark.parametrize("cfg", CONFIGS, ids=[f"nfft{c[1]}_hop{c[2]}_mels{c[3]}" for c in CONFIGS])
def test_mel_matches_librosa_under_jit(cfg, impl):
    sr, n_fft, hop, n_mels, fmin, fmax, n = cfg
    if impl == "host" and n_fft & (n_fft - 1):
        with pytest.raises(ValueError, match="power-of-two"):
            features.mel_spectrogram(_batch(n), sr, n_fft, hop, n_mels, fmin, fmax, impl=impl)
        return
    x = _batch(n)
    fn = jax.jit(functools.partial(features.mel_spectrogram, sample_rate=sr, n_fft=n_fft,
                                   hop_length=hop, n_mels=n_mels, fmin=fmin, fmax=fmax, impl=impl))
    got = np.asarray(fn(x))
    assert got.dtype == np.float32
    _assert_close_to_max(got, _reference(x, sr, n_fft, hop, n_mels, fmin, fmax))


@pytest.mark.parametrize("cfg", [CONFIGS[0], CONFIGS[3], CONFIGS[-1]], ids=["blocks", "gcd", "gather"])
@pytest.mark.parametrize("chunk_frames", [1, 7])
def test_chunked_loop_matches_librosa(cfg, chunk_frames):
    # Chunk sizes that do not divide the frame count: the last chunk overlaps the one before.
    sr, n_fft, hop, n_mels, fmin, fmax, n = cfg
    x = _batch(n)
    fn = jax.jit(functools.partial(features.mel_spectrogram, sample_rate=sr, n_fft=n_fft,
                                   hop_length=hop, n_mels=n_mels, fmin=fmin, fmax=fmax,
                                   chunk_frames=chunk_frames))
    _assert_close_to_max(np.asarray(fn(x)), _reference(x, sr, n_fft, hop, n_mels, fmin, fmax))


def test_default_clip_and_log_mel_match_librosa():
    x = _batch(32768)
    ref = _reference(x, SR, 1024, 256, 128, 0.0, None)
    got = np.asarray(jax.jit(features.mel_spectrogram)(x))
    assert got.shape == (4, 128, 129)
    _assert_close_to_max(got, ref)
    log_got = np.asarray(jax.jit(features.log_mel_spectrogram)(x))
    log_ref = librosa.power_to_db(ref, ref=1.0, amin=1e-10, top_db=None)
    # Compare in dB where the power is within 20 dB of the clip's peak (elsewhere the
    # 1e-4-of-max bound on the power says little about the dB value).
    loud = ref >= 1e-2 * ref.max(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(log_got[loud], log_ref[loud], atol=0.01)
    np.testing.assert_array_equal(log_got[3], -100.0)  # silence hits the 1e-10 floor


def test_int16_input_is_scaled_on_device():
    x = np.round(_batch(6000) * 20000).astype(np.int16)
    got = np.asarray(jax.jit(features.mel_spectrogram)(x))
    _assert_close_to_max(got, _reference(x.astype(np.float64) / 32768.0, SR, 1024, 256, 128, 0.0, None))


@pytest.mark.parametrize("impl", ["xla", "host"])
def test_single_clip_and_vmap(impl):
    x = _batch(7000)
    ref = _reference(x, SR, 512, 128, 64, 0.0, None)
    mel = functools.partial(features.mel_spectrogram, n_fft=512, hop_length=128, n_mels=64, impl=impl)
    _assert_close_to_max(np.asarray(jax.vmap(mel)(x)), ref)
    _assert_close_to_max(np.asarray(mel(x[2]))[None], ref[2:3])


@pytest.mark.parametrize("num_devices", [1, 2, 4])
def test_sharded_over_devices(num_devices):
    mesh = parallel.make_mesh(num_devices)
    x = np.concatenate([_batch(5000), _batch(5000)[::-1]])
    xs = parallel.shard_batch(x, mesh)
    fn = jax.jit(functools.partial(features.mel_spectrogram, chunk_frames=6),
                 out_shardings=parallel.data_sharding(mesh))
    out = fn(xs)
    assert len(out.sharding.device_set) == num_devices
    # Each device transforms its own clips: no data moves between devices.
    hlo = fn.lower(xs).compile().as_text()
    for op in ("all-gather", "all-to-all", "all-reduce", "collective-permute"):
        assert op not in hlo, f"sharded mel spectrogram moves data between devices ({op})"
    _assert_close_to_max(np.asarray(out), _reference(x, SR, 1024, 256, 128, 0.0, None))


def test_host_kernel_on_a_sharded_batch_and_the_default_choice():
    # impl="host" on a batch sharded over 2 devices: gathered to one device, same values.
    mesh = parallel.make_mesh(2)
    x = np.concatenate([_batch(5000), _batch(5000)[::-1]])
    out = jax.jit(functools.partial(features.mel_spectrogram, impl="host"))(parallel.shard_batch(x, mesh))
    _assert_close_to_max(np.asarray(out), _reference(x, SR, 1024, 256, 128, 0.0, None))
    # The tests force several CPU devices, so the default here is the shardable XLA transform.
    assert jax.local_device_count() > 1
    hlo = jax.jit(features.mel_spectrogram).lower(x).as_text()
    assert "callback" not in hlo
    assert "callback" in jax.jit(functools.partial(features.mel_spectrogram, impl="host")).lower(x).as_text()


@pytest.mark.parametrize("impl", ["xla", "host"])
def test_derivatives_match_librosa_differences(impl):
    # The mel spectrogram is quadratic in the wave, so a central difference of librosa's
    # (float64) output along v is the exact directional derivative; checked per clip
    # through vmap, forward (jvp) and reverse (grad) mode.
    rng = np.random.default_rng(5)
    x = _batch(3000)[:3].astype(np.float64)
    v = 0.1 * rng.standard_normal(x.shape)
    w = rng.random((3, 128, 12))
    ref = lambda a: np.sum(w * _reference(x + a * v, SR, 1024, 256, 128, 0.0, None), axis=(1, 2))
    want = (ref(1.0) - ref(-1.0)) / 2.0
    f = lambda y, wy: jnp.sum(wy * features.mel_spectrogram(y, impl=impl))
    x32, v32, w32 = (jnp.asarray(a, jnp.float32) for a in (x, v, w))
    forward = jax.jit(jax.vmap(lambda y, t, wy: jax.jvp(lambda z: f(z, wy), (y,), (t,))[1]))(x32, v32, w32)
    reverse = jnp.sum(jax.jit(jax.vmap(jax.grad(f)))(x32, w32) * v32, axis=-1)
    np.testing.assert_allclose(np.asarray(forward), want, rtol=1e-4)
    np.testing.assert_allclose(np.asarray(reverse), want, rtol=1e-4)


def test_bad_inputs_are_clear_errors():
    with pytest.raises(TypeError, match="int16"):
        features.mel_spectrogram(jnp.zeros((1, 4000), jnp.int32))
    with pytest.raises(ValueError, match="fmin"):
        features.mel_spectrogram(np.zeros((1, 4000), np.float32), fmin=9000.0)
    with pytest.raises(ValueError, match="hop_length"):
        features.mel_spectrogram(np.zeros((1, 4000), np.float32), hop_length=0)
    with pytest.raises(ValueError, match="impl"):
        features.mel_spectrogram(np.zeros((1, 4000), np.float32), impl="numpy")
