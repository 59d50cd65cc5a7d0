"""The denoising adversary's front end: spectral subtraction or Wiener filtering.

The adversary knows nothing about the masking noise but what it hears: the noise power
spectrum is estimated from the recording itself, per frequency bin, as the mean of the
quietest frames (a minimum-statistics style percentile, bias-corrected for the exponential
distribution of a noise-only bin's power) and then median-smoothed across frequency, so that
narrow-band, steady components (a held vowel, a tone) are not mistaken for the broadband
masking noise. The gain is applied to the STFT and the wave is rebuilt by overlap-add. All of
it is jittable, batched over clips, with static sizes.
"""
from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from maskgan_jax import features


@dataclasses.dataclass(frozen=True)
class DenoiseConfig:
    """Front-end settings (static under jit)."""
    method: str = "wiener"            # "wiener" | "subtraction"
    n_fft: int = 512                  # 32 ms at 16 kHz
    hop_length: int = 128             # n_fft must be a multiple of it
    quiet_fraction: float = 0.1       # the share of quietest frames that estimates the noise
    freq_median_bins: int = 9         # odd width of the median across frequency (1 = off)
    over_subtraction: float = 1.0     # alpha of spectral subtraction / scale of the noise PSD
    floor: float = 0.05               # the gain's floor (limits musical noise)

    def validate(self) -> "DenoiseConfig":
        """Raises ValueError naming the bad field."""
        if self.method not in ("wiener", "subtraction"):
            raise ValueError(f"denoise method must be 'wiener' or 'subtraction', got {self.method!r}")
        if self.n_fft < 16 or self.hop_length < 1 or self.n_fft % self.hop_length:
            raise ValueError(f"denoise n_fft ({self.n_fft}) must be >= 16 and a multiple of "
                             f"hop_length ({self.hop_length})")
        if not 0.0 < self.quiet_fraction <= 1.0:
            raise ValueError(f"denoise quiet_fraction must be in (0, 1], got {self.quiet_fraction}")
        if self.freq_median_bins < 1 or self.freq_median_bins % 2 == 0:
            raise ValueError(f"denoise freq_median_bins must be odd and >= 1, got {self.freq_median_bins}")
        if not 0.0 <= self.floor < 1.0 or self.over_subtraction <= 0:
            raise ValueError("denoise floor must be in [0, 1) and over_subtraction > 0")
        return self


def hann_window(n: int) -> jnp.ndarray:
    """Periodic Hann window (as librosa / scipy.signal.get_window('hann')), on device."""
    return jnp.asarray(features.hann_window(n))


def stft(wave_BxT: jnp.ndarray, n_fft: int = 512, hop_length: int = 128) -> jnp.ndarray:
    """Centered STFT with reflect padding -> complex [B, n_fft//2 + 1, frames]."""
    pad = n_fft // 2
    x = jnp.pad(wave_BxT, ((0, 0), (pad, pad)), mode="reflect")
    n_frames = 1 + (x.shape[-1] - n_fft) // hop_length
    idx = np.arange(n_fft)[None, :] + hop_length * np.arange(n_frames)[:, None]
    frames_BxNxW = x[:, idx] * hann_window(n_fft)
    return jnp.swapaxes(jnp.fft.rfft(frames_BxNxW, axis=-1), 1, 2)


def _overlap_add(frames_BxNxW: jnp.ndarray, hop_length: int) -> jnp.ndarray:
    """Sums frames placed hop_length apart; n_fft is a multiple of hop, so it is r shifted adds."""
    b, n, w = frames_BxNxW.shape
    r = w // hop_length
    parts = frames_BxNxW.reshape(b, n, r, hop_length)
    out = 0.0
    for j in range(r):
        seg = parts[:, :, j, :].reshape(b, n * hop_length)
        out = out + jnp.pad(seg, ((0, 0), (j * hop_length, (r - 1 - j) * hop_length)))
    return out


