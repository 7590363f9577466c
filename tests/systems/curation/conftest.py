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
    (folder / "truncated.mp4").write_bytes(data[: len(data) // 2])
    # a container with a video stream header and not one frame
    out = av.open(str(folder / "noframes.avi"), "w")
    stream = out.add_stream("mpeg4", rate=30)
    stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
    out.start_encoding()
    out.close()
    return folder
