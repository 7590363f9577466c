"""Process hygiene for long parallel jobs: workers that die with their parent, one writer per output folder."""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from genlab.errors import GenlabError


def exit_with_parent(poll_seconds: float = 0.5) -> None:
    """Pool initializer: end this worker as soon as its parent is gone.

    A killed parent leaves a ProcessPoolExecutor's workers running (reparented to init), still writing
    into the output folder that a restarted run is using; a daemon thread polling getppid prevents that.
    """
    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(poll_seconds)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


@contextlib.contextmanager
def exclusive_folder(folder: str | os.PathLike) -> Iterator[Path]:
    """Hold an advisory lock on `folder/.lock` for the block; a second run on the same folder fails at once."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise GenlabError(f"{folder}: another run is writing into this folder (its .lock is held)") from None
        try:
            yield folder
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
