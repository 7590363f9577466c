"""Helpers for tests: paths and running the CLI on this checkout's sources."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _find_shared_data() -> Path:
    """../shared/data beside the checkout; clones elsewhere (CI, worktrees) fall back to /work."""
    candidates = [os.environ.get("GENLAB_SHARED_DATA"), ROOT.parent / "shared" / "data", "/work/shared/data"]
    for candidate in candidates:
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return ROOT.parent / "shared" / "data"


SHARED_DATA = _find_shared_data()


def run_genlab(*args: str, cwd: Path | None = None, timeout: float = 600, env: dict | None = None):
    """Run `python -m genlab ARGS` on this checkout's sources; returns CompletedProcess."""
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + full_env.get("PYTHONPATH", "")
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "genlab", *args],
        cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout,
    )
