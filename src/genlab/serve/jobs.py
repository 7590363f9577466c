"""Run one `genlab` command for the page: a child process in the job's folder, its output streamed.

`run_genlab(argv, folder)` yields the log so far (tqdm's carriage returns folded into lines) while the
command runs; a user error (exit code 2) becomes a `GenlabError` carrying the command's one line, so the
page shows it and the server keeps serving. Closing the generator (the user pressed Stop, or the
session ended) kills the command's whole process group.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from genlab.errors import GenlabError

TAIL = 40  # log lines kept on the page


def run_genlab(argv: list[str], folder: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """Run `python -m genlab ARGV` in `folder`; yield the log tail after each chunk of output."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    proc = subprocess.Popen([sys.executable, "-m", "genlab", *argv], cwd=folder, env=full_env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    lines: list[str] = []
    try:
        for chunk in _chunks(proc.stdout):
            _fold(lines, chunk)
            yield "\n".join(lines[-TAIL:])
        code = proc.wait()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if code == 2:
        errors = [line for line in lines if line.startswith("genlab: error:")]
        raise GenlabError((errors[-1] if errors else lines[-1] if lines else "bad input").removeprefix("genlab: error: "))
    if code != 0:
        raise RuntimeError(f"`genlab {' '.join(argv[:2])}` failed (exit code {code}):\n" + "\n".join(lines[-TAIL:]))
    yield "\n".join(lines[-TAIL:])


def _chunks(stream) -> Iterator[str]:
    """Output as it arrives, split so a tqdm bar's every redraw is seen."""
    buffer = b""
    while True:
        data = os.read(stream.fileno(), 4096)
        if not data:
            break
        buffer += data
        *done, buffer = re.split(rb"(?<=[\r\n])", buffer)
        if done:
            yield b"".join(done).decode("utf-8", "replace")
    if buffer:
        yield buffer.decode("utf-8", "replace")


def _fold(lines: list[str], chunk: str) -> None:
    """Append `chunk` to `lines`; a carriage return overwrites the current line (progress bars)."""
    for piece in re.split(r"(\r|\n)", chunk):
        if piece == "\n":
            lines.append("")
        elif piece == "\r":
            if lines:
                lines[-1] = ""
        elif piece:
            if not lines:
                lines.append("")
            lines[-1] += piece
