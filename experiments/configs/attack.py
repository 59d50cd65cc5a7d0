"""Named attack configs: tiny (tests), cpu (the default: small attackers that clear the probe),
fast (the study's: the cpu recipe at smaller sizes), peer (the torch peers' sizes, for speed
comparisons), paper (wider, accelerators).

``get(name, model)`` returns an AttackConfig; flags then override its fields.

The neural attackers of ``cpu`` and ``paper`` read the log-mel with conv / recurrent layers
*and* see the probe's log-mel statistics through a second readout that starts from the probe
fitted on the fold's training split and stays fixed (``readout_init="probe"``): training
starts where the probe ends and learns what to add to it. They train for at least
``min_steps`` optimiser steps whatever the corpus size, with warmup and cosine decay, AdamW,
and keep the parameters with the best validation accuracy (BUILD_NOTES: what mattered).
"""
from __future__ import annotations

import dataclasses

from maskgan_jax.attack import AttackConfig, MelConfig
from maskgan_jax.models.attackers import AttackerConfig

_PROBE = AttackerConfig(model="probe")
# The speed peer's sizes (../shared/peers/attackers_torch.py): benchmarks only.
_PEER_MODELS = {
    "cnn": AttackerConfig(model="cnn", channels=(32, 64, 128, 128)),
    "rnn": AttackerConfig(model="rnn", hidden=128, layers=2),
    "crnn": AttackerConfig(model="crnn", channels=(32, 64, 128), hidden=128, layers=1),
    "probe": _PROBE,
}
_CPU_MODELS = {
    "cnn": AttackerConfig(model="cnn", channels=(16, 32, 64, 128), norm="layer", input_stats=True),
    "rnn": AttackerConfig(model="rnn", hidden=64, layers=1, input_stats=True),
    "crnn": AttackerConfig(model="crnn", channels=(16, 32, 64), hidden=64, layers=1, norm="layer", input_stats=True),
    "probe": _PROBE,
}
_TINY_MODELS = {
    "cnn": AttackerConfig(model="cnn", channels=(8, 16, 16)),
    "rnn": AttackerConfig(model="rnn", hidden=32, layers=1),
    "crnn": AttackerConfig(model="crnn", channels=(8, 16), hidden=32, layers=1),
    "probe": _PROBE,
}
# The study's attackers: the cpu recipe at smaller sizes, so that the whole sweep fits its budget.
_FAST_MODELS = {
    "cnn": AttackerConfig(model="cnn", channels=(8, 16, 32), norm="layer", input_stats=True),
    "rnn": AttackerConfig(model="rnn", hidden=32, layers=1, input_stats=True),
    "crnn": AttackerConfig(model="crnn", channels=(8, 16), hidden=32, layers=1, norm="layer", input_stats=True),
    "probe": _PROBE,
}
_PAPER_MODELS = {
    "cnn": AttackerConfig(model="cnn", channels=(64, 128, 256, 256), norm="layer", input_stats=True),
    "rnn": AttackerConfig(model="rnn", hidden=256, layers=2, input_stats=True),
    "crnn": AttackerConfig(model="crnn", channels=(64, 128, 256), hidden=256, layers=2, norm="layer",
                           input_stats=True),
    "probe": _PROBE,
}
# The training recipe of the stronger attackers (every field an AttackConfig field).
_RECIPE = dict(schedule="cosine", warmup_fraction=0.05, weight_decay=1e-2, readout_init="probe")

CONFIGS = {
    "tiny": dict(models=_TINY_MODELS, mel=MelConfig(n_mels=32), folds=2, epochs=6, patience=3,
                 batch_size=16, learning_rate=3e-3),
    "cpu": dict(models=_CPU_MODELS, mel=MelConfig(n_mels=64), folds=5, epochs=30, min_steps=300, patience=8,
                batch_size=32, learning_rate=1e-3, **_RECIPE),
    "fast": dict(models=_FAST_MODELS, mel=MelConfig(n_mels=64), folds=3, epochs=30, min_steps=150, patience=6,
                 eval_every=15, batch_size=32, learning_rate=2e-3, **_RECIPE),
    "peer": dict(models=_PEER_MODELS, mel=MelConfig(), folds=5, epochs=30, patience=5, batch_size=64,
                 learning_rate=1e-3),
    "paper": dict(models=_PAPER_MODELS, mel=MelConfig(), folds=5, epochs=60, min_steps=2000, patience=8,
                  batch_size=128, learning_rate=5e-4, **_RECIPE),
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
    if not base.model.input_stats:
        base = dataclasses.replace(base, readout_init="random")   # no statistics readout to start from
    return dataclasses.replace(base, **overrides)
