"""Thin absl-flag binaries over the maskgan_jax library."""
