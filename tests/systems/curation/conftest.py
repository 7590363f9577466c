"""Seeded synthetic videos shared by the curation tests (generated once per session)."""

from __future__ import annotations

import pytest

from genlab.systems.video.curation import synthetic


@pytest.fixture(scope="session")
def small_cuts(tmp_path_factory):
    """4 hard cuts + 2 fades, 320x180 at 30 fps (~12 s)."""
    path = tmp_path_factory.mktemp("cuts") / "small_cuts.mp4"
    truth = synthetic.cuts_video(path, seed=11, n_hard=4, n_fades=2, shot_frames=(40, 60))
    return path, truth


@pytest.fixture(scope="session")
def bad_videos(tmp_path_factory, small_cuts):
    """The four kinds of bad input the issue names."""
    import av

    folder = tmp_path_factory.mktemp("bad")
    (folder / "zero.mp4").write_bytes(b"")
    (folder / "notvideo.mp4").write_text("this is a text file, not a video\n" * 20)
    data = small_cuts[0].read_bytes()
    (folder / "truncated.mp4").write_bytes(data[: len(data) // 2])  # moov atom (index) at the end: lost
    # the index first (faststart), then half of the frames: opens, then decoding fails part-way
    import subprocess

    from genlab.systems.video.curation.clipping import ffmpeg_exe

    faststart = folder / "faststart.tmp"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-i", str(small_cuts[0]), "-c", "copy", "-movflags",
                    "faststart", "-f", "mp4", str(faststart)], check=True)
    data = faststart.read_bytes()
    faststart.unlink()
    (folder / "truncated_faststart.mp4").write_bytes(data[: len(data) // 2])
    # a container with a video stream header and not one frame
    out = av.open(str(folder / "noframes.avi"), "w")
    stream = out.add_stream("mpeg4", rate=30)
    stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
    out.start_encoding()
    out.close()
    return folder
