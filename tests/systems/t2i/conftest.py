"""Tiny random SD3 / SD3.5 pipelines (diffusers + transformers classes, saved with save_pretrained),
shared by the pretrained-pipeline tests; built once per session, read-only."""

from __future__ import annotations

import pytest

from tests.systems.t2i import sd3_tiny


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """SD3-Medium style: (diffusers parts, saved folder)."""
    pytest.importorskip("diffusers")
    parts = sd3_tiny.components()
    return parts, sd3_tiny.save_folder(parts, tmp_path_factory.mktemp("sd3") / "pipe")


@pytest.fixture(scope="session")
def tiny35(tmp_path_factory):
    """SD3.5-Medium style: MMDiT-X (dual attention in blocks 0 and 1 of 3) with RMS QK-norm."""
    pytest.importorskip("diffusers")
    parts = sd3_tiny.components(seed=1, depth=3, qk_norm="rms_norm", dual_attention_layers=(0, 1))
    return parts, sd3_tiny.save_folder(parts, tmp_path_factory.mktemp("sd35") / "pipe")
