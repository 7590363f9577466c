"""Attention, adaLN modulation, embeddings, norms, the SD-style UNet and its temporal layers."""
