"""Camera-motion tags from the clip's optical flow, near-duplicate marking across the corpus."""

from __future__ import annotations

from dataclasses import replace

import pytest

from genlab.core.data.video import iter_frames
from genlab.systems.video.curation import synthetic
from genlab.systems.video.curation.config import tiny
from genlab.systems.video.curation.pipeline import run, video_id_for
from genlab.systems.video.curation.stages import ClipFrames, MotionStage


def _clip(path, fps: float = 30.0) -> ClipFrames:
    """2 fps samples and the frame after each, as the pipeline gives them."""
    frames = list(iter_frames(path, max_side=480))
    step = int(round(fps / 2))
    samples = frames[::step]
    following = [frames[f.index + 1] if f.index + 1 < len(frames) else None for f in samples]
    return ClipFrames(samples, 2.0, 0.0, frames[-1].time, following=following)


@pytest.mark.parametrize("n_each", [pytest.param(2, id="fast"), pytest.param(10, marks=pytest.mark.slow, id="slow")])
def test_camera_tags(tmp_path, n_each):
    """Generated static / pan / tilt / zoom / shaky clips (seeds 0.., speeds 1-3 px a frame; the
    thresholds were set on seeds 20-25)."""
    stage = MotionStage(tiny().motion)
    results = []
    for kind in synthetic.CAMERA_KINDS:
        for seed in range(n_each):
            path = tmp_path / f"{kind}{seed}.mp4"
            synthetic.camera_video(path, kind, seed=seed, seconds=1.5, speed=1.0 + seed % 3)
            results.append((kind, stage({}, _clip(path))["camera_motion"]))
    right = sum(k == t for k, t in results) / len(results)
    print(f"\ncamera tags right: {right:.2f} {[r for r in results if r[0] != r[1]]}")
    assert right >= 0.9, results


def test_a_reencoded_copy_is_a_duplicate(tmp_path):
    folder = tmp_path / "in"
    synthetic.motion_video(folder / "a.mp4", 1.5, seed=40, seconds=2.5, size=(160, 90))
    synthetic.motion_video(folder / "b.mp4", 1.5, seed=41, seconds=2.5, size=(160, 90))
    synthetic.camera_video(folder / "c.mp4", "zoom", seed=42, seconds=2.5)
    # the same pictures, decoded and encoded again at a lower quality
    synthetic.write_video(folder / "a_copy.mp4", (f.image for f in iter_frames(folder / "a.mp4")), crf=35)
    cfg = replace(tiny(), text=replace(tiny().text, enabled=False), clips=replace(tiny().clips, write_clips=False),
                  filters=())
    run([folder], cfg, tmp_path / "out", progress=False)
    import pyarrow.parquet as pq

    rows = {r["video_id"]: r for r in pq.read_table(tmp_path / "out" / "clips.parquet").to_pylist()}
    original, copy = rows[video_id_for(folder / "a.mp4")], rows[video_id_for(folder / "a_copy.mp4")]
    first, second = sorted([original, copy], key=lambda r: r["clip_id"])
    assert second["dup_of"] == first["clip_id"] and not second["keep"] and second["removed_by"] == "dup_of"
    assert first["dup_of"] is None and first["keep"]
    for name in ("b.mp4", "c.mp4"):
        assert rows[video_id_for(folder / name)]["dup_of"] is None
