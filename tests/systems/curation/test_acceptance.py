"""Acceptance figures (slow tier). Every test set is generated from a fixed seed; the detector and
OCR settings were tuned on other seeds (cuts: 1-3, dissolves: 10-11, text: 100-105)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy.stats import spearmanr

from genlab.core.data.video import iter_frames
from genlab.systems.video.curation import synthetic
from genlab.systems.video.curation.config import CutConfig, MotionConfig, TextConfig, tiny
from genlab.systems.video.curation.cuts import detect_cuts
from genlab.systems.video.curation.pipeline import process_video, sample_clip_frames
from genlab.systems.video.curation.stages import MotionStage, TextStage

pytestmark = pytest.mark.slow


def cut_scores(truth: synthetic.CutsTruth, cuts: list[int], tol: int = 1) -> dict:
    """Hard-cut precision/recall within +-tol frames; a fade counts as found when one detection lies
    inside its span (+-tol); detections that match neither (or a second one in a fade) are false."""
    matched, found, false = set(), set(), []
    for c in cuts:
        hard = [h for h in truth.hard_cuts if abs(h - c) <= tol and h not in matched]
        if hard:
            matched.add(hard[0])
            continue
        fades = [i for i, (a, b) in enumerate(truth.fades) if a - tol <= c <= b + tol and i not in found]
        if fades:
            found.add(fades[0])
            continue
        false.append(c)
    tp = len(matched)
    return {"precision": tp / max(1, tp + len(false)), "recall": tp / len(truth.hard_cuts),
            "fades": len(found) / max(1, len(truth.fades)), "false": false}


def test_cuts_20_hard_10_fades(tmp_path):
    truth = synthetic.cuts_video(tmp_path / "cuts.mp4", seed=0, n_hard=20, n_fades=10)
    assert len(truth.hard_cuts) == 20 and len(truth.fades) == 10
    assert all(15 <= b - a + 1 <= 30 for a, b in truth.fades)
    result = detect_cuts(tmp_path / "cuts.mp4", CutConfig(), 30.0)
    s = cut_scores(truth, result.cuts)
    print(f"\ncuts: precision {s['precision']:.3f} recall {s['recall']:.3f} fades {s['fades']:.2f} false {s['false']}")
    assert s["precision"] >= 0.95 and s["recall"] >= 0.95
    assert s["fades"] >= 0.9


def test_no_cuts_in_a_20_second_smooth_pan(tmp_path):
    synthetic.pan_video(tmp_path / "pan.mp4", seed=0, seconds=20.0, speed=2.0)
    assert detect_cuts(tmp_path / "pan.mp4", CutConfig(), 30.0).cuts == []


def test_no_cuts_in_opencv_vtest(shared_data):
    path = shared_data / "video" / "opencv_vtest_480x360.avi"
    result = detect_cuts(path, CutConfig(), 10.0)
    assert result.num_frames == 795
    assert result.cuts == []


def test_sports2d_one_cut_at_frame_164(shared_data):
    result = detect_cuts(shared_data / "video" / "sports2d_demo.mp4", CutConfig(), 30.0)
    assert len(result.cuts) == 1 and abs(result.cuts[0] - 164) <= 1, result.cuts


def _table_config():
    cfg = tiny()
    return replace(cfg, text=replace(cfg.text, enabled=False), clips=replace(cfg.clips, write_clips=False))


def test_slow_dips_to_black_12(tmp_path):
    """Same-scene dips to black (30, 40, 60 frames each way, grain), 4 of each, 25 fps."""
    path = tmp_path / "dips.mp4"
    truth = synthetic.dip_video(path, seed=0, ramps=(30, 40, 60), repeats=4)
    result = detect_cuts(path, CutConfig(), 25.0)
    inside = [any(a <= c <= b + 1 for c in result.cuts) for a, b in truth.dark]
    false = [c for c in result.cuts if not any(a <= c <= b for a, b in truth.dips)]
    print(f"\ndips: {sum(inside)}/{len(inside)} split inside the dark span; false cuts {false}")
    assert sum(inside) / len(inside) >= 0.9 and not false
    luma = np.array([synthetic.mean_luma(f.image) for f in iter_frames(path)])
    rows = process_video(path, _table_config(), tmp_path / "out")
    darkest = min(luma[r["start_frame"]:r["end_frame"]].min() for r in rows)
    print(f"dips: {len(rows)} clips, darkest frame in a clip {darkest:.1f} (threshold 12)")
    assert darkest >= 12.0


def test_cross_dissolves_12(tmp_path):
    """Cross-dissolves of 12, 24 and 48 frames, 4 of each, both shots moving, 30 fps."""
    path = tmp_path / "dissolves.mp4"
    truth = synthetic.dissolve_video(path, seed=0, lengths=(12, 24, 48), repeats=4)
    cuts = detect_cuts(path, CutConfig(), 30.0).cuts
    inside = [any(a <= c <= b + 1 for c in cuts) for a, b in truth.fades]
    false = [c for c in cuts if not any(a <= c <= b + 1 for a, b in truth.fades)]
    print(f"\ndissolves: {sum(inside)}/{len(inside)} split inside the transition; false cuts {false}")
    assert sum(inside) / len(inside) >= 0.9 and not false


def test_no_cut_on_a_1080p_counter_overlay(tmp_path):
    path = tmp_path / "counter.mp4"
    synthetic.counter_video(path, seconds=30.0, fps=10, size=(1920, 1080))
    assert detect_cuts(path, CutConfig(), 10.0).cuts == []


def test_a_90_second_shot_is_split_under_max_clip_s(tmp_path):
    path = tmp_path / "long.mp4"
    n = synthetic.pan_video(path, seed=7, seconds=90.0, speed=1.0, size=(160, 90))
    cfg = _table_config()
    rows = process_video(path, cfg, tmp_path / "one")
    assert len(rows) == 1 and rows[0]["duration_s"] == pytest.approx(90.0, abs=0.1)
    cfg = replace(cfg, clips=replace(cfg.clips, max_clip_s=20.0))
    rows = process_video(path, cfg, tmp_path / "split")
    print(f"\n90 s shot, max 20 s: {[round(r['duration_s'], 2) for r in rows]}")
    assert len(rows) == 5 and all(r["duration_s"] <= 20.0 + 1e-6 for r in rows)
    # each clip starts where the previous scene ended (or up to 0.5 s later, on a keyframe: stream copy)
    assert all(0 <= b["start_frame"] - a["end_frame"] <= 15 for a, b in zip(rows, rows[1:])) and rows[-1]["end_frame"] == n
    assert {r["start_by"] for r in rows[1:]} == {"max_len"}


def test_motion_spearman_and_static(tmp_path):
    speeds = [0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0]  # px/frame at 30 fps
    scores = []
    for i, v in enumerate(speeds):
        path = tmp_path / f"m{i}.mp4"
        synthetic.motion_video(path, v, seed=300 + i, seconds=3.0)
        clip = sample_clip_frames(path, [{"start_s": 0.0, "end_s": 3.0}], tiny(), 1)[0]
        scores.append(MotionStage(MotionConfig())({}, clip)["motion_score"])
    rho = spearmanr(speeds, scores).statistic
    print(f"\nmotion: spearman {rho:.3f}; scores {np.round(scores, 2).tolist()} (px/s; true = 30 x speed)")
    assert rho >= 0.95
    assert scores[0] < 0.5  # px/s, against 30 px/s for 1 px/frame


def test_text_ratio_error(tmp_path):
    cases = [(1, 1.0), (2, 1.0), (3, 1.2), (4, 0.9), (5, 1.0), (2, 2.0), (6, 0.8), (0, 1.0)]
    errors = []
    for seed, (lines, scale) in enumerate(cases):
        path = tmp_path / f"t{seed}.mp4"
        truth = synthetic.text_video(path, n_lines=lines, seed=seed, seconds=1.5, scale=scale)
        clip = sample_clip_frames(path, [{"start_s": 0.0, "end_s": 1.5}], tiny(), 1)[0]
        got = TextStage(TextConfig())({}, clip)["text_ratio"]
        errors.append((round(truth, 3), round(got, 3), round(abs(got - truth), 3)))
    print(f"\ntext (truth, got, error): {errors}")
    assert max(e[2] for e in errors) <= 0.03
