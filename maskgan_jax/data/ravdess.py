"""RAVDESS layout: Actor_NN/MM-VV-EE-II-SS-RR-AA.wav, emotion and actor from the file name."""
from __future__ import annotations

import os
import re

from maskgan_jax.data import base

NAME = "ravdess"
TASK = "sei"
# Field 3 of the file name, codes 01..08.
EMOTIONS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
_ACTOR_DIR = re.compile(r"^Actor_(\d{2})$")
# modality - vocal channel - emotion - intensity - statement - repetition - actor
_NAME = re.compile(r"^(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})\.wav$", re.IGNORECASE)
_AUDIO_ONLY = "03"
_SPEECH, _SONG = "01", "02"


def is_layout(root: str) -> bool:
    """True when root holds at least one Actor_NN folder."""
    try:
        return any(_ACTOR_DIR.match(n) and os.path.isdir(os.path.join(root, n)) for n in os.listdir(root))
    except OSError:
        return False


def parse_name(filename: str) -> dict[str, str] | None:
    """The seven two-digit fields of a RAVDESS file name, or None when it does not follow the scheme."""
    m = _NAME.match(filename)
    if m is None:
        return None
    keys = ("modality", "channel", "emotion", "intensity", "statement", "repetition", "actor")
    return dict(zip(keys, m.groups()))


def load(root: str, include_song: bool = False) -> base.Corpus:
    """Load a RAVDESS audio folder: emotion labels, actor groups; speech only unless include_song."""
    root = os.path.abspath(root)
    actor_dirs = sorted(n for n in os.listdir(root)
                        if _ACTOR_DIR.match(n) and os.path.isdir(os.path.join(root, n)))
    if not actor_dirs:
        raise base.LayoutError(f"{root}: not a RAVDESS folder, no Actor_NN folders")
    channels = (_SPEECH, _SONG) if include_song else (_SPEECH,)
    items, broken, skipped = [], [], {}
    for actor_dir in actor_dirs:
        folder_actor = _ACTOR_DIR.match(actor_dir).group(1)
        folder = os.path.join(root, actor_dir)
        for filename in sorted(os.listdir(folder)):
            if filename.startswith("."):
                continue
            path = os.path.join(folder, filename)
            fields = parse_name(filename)
            if fields is None:
                broken.append((path, "name does not follow RAVDESS MM-VV-EE-II-SS-RR-AA.wav"))
                continue
            if fields["modality"] != _AUDIO_ONLY:
                base.count(skipped, "not audio-only (modality field is not 03)")
                continue
            if fields["channel"] not in (_SPEECH, _SONG):
                broken.append((path, f"vocal channel {fields['channel']} is neither 01 speech nor 02 song"))
                continue
            if fields["channel"] not in channels:
                base.count(skipped, "song (include_song=False)")
                continue
            emotion = int(fields["emotion"])
            if not 1 <= emotion <= len(EMOTIONS):
                broken.append((path, f"emotion code {fields['emotion']} outside 01..08"))
                continue
            if fields["actor"] != folder_actor:
                broken.append((path, f"actor {fields['actor']} in the name but folder {actor_dir}"))
                continue
            if not os.path.isfile(path):
                broken.append((path, "not a regular file"))
                continue
            items.append(base.Item(path=path, labels={"emotion": emotion - 1},
                                   group=f"actor_{folder_actor}", split=""))
    return base.Corpus(name=NAME, task=TASK, root=root, items=items,
                       classes={"emotion": list(EMOTIONS)}, broken=broken, skipped=skipped)
