"""Named MaskGAN configs: tiny (tests), cpu (a laptop-scale run), cpu_quality (the default MaskGAN's recipe),
paper (the full model)."""
from __future__ import annotations

import dataclasses

from maskgan_jax.gan import GanConfig

CONFIGS = {
    # Seconds per step on one CPU core pair; for tests and smoke runs.
    "tiny": GanConfig(dim=4, slice_len=16384, batch_size=4, steps=20, log_every=5, checkpoint_every=10),
    # Full 2.048 s slices with a narrow model: 300 WGAN-GP steps in under 5 minutes on a 2-core CPU.
    "cpu": GanConfig(dim=4, slice_len=32768, batch_size=8, steps=300, log_every=10, checkpoint_every=100),
    # The cpu config with what it takes to produce diverse, white-looking noise (the default MaskGAN
    # shipped in maskgan_jax/assets/maskgan_default was trained with it): an odd generator (no
    # clip-independent part), the clips' correlation, log-spectrum statistics (1024-sample frames)
    # and the amplitude CDF as critic features, a 256-dimensional latent, 2 critic updates per
    # generator update at lr 3e-4.
    "cpu_quality": GanConfig(dim=4, slice_len=32768, batch_size=8, steps=2000, log_every=10, checkpoint_every=200,
                             antisymmetric=True, corr_group=8, spectral_frame=1024, amplitude_points=13,
                             latent_dim=256, n_critic=2, learning_rate=3e-4),
    # The paper's MaskGAN: WaveGAN d=64, 32768 samples, batch 64 (an accelerator's job).
    "paper": GanConfig(dim=64, slice_len=32768, batch_size=64, steps=100000, log_every=100,
                       checkpoint_every=1000),
}


def get_config(name: str, **overrides) -> GanConfig:
    """The named config with ``overrides`` (None values ignored), validated."""
    if name not in CONFIGS:
        raise ValueError(f"--config={name!r} is not a MaskGAN config; use one of {sorted(CONFIGS)}")
    fields = {f.name for f in dataclasses.fields(GanConfig)}
    bad = sorted(set(overrides) - fields)
    if bad:
        raise ValueError(f"unknown MaskGAN config fields {bad}")
    return dataclasses.replace(CONFIGS[name], **{k: v for k, v in overrides.items() if v is not None}).validate()
