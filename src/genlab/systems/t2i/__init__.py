"""Rectified-flow text-to-image with the MM-DiT transformer (SD3, Esser et al. 2024)."""
