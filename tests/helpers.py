"""Helpers for tests: paths and running the CLI on this checkout's sources."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


# The shared real data: $GENLAB_SHARED_DATA, else ../shared/data beside the checkout (tests skip without it).
SHARED_DATA = Path(os.environ.get("GENLAB_SHARED_DATA") or ROOT.parent / "shared" / "data")


def run_genlab(*args: str, cwd: Path | None = None, timeout: float = 600, env: dict | None = None):
    """Run `python -m genlab ARGS` on this checkout's sources; returns CompletedProcess."""
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + full_env.get("PYTHONPATH", "")
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "genlab", *args],
        cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout,
    )


def run_cli_inprocess(argv: list[str], capsys) -> tuple[int, str, str]:
    """`genlab.cli.main(argv)` in this process: (exit code, stdout, stderr). argparse's own exits count."""
    from genlab.cli import main

    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def assert_user_error(code: int, err: str, *needles: str) -> None:
    """A user error: exit code 2 and one stderr line (no traceback) that names each of `needles`."""
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == 2, (code, err)
    assert len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
