"""The one cache folder, output permissions, and cached records that survive a JSON round trip."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest
import torch

from genlab.core.io import atomic_write_text, cache_dir
from genlab.core.train import save_weights
from genlab.errors import GenlabError


def test_cache_dir_follows_genlab_cache_and_resolves_relative_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GENLAB_CACHE", "rel/cache")
    path = cache_dir("spoc")
    assert path == tmp_path / "rel" / "cache" / "spoc" and path.is_dir()
    monkeypatch.delenv("GENLAB_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir("mnist") == tmp_path / "home" / ".cache" / "genlab" / "mnist"


def test_unwritable_cache_is_one_clear_error(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("GENLAB_CACHE", str(blocker))
    with pytest.raises(GenlabError, match="GENLAB_CACHE"):
        cache_dir("spoc")


def test_every_default_cache_is_under_genlab_cache(tmp_path, monkeypatch):
    from genlab.core.autoencoders import small
    from genlab.core.data import mnist
    from genlab.core.eval import classifier
    from genlab.systems.insertion import metrics
    from genlab.systems.spoc import harness

    monkeypatch.setenv("GENLAB_CACHE", str(tmp_path))
    for folder in (small.default_cache_dir(), mnist.default_cache_dir(), classifier.default_cache_dir(),
                   metrics.cache_dir(), harness.default_cache_dir()):
        assert folder.parent == tmp_path, folder


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_outputs_get_the_permissions_open_would_give(tmp_path, umask):
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "out.json", "{}")
        save_weights(tmp_path / "model.safetensors", {"w": torch.zeros(2)})  # safetensors re-creates its file 0600
    finally:
        os.umask(old)
    for name in ("out.json", "model.safetensors"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask, name


def test_mnist_cache_round_trip_on_an_empty_cache(tmp_path):
    from genlab.core.data import mnist

    first = mnist.load_mnist("test", cache_dir=tmp_path)  # decodes and writes the .npz
    assert len(list(tmp_path.glob("mnist_*.npz"))) == 1
    mnist._arrays.cache_clear()
    again = mnist.load_mnist("test", cache_dir=tmp_path)  # reads the .npz back
    assert np.array_equal(first.images, again.images) and np.array_equal(first.labels, again.labels)
    assert again.images.dtype == np.uint8


def test_insertion_readers_round_trip_on_an_empty_cache(tmp_path, monkeypatch):
    import torch

    from genlab.systems.insertion import metrics

    monkeypatch.setenv("GENLAB_CACHE", str(tmp_path))
    cfg = metrics.ReaderConfig(size=32, width=8, steps=2, batch=4, pool=8)
    reg, cls = metrics.load_or_train_readers(cfg, progress=False)
    (saved,) = (tmp_path / "insertion").glob("readers-*.safetensors")
    reg2, cls2 = metrics.load_or_train_readers(cfg, progress=False)
    for a, b in ((reg, reg2), (cls, cls2)):
        for (k, v), w in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(v, w), k
    # the record is the JSON config written beside the weights by core.train.save_weights
    assert metrics.ReaderConfig(**json.loads(saved.with_suffix(".json").read_text())) == cfg
