"""Shared test set-up: one torch thread per xdist worker, a cache folder of the run's own, a helper to run
the CLI."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.helpers import SHARED_DATA, run_genlab

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


_OWN_CACHE: str | None = None


def pytest_configure(config: pytest.Config) -> None:
    # a user's ~/.cache/genlab (a trained SPoC translator, say) must not change what the tests see:
    # without an explicit GENLAB_CACHE the run gets an empty one of its own (CLI subprocesses inherit it)
    global _OWN_CACHE
    if "GENLAB_CACHE" not in os.environ:
        _OWN_CACHE = os.environ["GENLAB_CACHE"] = tempfile.mkdtemp(prefix="genlab-test-cache-")
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass


def pytest_unconfigure(config: pytest.Config) -> None:
    if _OWN_CACHE is not None:
        shutil.rmtree(_OWN_CACHE, ignore_errors=True)


@pytest.fixture
def genlab_cli():
    return run_genlab


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA
