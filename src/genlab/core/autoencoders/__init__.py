"""Pixel identity, a small trainable autoencoder, diffusers AutoencoderKL from a local path.

Every autoencoder has `encode(x) -> z` (already scaled to about unit variance), `decode(z) -> x`,
`downsample_factor` and `latent_channels`. Import the submodule you need:
`pixel.PixelIdentity`, `small.SmallAE` / `small.train_or_load`, `kl.DiffusersKL.from_local`,
`temporal_decoder.TemporalDecoder` (SVD's video decoder).
"""
