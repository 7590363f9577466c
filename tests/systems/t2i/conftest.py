"""The tiny random SD3 pipeline (diffusers / transformers parts saved with save_pretrained), built once per
session for the pretrained-SD3 and LoRA tests."""

from __future__ import annotations

import pytest

from tests.systems.t2i import sd3_tiny


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    pytest.importorskip("diffusers")
    parts = sd3_tiny.components()
    folder = sd3_tiny.save_folder(parts, tmp_path_factory.mktemp("sd3") / "pipe")
    return parts, folder


@pytest.fixture(scope="session")
def tiny35(tmp_path_factory):
    """SD3.5-Medium style: MMDiT-X (dual attention in blocks 0 and 1 of 3) with RMS QK-norm."""
    pytest.importorskip("diffusers")
    parts = sd3_tiny.components(seed=1, depth=3, qk_norm="rms_norm", dual_attention_layers=(0, 1))
    return parts, sd3_tiny.save_folder(parts, tmp_path_factory.mktemp("sd35") / "pipe")
