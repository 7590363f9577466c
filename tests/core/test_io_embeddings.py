import pytest
import torch

from genlab.core.io import atomic_path, atomic_write_text
from genlab.core.nn.embeddings import timestep_embedding


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []
    atomic_write_text(target, "whole")
    assert target.read_text() == "whole"


def test_timestep_embedding_matches_diffusers():
    diffusers = pytest.importorskip("diffusers.models.embeddings")
    t = torch.tensor([0.0, 1.5, 250.0, 999.0])
    for flip, shift in [(True, 0.0), (False, 1.0)]:
        ours = timestep_embedding(t, 64, flip_sin_to_cos=flip, downscale_freq_shift=shift)
        ref = diffusers.get_timestep_embedding(t, 64, flip_sin_to_cos=flip, downscale_freq_shift=shift)
        torch.testing.assert_close(ours, ref, atol=1e-6, rtol=0)
