"""Per-session folders under `--workdir`, and uploads that cannot reach outside them.

Each browser session gets `WORKDIR/sessions/<id>/`; it is removed when the session ends. An upload is
copied in under a cleaned name; names with `..`, absolute paths, links, and archive members that are
links or leave the folder are refused with a `GenlabError`.
"""

from __future__ import annotations

import re
import shutil
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from genlab.errors import GenlabError

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Workspace:
    root: Path

    def session(self, session_id: str) -> Path:
        """The session's folder (created); the id is Gradio's session hash, cleaned."""
        name = _SAFE.sub("", session_id)[:64]
        if not name:
            raise GenlabError(f"session id {session_id!r} has no usable characters")
        folder = self.root / "sessions" / name
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def close(self, session_id: str) -> None:
        name = _SAFE.sub("", session_id)[:64]
        if name:
            shutil.rmtree(self.root / "sessions" / name, ignore_errors=True)

    def job(self, session_id: str, kind: str) -> Path:
        """A fresh numbered folder for one job of this session (`t2i-003`, ...)."""
        session = self.session(session_id)
        n = 1 + max((int(p.name.rsplit("-", 1)[1]) for p in session.glob(f"{kind}-[0-9]*")), default=0)
        folder = session / f"{kind}-{n:03d}"
        folder.mkdir()
        return folder


def safe_name(name: str) -> str:
    """The file name an upload keeps: refused if it tries to name a place, cleaned otherwise."""
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts:
        raise GenlabError(f"upload name {name!r} points outside its folder; give a plain file name")
    cleaned = _SAFE.sub("_", path.name).lstrip(".")
    if not cleaned:
        raise GenlabError(f"upload name {name!r} has no usable characters")
    return cleaned


def adopt(upload: str | Path, folder: Path, name: str | None = None) -> Path:
    """Copy an uploaded file into `folder`; a link or anything but a regular file is refused."""
    src = Path(upload)
    if src.is_symlink() or not src.is_file():
        raise GenlabError(f"upload {src.name!r} is not a regular file")
    dest = folder / safe_name(name or src.name)
    shutil.copyfile(src, dest)
    return dest


def extract_archive(archive: str | Path, folder: Path) -> list[Path]:
    """Unpack a .zip or .tar(.gz) into `folder`; any link, device or path leaving the folder refuses all."""
    archive = Path(archive)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            members = [(m.filename, m.is_dir(), (m.external_attr >> 16) & 0o170000 == 0o120000) for m in zf.infolist()]
            _check_members(archive, members)
            zf.extractall(folder)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            infos = tf.getmembers()
            for info in infos:
                if not (info.isfile() or info.isdir()):
                    raise GenlabError(f"{archive.name}: member {info.name!r} is a link or device; refused")
            _check_members(archive, [(i.name, i.isdir(), False) for i in infos])
            tf.extractall(folder, filter="data")
    else:
        raise GenlabError(f"{archive.name}: not a .zip or .tar archive")
    return sorted(p for p in folder.rglob("*") if p.is_file())


def _check_members(archive: Path, members: list[tuple[str, bool, bool]]) -> None:
    for name, _, is_link in members:
        path = PurePosixPath(name)
        if is_link:
            raise GenlabError(f"{archive.name}: member {name!r} is a symbolic link; refused")
        if path.is_absolute() or ".." in path.parts:
            raise GenlabError(f"{archive.name}: member {name!r} points outside the folder; refused")
