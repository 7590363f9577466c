"""Where files go: the one cache folder, and atomic output (nothing half-written carries its final name)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from genlab.errors import GenlabError


def cache_dir(name: str) -> Path:
    """`$GENLAB_CACHE/name` (default `~/.cache/genlab/name`), created; the only place caches go.

    A relative `$GENLAB_CACHE` is resolved against the working directory; one that cannot be
    created or written is a `GenlabError` naming it.
    """
    root = Path(os.environ.get("GENLAB_CACHE") or Path.home() / ".cache" / "genlab").expanduser().resolve()
    path = root / name
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise GenlabError(f"cache folder {path} (from $GENLAB_CACHE) cannot be created: {err.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise GenlabError(f"cache folder {path} (from $GENLAB_CACHE) is not writable; set GENLAB_CACHE to a writable folder")
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    Usage: `with atomic_path(out) as tmp: save(tmp)`. The temporary file lives in the same
    directory, so the final `os.replace` is atomic on POSIX.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp (and writers that re-create the file, e.g. safetensors) make 0600: outputs get the
        # permissions open() would give
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
