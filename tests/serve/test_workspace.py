"""Uploads stay inside their session folder; archives with links or escaping members are refused."""

from __future__ import annotations

import io
import os
import tarfile
import zipfile

import pytest

from genlab.errors import GenlabError
from genlab.serve.workspace import Workspace, adopt, extract_archive, safe_name


@pytest.mark.parametrize("name", ["../evil.txt", "/etc/passwd", "a/../../b.txt", "..\\..\\win.txt", "..", ""])
def test_names_that_point_elsewhere_are_refused(name):
    with pytest.raises(GenlabError):
        safe_name(name)


def test_plain_names_are_kept_and_cleaned():
    assert safe_name("clip 01.mp4") == "clip_01.mp4"
    assert safe_name(".hidden") == "hidden"


def test_a_symlinked_upload_is_refused(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("root only")
    link = tmp_path / "upload.txt"
    link.symlink_to(secret)
    with pytest.raises(GenlabError, match="regular file"):
        adopt(link, tmp_path)


def _tar_with(tmp_path, member: tarfile.TarInfo, data: bytes = b""):
    path = tmp_path / "upload.tar"
    with tarfile.open(path, "w") as tf:
        tf.addfile(member, io.BytesIO(data) if data else None)
    return path


def test_archives_with_links_or_escaping_members_are_refused(tmp_path):
    dest = tmp_path / "dest"
    dest.mkdir()
    link = tarfile.TarInfo("innocent.txt")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    with pytest.raises(GenlabError, match="link"):
        extract_archive(_tar_with(tmp_path, link), dest)
    escape = tarfile.TarInfo("../../escape.txt")
    escape.size = 3
    with pytest.raises(GenlabError, match="outside"):
        extract_archive(_tar_with(tmp_path, escape, b"abc"), dest)
    zpath = tmp_path / "upload.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        info = zipfile.ZipInfo("link")
        info.external_attr = 0o120777 << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(GenlabError, match="symbolic link"):
        extract_archive(zpath, dest)
    assert list(dest.iterdir()) == [] and not (tmp_path.parent / "escape.txt").exists()


def test_a_clean_archive_unpacks_inside(tmp_path):
    zpath = tmp_path / "videos.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("a/one.mp4", b"x")
        zf.writestr("two.mp4", b"y")
    dest = tmp_path / "dest"
    dest.mkdir()
    assert [p.relative_to(dest).as_posix() for p in extract_archive(zpath, dest)] == ["a/one.mp4", "two.mp4"]


def test_sessions_get_their_own_folders_and_lose_them_on_close(tmp_path):
    ws = Workspace(tmp_path)
    a, b = ws.job("session-a", "t2i"), ws.job("session-b", "t2i")
    assert a.parent != b.parent and ws.job("session-a", "t2i").name == "t2i-002"
    ws.close("session-a")
    assert not a.parent.exists() and b.exists()
    assert ws.session("../../etc").parent == tmp_path / "sessions"  # an id cannot name another place


def test_a_user_error_in_a_job_is_one_message(tmp_path):
    from genlab.serve.jobs import run_genlab

    with pytest.raises(GenlabError, match="no model.safetensors or ema.safetensors") as err:
        list(run_genlab(["t2i", "sample", "--model", str(tmp_path), "--prompt", "x", "--out", "x.png"], tmp_path,
                        env={"PYTHONPATH": os.pathsep.join([str(p) for p in _src()])}))
    assert "\n" not in str(err.value)


def _src():
    from tests.helpers import ROOT

    return [ROOT / "src"]


def test_serve_refuses_a_missing_model_path(tmp_path, capsys):
    from tests.helpers import assert_user_error, run_cli_inprocess

    code, _, err = run_cli_inprocess(["serve", "--t2i-model", str(tmp_path / "nowhere"), "--workdir",
                                      str(tmp_path / "work")], capsys)
    assert_user_error(code, err, "--t2i-model", "nowhere")
    assert not (tmp_path / "work").exists()
