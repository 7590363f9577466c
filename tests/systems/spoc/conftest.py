"""Shared fixtures for the SPoC tests: one harness per session on a temporary cache."""

from __future__ import annotations

import shutil

import pytest


@pytest.fixture(scope="session")
def harness(tmp_path_factory):
    if shutil.which("g++") is None:
        pytest.skip("g++ not installed")
    if shutil.which("bwrap") is None:  # CI installs it (.ci/run); without it the harness refuses to run code
        pytest.skip("bubblewrap not installed: apt-get install bubblewrap")
    from genlab.systems.spoc.harness import Harness, HarnessConfig

    cache = tmp_path_factory.mktemp("spoc-cache")
    h = Harness(None, cache, HarnessConfig(workers=2, cpu_s=1, wall_s=3.0, memory_mb=256, output_mb=2))
    yield h
    h.close()
