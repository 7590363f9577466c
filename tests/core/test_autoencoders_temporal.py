"""SVD's temporal decoder: parity with diffusers' AutoencoderKLTemporalDecoder, chunked decoding."""

from __future__ import annotations

import pytest
import torch

from genlab.core.autoencoders import temporal_decoder as TD
from genlab.errors import GenlabError


def _ref():
    diffusers = pytest.importorskip("diffusers")
    torch.manual_seed(0)
    vae = diffusers.AutoencoderKLTemporalDecoder(
        block_out_channels=(32, 64), layers_per_block=1, latent_channels=4,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
    ).eval()
    with torch.no_grad():
        for p in vae.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return vae


def _ours(vae):
    dec = TD.TemporalDecoder(TD.tiny()).eval()
    TD.load_diffusers_decoder_state_dict(dec, vae.state_dict())
    return dec


@pytest.mark.parametrize("frames", [1, 3])
def test_parity_with_diffusers_temporal_decoder(frames):
    vae = _ref()
    dec = _ours(vae)
    z = torch.randn(2 * frames, 4, 8, 8)
    with torch.no_grad():
        expected = vae.decode(z, num_frames=frames).sample
        got = dec(z, frames)
    assert got.shape == expected.shape == (2 * frames, 3, 16, 16)
    assert (got - expected).abs().max().item() < 1e-5


def test_alpha_is_reversed_and_initialised_at_one_half():
    dec = TD.TemporalDecoder(TD.tiny())
    mixer = dec.up_blocks[0].resnets[0].time_mixer
    assert mixer.switch and mixer.strategy == "learned" and mixer.mix_factor.item() == 0.0


def test_chunked_decoding():
    dec = _ours(_ref())
    z = torch.randn(1, 4, 4, 8, 8)
    with torch.no_grad():
        full = dec.decode_video(z)
        same = dec.decode_video(z, chunk_size=4)
        chunked = dec.decode_video(z, chunk_size=2)
    assert torch.equal(full, same)
    assert chunked.shape == full.shape
    assert (chunked - full).abs().max() > 0  # chunks see fewer neighbouring frames (as in sgm/diffusers)
    with pytest.raises(GenlabError, match="chunk"):
        dec.decode_video(z, chunk_size=0)
