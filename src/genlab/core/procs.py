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


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def rss_bytes() -> int:
    """This process's resident memory now (Linux VmRSS; 0 where /proc is missing)."""
    kib = _status_kib("VmRSS")
    return 0 if kib is None else kib * 1024


def peak_rss_bytes() -> int:
    """This process's peak resident memory (Linux VmHWM). Not ru_maxrss: that survives exec, so a process
    started from a large parent (a test runner, a shell tool) reports at least the parent's peak."""
    kib = _status_kib("VmHWM")
    if kib is None:  # not Linux: ru_maxrss (KiB on Linux/BSD, bytes on macOS) is the best there is
        import resource
        import sys

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024
    return kib * 1024


def reset_peak_rss() -> bool:
    """Reset the peak (VmHWM) to the current RSS, so `peak_rss_bytes` measures from here (Linux: write 5 to
    /proc/self/clear_refs); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False
