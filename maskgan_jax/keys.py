"""Named random streams: every key and numpy generator the attack, the study and the GAN derive.

One function per use, so that the attack binary, the study's cells and the randomness stage
draw the same numbers without keeping constants in step by hand. JAX keys are derived with
``fold_in`` from the run's seed; numpy generators are seeded with ``[seed, ..., stream]``
where a stream is a two-letter name turned into an integer (``"tr"`` -> 0x7472).

Guarantees the rest of the code relies on:

* a test example's masking noise depends only on (seed, store index) — the same in every
  fold, adversary, model and batch layout (`test_noise` + `per_example`);
* a fold's initialisation, batch order and epoch noise depend only on (seed, fold).
"""
from __future__ import annotations

import jax
import numpy as np

# fold_in offsets under a run's root key and under a fold's key.
_TEST_NOISE = 2
_FOLD_BASE = 1000
_INIT, _EPOCHS, _VALID_NOISE = 0, 1, 3
# Offset of fold f's validation seed (any number well above the fold count).
_VALIDATION_FOLD_STRIDE = 7919


def _stream(name: str) -> int:
    """A numpy seed stream: the bytes of a two-letter name as an integer ('tr' -> 0x7472)."""
    return int.from_bytes(name.encode("ascii"), "big")


# ------------------------------------------------------------------------------ JAX keys

def root(seed: int) -> jax.Array:
    """The run's root key."""
    return jax.random.key(seed)


def test_noise(seed: int) -> jax.Array:
    """Key of the test-time masking noise: with `per_example`, one noise per clip for the whole run."""
    return jax.random.fold_in(root(seed), _TEST_NOISE)


def fold(seed: int, fold_index: int) -> jax.Array:
    """Key of one cross-validation fold."""
    return jax.random.fold_in(root(seed), _FOLD_BASE + fold_index)


def init(fold_key: jax.Array) -> jax.Array:
    """Attacker initialisation within a fold."""
    return jax.random.fold_in(fold_key, _INIT)


def epoch(fold_key: jax.Array, epoch_index: int) -> jax.Array:
    """Training noise (and augmentation) of one epoch within a fold."""
    return jax.random.fold_in(jax.random.fold_in(fold_key, _EPOCHS), epoch_index)


def valid_noise(fold_key: jax.Array) -> jax.Array:
    """Masking noise of a fold's validation split."""
    return jax.random.fold_in(fold_key, _VALID_NOISE)


def per_example(key: jax.Array, index_B: jax.Array) -> jax.Array:
    """One key per example from its store index (independent of batching and devices)."""
    return jax.vmap(lambda i: jax.random.fold_in(key, i))(index_B)


def example_clips(seed: int) -> jax.Array:
    """Key of the study's example noise clips (with `per_example` over 0..n-1)."""
    return root(seed)


def noise_randomness(seed: int) -> jax.Array:
    """Key of the noise clips whose randomness the study scores on their own."""
    return root(seed + 1)


def gan_step(run_key_data: jax.Array, step: int) -> jax.Array:
    """Key of MaskGAN training step ``step`` from the run key kept in the training state.

    A function of the run's key and the step only, so a resumed run continues the same.
    """
    return jax.random.fold_in(jax.random.wrap_key_data(run_key_data), step)


# ------------------------------------------------------------------------------ numpy

def batch_order(seed: int, fold_index: int) -> np.random.Generator:
    """Shuffles a fold's training batches, epoch after epoch."""
    return np.random.default_rng([seed, fold_index, _stream("tr")])


def kfold(seed: int) -> np.random.Generator:
    """Assigns speaker/actor/artist groups to folds."""
    return np.random.default_rng([seed, _stream("kf")])


def validation(seed: int, fold_index: int | None = None) -> np.random.Generator:
    """Picks the validation groups of a fold (None: the corpus's own split)."""
    s = seed if fold_index is None else seed + _VALIDATION_FOLD_STRIDE * fold_index
    return np.random.default_rng([s, _stream("va")])


def randomness_sample(seed: int) -> np.random.Generator:
    """Picks the clips whose randomness the study scores."""
    return np.random.default_rng([seed, _stream("ra")])
