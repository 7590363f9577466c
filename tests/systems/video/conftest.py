"""One tiny random StableVideoDiffusionPipeline per test session, saved with save_pretrained (see svd_tiny.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_svd(tmp_path_factory):
    pytest.importorskip("diffusers")
    pytest.importorskip("transformers")
    from tests.systems.video.svd_tiny import save_tiny

    folder = tmp_path_factory.mktemp("svd") / "tiny_svd"
    return folder, save_tiny(folder, num_frames=4, smooth_chroma=True)
