"""The host mel kernel (kernels.stft_mel) against librosa, directly (features' tests cover it under jit)."""
import librosa
import numpy as np
import pytest

from kernels import stft_mel
from maskgan_jax import features


def _plan(n_fft, n_mels):
    return stft_mel.plan(features.hann_window(n_fft), features.mel_filterbank(16000, n_fft, n_mels))


def _reference(x, sr, n_fft, hop, n_mels):
    return librosa.feature.melspectrogram(y=x.astype(np.float64), sr=sr, n_fft=n_fft, hop_length=hop,
                                          n_mels=n_mels)


@pytest.mark.parametrize("n_fft,hop,n_mels,length", [(1024, 256, 128, 32768), (512, 97, 40, 5003),
                                                       (4, 1, 2, 37), (2048, 512, 64, 700)])
def test_matches_librosa(n_fft, hop, n_mels, length):
    # Clips shorter than n_fft, hops that divide nothing, batch sizes that are not a
    # multiple of the lane count (the last group is partly empty).
    rng = np.random.default_rng(n_fft)
    x = (0.3 * rng.standard_normal((3, length))).astype(np.float32)
    x[1] *= np.linspace(0, 1, length, dtype=np.float32) ** 3
    x[2] = 0.0
    got = stft_mel.mel_power(x, hop, _plan(n_fft, n_mels))
    ref = _reference(x, 16000, n_fft, hop, n_mels)
    assert got.shape == ref.shape and got.dtype == np.float32
    for g, r in zip(got[:2], ref[:2]):
        assert np.abs(g - r).max() <= 1e-5 * r.max()
    np.testing.assert_array_equal(got[2], 0.0)


def test_threads_and_padding_do_not_change_the_result():
    x = np.random.default_rng(1).standard_normal((5, 9000)).astype(np.float32)
    tables = _plan(1024, 128)
    one = stft_mel.mel_power(x, 256, tables, threads=1)
    np.testing.assert_array_equal(stft_mel.mel_power(x, 256, tables, threads=3), one)
    xp = np.pad(x, ((0, 0), (512, 512)))
    np.testing.assert_array_equal(stft_mel.mel_power(xp, 256, tables, padded=True), one)
    assert stft_mel.mel_power(x[:0], 256, tables).shape == (0, 128, 36)


def test_bad_arguments_are_clear_errors():
    tables = _plan(1024, 128)
    x = np.zeros((1, 4000), np.float32)
    assert not stft_mel.supported(400) and stft_mel.supported(1024)
    with pytest.raises(ValueError, match="power-of-two"):
        stft_mel.plan(features.hann_window(400), features.mel_filterbank(16000, 400, 40))
    with pytest.raises(ValueError, match="does not fit"):
        stft_mel.plan(features.hann_window(512), features.mel_filterbank(16000, 1024, 128))
    with pytest.raises(ValueError, match="hop"):
        stft_mel.mel_power(x, 0, tables)
    with pytest.raises(ValueError, match=r"\[B, T\]"):
        stft_mel.mel_power(x[0], 256, tables)
    with pytest.raises(ValueError, match="padded"):
        stft_mel.mel_power(x[:, :1000], 256, tables, padded=True)
