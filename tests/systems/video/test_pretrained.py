"""A pretrained SVD end to end against diffusers' StableVideoDiffusionPipeline (tiny random parts, saved and
read back from disk), with genlab's own CLIP preprocessing on a full-size 576x1024 image."""

from __future__ import annotations

import pytest
import torch

from genlab.systems.video import pipeline, pretrained
from tests.systems.video.svd_tiny import sample_picture

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

FRAMES, STEPS, H, W = 4, 3, 32, 64


def _reference(pipe, image, seed: int = 7, chunk: int = 2):
    with torch.no_grad():
        return pipe(image, height=H, width=W, num_frames=FRAMES, num_inference_steps=STEPS, min_guidance_scale=1.0,
                    max_guidance_scale=2.5, fps=7, motion_bucket_id=100, noise_aug_strength=0.02,
                    decode_chunk_size=chunk, generator=torch.Generator("cpu").manual_seed(seed),
                    output_type="pt").frames  # (1, T, 3, H, W) in [0, 1]


def _ours(components, image, seed: int = 7, chunk: int = 2):
    cfg = pipeline.SamplingConfig(num_frames=FRAMES, steps=STEPS, min_guidance=1.0, max_guidance=2.5, fps_id=6,
                           motion_bucket_id=100, cond_aug=0.02, decode_chunk=chunk)
    out = pipeline.image_to_video(components, image, cfg, size=(H, W), generator=torch.Generator("cpu").manual_seed(seed))
    return (out.video / 2 + 0.5).clamp(0, 1)


def test_end_to_end_equals_diffusers_on_a_576x1024_image(tiny_svd):
    folder, pipe = tiny_svd
    image = sample_picture(576, 1024)
    ref = _reference(pipe, image)
    c = pretrained.load(folder)
    assert c.source == "diffusers" and c.config.trained_frames == FRAMES
    ours = _ours(c, image)
    assert ours.shape == ref.shape == (1, FRAMES, 3, H, W)
    assert ref.std() > 0.02  # not a constant video
    assert (ours - ref).abs().max().item() < 1e-4
    # the anti-aliasing matters at this size: a plain bicubic resize moves CLIP's input by far more than 1e-4
    full = pipeline.pil_to_tensor(image)
    plain = torch.nn.functional.interpolate(full, size=(224, 224), mode="bicubic", align_corners=True)
    std = torch.tensor(c.clip.std)[None, :, None, None]
    mean = torch.tensor(c.clip.mean)[None, :, None, None]
    assert ((plain + 1) / 2 - (c.clip.pixel_values(full) * std + mean)).abs().max() > 0.05


@pytest.mark.slow
def test_same_seed_same_video_other_seed_differs(tiny_svd):
    folder, _ = tiny_svd
    c = pretrained.load(folder)
    image = sample_picture(64, 96, seed=5)
    a, b, other = _ours(c, image, 1), _ours(c, image, 1), _ours(c, image, 2)
    assert torch.equal(a, b)
    assert (a - other).abs().max() > 1e-3


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_runs_close_to_float32(tiny_svd, dtype):
    folder, _ = tiny_svd
    image = sample_picture(64, 96, seed=2)
    ref = _ours(pretrained.load(folder), image)
    try:
        half = _ours(pretrained.load(folder, dtype=dtype), image)
    except RuntimeError as err:  # an op without a CPU kernel in this dtype
        pytest.skip(f"{dtype} on CPU: {err}")
    assert half.dtype == torch.float32 and torch.isfinite(half).all()
    assert (half - ref).abs().mean() < 0.02
