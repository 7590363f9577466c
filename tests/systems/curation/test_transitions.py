"""Slow dips to black, cross-dissolves and small-area overlays (fast tier: small seeded clips; the
full acceptance sets are in test_acceptance.py)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from genlab.core.data.video import iter_frames
from genlab.systems.video.curation import synthetic
from genlab.systems.video.curation.config import CutConfig, tiny
from genlab.systems.video.curation.cuts import detect_cuts
from genlab.systems.video.curation.pipeline import process_video


def fast_config():
    """tiny() without OCR and clip files: the cut and clip tables are what these tests read."""
    cfg = tiny()
    return replace(cfg, text=replace(cfg.text, enabled=False), clips=replace(cfg.clips, write_clips=False))


def frame_lumas(path) -> np.ndarray:
    return np.array([synthetic.mean_luma(f.image) for f in iter_frames(path)])


@pytest.fixture(scope="module")
def dips(tmp_path_factory):
    path = tmp_path_factory.mktemp("dips") / "dips.mp4"
    return path, synthetic.dip_video(path, seed=3, ramps=(30, 40, 60), size=(160, 90))


@pytest.fixture(scope="module")
def dissolves(tmp_path_factory):
    path = tmp_path_factory.mktemp("dissolves") / "dissolves.mp4"
    return path, synthetic.dissolve_video(path, seed=3, lengths=(12, 24, 48), size=(160, 90))


def test_slow_dips_split_inside_the_dark_span(dips):
    path, truth = dips
    cuts = detect_cuts(path, CutConfig(), 25.0).cuts
    for a, b in truth.dark:
        assert any(a <= c <= b + 1 for c in cuts), ((a, b), cuts)
    assert len(cuts) == len(truth.dips), cuts


def test_no_clip_runs_through_black(dips, tmp_path):
    path, truth = dips
    rows = process_video(path, fast_config(), tmp_path)
    luma = frame_lumas(path)
    assert all(r["status"] == "ok" for r in rows), rows
    assert len(rows) == len(truth.dips) + 1
    for r in rows:
        assert luma[r["start_frame"]:r["end_frame"]].min() >= 12.0, r  # PySceneDetect ThresholdDetector default


def test_cross_dissolves_split_inside_the_transition(dissolves):
    path, truth = dissolves
    cuts = detect_cuts(path, CutConfig(), 30.0).cuts
    for a, b in truth.fades:
        assert any(a <= c <= b + 1 for c in cuts), ((a, b), cuts)
    assert len(cuts) == len(truth.fades), cuts


def test_each_boundary_names_its_detector(dips, dissolves, small_cuts, tmp_path):
    rows = process_video(dips[0], fast_config(), tmp_path / "a") + process_video(dissolves[0], fast_config(), tmp_path / "b")
    by = {r["start_by"] for r in rows} | {r["end_by"] for r in rows}
    assert {"start", "end", "fade", "dissolve"} <= by, by
    result = detect_cuts(small_cuts[0], CutConfig(), 30.0)
    assert len(result.detectors) == len(result.cuts)
    hard = {d for c, d in zip(result.cuts, result.detectors) if c in small_cuts[1].hard_cuts}
    assert hard == {"content@1/1"}, hard


def test_no_cut_on_a_counter_overlay(tmp_path):
    """A still picture with a frame counter and time stamp at 10 fps (the text widens at 9 -> 10)."""
    path = tmp_path / "counter.mp4"
    synthetic.counter_video(path, seconds=4.0, fps=10, size=(640, 360))
    assert detect_cuts(path, CutConfig(), 10.0).cuts == []


def test_no_cut_when_a_caption_box_appears(tmp_path):
    """A lower-third caption plate (15% of the frame) appears on a still shot: a change small in
    area, not a new scene."""
    path = tmp_path / "caption.mp4"
    synthetic.caption_box_video(path, seconds=3.0, fps=25, size=(320, 180))
    assert detect_cuts(path, CutConfig(), 25.0).cuts == []


def test_long_shots_split_under_max_clip_s_never_inside_a_transition():
    from genlab.systems.video.curation.clipping import scenes_from_cuts

    times = np.arange(900) / 30.0
    scores = np.ones(900)
    scores[445] = 0.0  # the calmest frame: inside a dissolve, so not taken
    scenes = scenes_from_cuts([], times, 30.0, 1.0, max_clip_s=16.0, scores=scores, transitions=[(440, 460)])
    assert len(scenes) == 2 and all(s.end_s - s.start_s <= 16.0 + 1e-9 for s in scenes)
    assert not 440 <= scenes[1].start_frame <= 461, scenes
    assert [s.start_by for s in scenes] == ["start", "max_len"] and scenes[-1].end_by == "end"
    scores[480] = 0.0  # a calm frame outside the transition, within reach: taken
    assert scenes_from_cuts([], times, 30.0, 1.0, max_clip_s=16.0, scores=scores, transitions=[(440, 460)])[1].start_frame == 480


def test_a_video_shorter_than_the_dissolve_windows_is_curated(tmp_path):
    """8 frames at 8 fps: fewer frames than 2k for the dissolve test's windows; it has no dissolve, not a failure."""
    rng = np.random.default_rng(0)
    frames = [np.roll(synthetic.texture(rng, 96, 96), i, axis=1) for i in range(8)]
    path = synthetic.write_video(tmp_path / "short.mp4", frames, fps=8)
    cfg = replace(fast_config(), clips=replace(fast_config().clips, write_clips=False, min_clip_s=0.5))
    rows = process_video(path, cfg, tmp_path / "out")
    assert rows[0]["status"] == "ok", rows[0]["error"]


def test_dissolve_blocks_do_not_change_the_result(dissolves):
    """Frames are correlated in blocks as they come: any block size gives the same candidate
    frames (every product computed once, none missed at a block edge)."""
    from genlab.systems.video.curation.transitions import DissolveDetector

    path, truth = dissolves
    images = [f.image for f in iter_frames(path)]
    found = {}
    for block in (7, 64, 10_000):
        det = DissolveDetector(CutConfig(), 30.0)
        det.BLOCK = block
        for image in images:
            det.add(image)
        found[block] = (det.dissolves(), list(det.hits))
    assert len(found[64][0]) == len(truth.fades)
    assert found[7] == found[64] == found[10_000]
