"""Workers die with their parent; a second run on a locked output folder fails at once."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from genlab.core.procs import exclusive_folder
from genlab.errors import GenlabError

PARENT = """
import concurrent.futures as cf, multiprocessing as mp, os, sys, time
from genlab.core.procs import exit_with_parent

if __name__ == "__main__":
    with cf.ProcessPoolExecutor(1, mp_context=mp.get_context("spawn"), initializer=exit_with_parent) as pool:
        print(pool.submit(os.getpid).result(), flush=True)
        pool.submit(time.sleep, 60)
        time.sleep(60)
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def test_pool_worker_exits_when_its_parent_is_killed(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        worker = int(parent.stdout.readline())
        assert _alive(worker)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 10
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(worker), "the pool worker outlived its killed parent"
    finally:
        parent.kill()


def test_second_writer_on_a_locked_folder_fails(tmp_path):
    with exclusive_folder(tmp_path / "run"):
        with pytest.raises(GenlabError, match="another run"):
            with exclusive_folder(tmp_path / "run"):
                pass
    with exclusive_folder(tmp_path / "run"):  # released after the block
        pass