def istft(spec_BxKxN: jnp.ndarray, length: int, n_fft: int = 512,
          hop_length: int = 128) -> jnp.ndarray:
    """Inverse of `stft` (windowed overlap-add, normalised by the summed squared window)."""
    win = hann_window(n_fft)
    frames = jnp.fft.irfft(jnp.swapaxes(spec_BxKxN, 1, 2), n=n_fft, axis=-1) * win
    y = _overlap_add(frames, hop_length)
    n = spec_BxKxN.shape[-1]
    wsq = _overlap_add(jnp.broadcast_to(win * win, (1, n, n_fft)), hop_length)
    y = y / jnp.where(wsq > 1e-8, wsq, 1.0)
    pad = n_fft // 2
    return y[:, pad:pad + length]


def _exp_lower_mean_ratio(q: float) -> float:
    """E[X | X below its q-quantile] / E[X] for an exponential X (a noise-only bin's power)."""
    if q >= 1.0:
        return 1.0
    a = -math.log1p(-q)
    return (1.0 - (1.0 - q) * (1.0 + a)) / q


def estimate_noise_psd(power_BxKxN: jnp.ndarray, quiet_fraction: float = 0.1,
                       freq_median_bins: int = 9) -> jnp.ndarray:
    """Noise power per bin from the recording itself -> [B, K, 1]."""
    n = power_BxKxN.shape[-1]
    k = max(1, int(round(quiet_fraction * n)))
    lowest = jnp.sort(power_BxKxN, axis=-1)[..., :k]
    q = k / n
    psd = jnp.mean(lowest, axis=-1) / _exp_lower_mean_ratio(q)
    if freq_median_bins > 1:
        h = freq_median_bins // 2
        padded = jnp.pad(psd, ((0, 0), (h, h)), mode="edge")
        kbins = psd.shape[-1]
        stacked = jnp.stack([padded[:, i:i + kbins] for i in range(freq_median_bins)], axis=0)
        psd = jnp.median(stacked, axis=0)
    return psd[..., None]


def _gain(power: jnp.ndarray, noise: jnp.ndarray, cfg: DenoiseConfig) -> jnp.ndarray:
    noise = cfg.over_subtraction * noise
    eps = 1e-20
    if cfg.method == "subtraction":
        # Power spectral subtraction, expressed as a magnitude gain.
        g = jnp.sqrt(jnp.maximum(1.0 - noise / (power + eps), 0.0))
    else:
        # Wiener gain with the maximum-likelihood a-priori SNR (posterior SNR − 1).
        xi = jnp.maximum(power / (noise + eps) - 1.0, 0.0)
        g = xi / (1.0 + xi)
    return jnp.maximum(g, cfg.floor)


def denoise(wave_BxT: jnp.ndarray, config: DenoiseConfig = DenoiseConfig()) -> jnp.ndarray:
    """Noise-reduced float32 waves [B, T] (or [T]); jittable, the config is static."""
    cfg = config
    squeeze = wave_BxT.ndim == 1
    x = jnp.asarray(wave_BxT, jnp.float32)
    if squeeze:
        x = x[None]
    if x.ndim != 2:
        raise ValueError(f"denoise expects a wave [T] or a batch [B, T], got shape {x.shape}")
    t = x.shape[-1]
    spec = stft(x, cfg.n_fft, cfg.hop_length)
    power = jnp.real(spec) ** 2 + jnp.imag(spec) ** 2
    noise = estimate_noise_psd(power, cfg.quiet_fraction, cfg.freq_median_bins)
    y = istft(spec * _gain(power, noise, cfg), t, cfg.n_fft, cfg.hop_length)
    return y[0] if squeeze else y


@functools.lru_cache(maxsize=None)
def make_front_end(config: DenoiseConfig = DenoiseConfig()):
    """A jitted wave_BxT -> wave_BxT denoiser for the attack's test-time front end."""
    cfg = config.validate()
    return jax.jit(functools.partial(denoise, config=cfg))


def snr_db(clean: np.ndarray, estimate: np.ndarray) -> float:
    """10·log10(‖clean‖² / ‖estimate − clean‖²), in dB."""
    clean = np.asarray(clean, np.float64)
    err = np.asarray(estimate, np.float64) - clean
    return float(10.0 * np.log10(np.sum(clean ** 2) / max(np.sum(err ** 2), 1e-30)))
