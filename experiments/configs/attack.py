"""Named attack configs: tiny (tests), cpu (laptop-scale, the peer's sizes), paper (wider, accelerators).

``get(name, model)`` returns an AttackConfig; flags then override its fields.
"""
from __future__ import annotations

import dataclasses

from maskgan_jax.attack import AttackConfig, MelConfig
from maskgan_jax.models.attackers import AttackerConfig

# The speed peer's sizes (../shared/peers/attackers_torch.py) for the cpu config.
_CPU_MODELS = {
    "cnn": AttackerConfig(model="cnn", channels=(32, 64, 128, 128)),
    "rnn": AttackerConfig(model="rnn", hidden=128, layers=2),
    "crnn": AttackerConfig(model="crnn", channels=(32, 64, 128), hidden=128, layers=1),
}
_PROBE = AttackerConfig(model="probe")
_CPU_MODELS["probe"] = _PROBE
_TINY_MODELS = {
    "cnn": AttackerConfig(model="cnn", channels=(8, 16, 16)),
    "rnn": AttackerConfig(model="rnn", hidden=32, layers=1),
    "crnn": AttackerConfig(model="crnn", channels=(8, 16), hidden=32, layers=1),
    "probe": _PROBE,
}
_PAPER_MODELS = {
    "cnn": AttackerConfig(model="cnn", channels=(64, 128, 256, 256), norm="layer"),
    "rnn": AttackerConfig(model="rnn", hidden=256, layers=2),
    "crnn": AttackerConfig(model="crnn", channels=(64, 128, 256), hidden=256, layers=2),
    "probe": _PROBE,
}

CONFIGS = {
    "tiny": dict(models=_TINY_MODELS, mel=MelConfig(n_mels=32), folds=2, epochs=6, patience=3,
                 batch_size=16, learning_rate=3e-3),
    "cpu": dict(models=_CPU_MODELS, mel=MelConfig(), folds=5, epochs=30, patience=5, batch_size=64,
                learning_rate=1e-3),
    "paper": dict(models=_PAPER_MODELS, mel=MelConfig(), folds=5, epochs=60, patience=8,
                  batch_size=128, learning_rate=5e-4),
}


def get(name: str, model: str = "cnn", **overrides) -> AttackConfig:
    """The named config for one attacker family, with field overrides."""
    if name not in CONFIGS:
        raise ValueError(f"--config={name!r}: expected one of {sorted(CONFIGS)}")
    c = CONFIGS[name]
    if model not in c["models"]:
        raise ValueError(f"--model={model!r}: expected one of {sorted(c['models'])}")
    base = AttackConfig(model=c["models"][model], **{k: v for k, v in c.items() if k != "models"})
    model_fields = {f.name for f in dataclasses.fields(AttackerConfig)} - {"model"}
    m_over = {k: overrides.pop(k) for k in list(overrides) if k in model_fields}
    if m_over:
        base = dataclasses.replace(base, model=dataclasses.replace(base.model, **m_over))
    return dataclasses.replace(base, **overrides)
