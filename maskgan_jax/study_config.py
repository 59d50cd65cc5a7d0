"""The study's config: everything that defines a study, validated, and its sweep of cells."""
from __future__ import annotations

import dataclasses
import json
from typing import Any

from maskgan_jax import results
from maskgan_jax.data import layouts
from maskgan_jax.levels import COMFORT_LIMIT_SPL
from maskgan_jax.study_grid import Cell, enumerate_cells, matches, parse_filter
from maskgan_jax.vocab import (ADVERSARIES, ALL_STUDY_NOISES, CHANNELS, CLIP_SAMPLES, DENOISE_FRONT_END, STUDY_NOISES,
                                check_name)


@dataclasses.dataclass(frozen=True)
class StudyConfig:
    """Everything that defines a study (written to ``OUT/study_config.json``)."""
    name: str = "default"
    tasks: tuple = ("mgi", "udi", "sei", "commands")
    models: tuple = ("cnn", "rnn", "crnn")
    noises: tuple = STUDY_NOISES
    levels: tuple = (35.0, 45.0)
    allow_above_comfort: bool = False
    adversaries: tuple = ADVERSARIES
    adaptive_levels: tuple | None = None        # None: the adaptive adversary at every level
    channels: tuple = ("digital",)              # digital and/or room (vocab.CHANNELS)
    rooms: int = 32                             # room channel: rooms in the impulse-response bank
    room_seed: int = 0
    exclude: str = ""                           # cells dropped from the sweep (--cells syntax)
    seeds: tuple = (0,)
    speech_spl: float = 60.0
    clip_samples: int = CLIP_SAMPLES
    data_dirs: tuple = ()                       # ((task, folder), ...); empty: embedded corpora
    corpus_size: str = "default"
    corpus_seed: int = 0
    attack: tuple = ()                          # ((model, attack.AttackConfig), ...)
    denoise_front_end: str = DENOISE_FRONT_END  # the denoising adversary's front end
    gan: Any = None                             # gan.GanConfig (None when no GAN noise is swept)
    gan_workdir: str = ""                       # '' = OUT/maskgan, trained by the study
    gate_clips: int = 32                        # the MaskGAN's noise-quality gate: clips of each kind ...
    gate_classifier: bool = True                # ... and whether it trains the two-sample classifier
    masker_workdir: str = ""                    # a trained masker (experiments.train_masker): noise "optimised"
    randomness_clips: int = 128
    utility_clips: int = 32                     # command clips scored for STOI / PESQ per condition
    utility_levels: tuple = (45.0,)
    noise_clips: int = 16
    reference_level: float = COMFORT_LIMIT_SPL
    report_seed: int = 0

    def validate(self) -> "StudyConfig":
        """Raises ValueError naming the bad field."""
        for t in self.tasks:
            layouts.layout_of(t)
        for n in self.noises:
            check_name(n, ALL_STUDY_NOISES, "noises")
        for a in self.adversaries:
            check_name(a, ADVERSARIES, "adversaries")
        for ch in self.channels:
            check_name(ch, CHANNELS, "channels")
        loud = [lv for lv in self.levels if lv > COMFORT_LIMIT_SPL]
        if loud and not self.allow_above_comfort:
            raise ValueError(f"levels {loud} exceed the {COMFORT_LIMIT_SPL:g} dB SPL comfort limit; "
                             "set allow_above_comfort (--allow_above_comfort) for a research sweep")
        attack_models = dict(self.attack)
        missing = [m for m in self.models if m not in attack_models]
        if missing:
            raise ValueError(f"models {missing} have no attack config")
        if "gan" in self.noises and self.gan is None and not self.gan_workdir:
            raise ValueError("noise 'gan' needs a MaskGAN config or a trained gan_workdir")
        if self.gate_clips < 4:
            raise ValueError(f"gate_clips={self.gate_clips}: the noise-quality gate needs at least 4 clips")
        if "optimised" in self.noises and not self.masker_workdir:
            raise ValueError("noise 'optimised' needs masker_workdir (a trained masker)")
        if not self.seeds:
            raise ValueError("seeds: at least one seed")
        return self

    def cells(self) -> list[Cell]:
        """The full sweep of this study (less the ``exclude`` filter's cells)."""
        cells = enumerate_cells(self.tasks, self.models, self.noises, self.levels,
                                self.adversaries, self.seeds, self.adaptive_levels, self.channels)
        drop = parse_filter(self.exclude)
        return [c for c in cells if not drop or not matches(c, drop)]

    def to_json(self) -> dict:
        """JSON-able form (nested configs as dicts)."""
        return json.loads(results.dumps(dataclasses.asdict(self)))
