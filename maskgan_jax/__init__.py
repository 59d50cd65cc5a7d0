"""maskgan-jax: GAN-generated sound masking against ML inference attacks on smart-home audio."""

__version__ = "0.1.0"
