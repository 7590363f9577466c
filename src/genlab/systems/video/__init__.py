"""Latent video diffusion (Stable Video Diffusion, Blattmann et al. 2023)."""
