"""`genlab video` commands: help, and bad input as one error line with exit code 2."""

from __future__ import annotations

from tests.helpers import run_genlab


def test_video_commands_are_registered():
    result = run_genlab("video", "--help")
    assert result.returncode == 0, result.stderr
    for cmd in ("demo", "train", "sample", "convert"):
        assert cmd in result.stdout


def test_bad_input_is_one_line(tmp_path):
    result = run_genlab("video", "convert", "--unet", str(tmp_path / "missing.safetensors"), "--out", str(tmp_path / "o"))
    assert result.returncode == 2
    lines = [ln for ln in result.stderr.strip().splitlines() if ln]
    assert len(lines) == 1 and "not found" in lines[0]
    assert not (tmp_path / "o").exists()
    result = run_genlab("video", "sample", "--weights", str(tmp_path), "--image", "x.png", "--out", str(tmp_path / "a.gif"))
    assert result.returncode == 2 and "ema.safetensors" in result.stderr
