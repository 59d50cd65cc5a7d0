"""Named MaskGAN configs: tiny (tests), cpu (a laptop-scale run), paper (the full model)."""
from __future__ import annotations

import dataclasses

from maskgan_jax.gan import GanConfig

CONFIGS = {
    # Seconds per step on one CPU core pair; for tests and smoke runs.
    "tiny": GanConfig(dim=4, slice_len=16384, batch_size=4, steps=20, log_every=5, checkpoint_every=10),
    # Full 2.048 s slices with a narrow model: 300 WGAN-GP steps in under 5 minutes on a 2-core CPU.
    "cpu": GanConfig(dim=4, slice_len=32768, batch_size=8, steps=300, log_every=10, checkpoint_every=100),
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
