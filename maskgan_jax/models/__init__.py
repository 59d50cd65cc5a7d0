"""Flax models: the MaskGAN (WaveGAN) generator and critic, and the attackers."""
