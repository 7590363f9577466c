"""Pixel identity, a small trainable autoencoder, diffusers AutoencoderKL from a local path."""
