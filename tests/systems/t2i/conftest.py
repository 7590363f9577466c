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
