"""Fast checks of decoding, the bad-input reasons, the cut cascade, motion and text on small inputs."""

from __future__ import annotations

import os

import numpy as np
import pytest

from genlab.core.data.video import VideoReadError, iter_frames, probe
from genlab.systems.video.curation import synthetic
from genlab.systems.video.curation.config import CutConfig, MotionConfig, TextConfig
from genlab.systems.video.curation.cuts import detect_cuts
from genlab.systems.video.curation.stages import ClipFrames, MotionStage, TextStage, _text_detector


def test_cv2_is_opencv_python_headless():
    """opencv-python-headless is the only OpenCV allowed; rapidocr/mediapipe must not shadow it."""
    import importlib.metadata as md

    import cv2

    dists = {d.metadata["Name"].lower() for d in md.distributions() if "opencv" in (d.metadata["Name"] or "").lower()}
    assert dists == {"opencv-python-headless"}, dists
    files = md.files("opencv-python-headless") or []
    owned = {str(f.locate().resolve()) for f in files if str(f).startswith("cv2/")}
    assert any(p.endswith("__init__.py") for p in owned)
    assert str(__import__("pathlib").Path(cv2.__file__).resolve()) in owned
    gui = [line.split(":", 1)[1].strip() for line in cv2.getBuildInformation().splitlines()
           if line.strip().startswith("GUI:")]
    assert gui == ["NONE"], gui  # the headless build has no GUI backend


def test_probe_and_frames(small_cuts):
    path, truth = small_cuts
    info = probe(path)
    assert (info.width, info.height, info.codec) == (320, 180, "h264")
    assert info.fps == pytest.approx(30.0)
    assert info.duration_s == pytest.approx(truth.num_frames / 30.0, abs=0.1)
    assert info.bit_rate > 0
    frames = list(iter_frames(path, max_side=160, want=lambda i, t: i % 10 == 0))
    assert len(frames) == truth.num_frames
    assert frames[0].image.shape == (90, 160, 3) and frames[1].image is None
    assert np.all(np.diff([f.time for f in frames]) > 0)


def test_small_bgr_matches_swscale(small_cuts, tmp_path):
    """The plane-based shrink gives the picture swscale gives (up to filter differences), at an
    integer factor of the frame size; a non-4:2:0 frame takes the swscale path at the same size."""
    import av

    from genlab.core.data.video import small_bgr, small_size

    big = tmp_path / "big.mp4"
    synthetic.write_video(big, [synthetic.texture(np.random.default_rng(0), 360, 640)] * 3)
    for path, max_side, expect in [(small_cuts[0], 256, (180, 320)), (big, 256, (180, 320)), (big, 100, (60, 106))]:
        with av.open(str(path)) as c:
            frame = next(c.decode(video=0))
            img = small_bgr(frame, max_side)
            ref = frame.to_ndarray(format="bgr24", width=img.shape[1], height=img.shape[0])
            rgb = frame.reformat(format="yuv444p")
            assert small_bgr(rgb, max_side).shape == img.shape
        factor, w, h = small_size(frame.width, frame.height, max_side)
        assert img.shape == (h, w, 3) == (*expect, 3)
        assert np.abs(img.astype(int) - ref).mean() < 6.0


def test_content_score_is_pyscenedetects(small_cuts):
    """Our shared HSV score equals ContentDetector's own frame score (default weights) frame by frame,
    and the precomputed-score detectors cut where PySceneDetect's own detectors cut."""
    import cv2
    from scenedetect import AdaptiveDetector, ContentDetector, FrameTimecode

    from genlab.systems.video.curation.cuts import _precomputed, content_score

    path, truth = small_cuts
    own, own_a = ContentDetector(), AdaptiveDetector()
    ours, ours_a = _precomputed(ContentDetector)(), _precomputed(AdaptiveDetector)()
    prev, cuts = None, {"own": [], "ours": []}
    for frame in iter_frames(path, max_side=256):
        tc = FrameTimecode(frame.index, 30.0)
        hsv = cv2.cvtColor(frame.image, cv2.COLOR_BGR2HSV)
        ours.score = ours_a.score = content_score(hsv, prev)
        prev = hsv
        cuts["own"] += own.process_frame(tc, frame.image) + own_a.process_frame(tc, frame.image)
        cuts["ours"] += ours.process_frame(tc, None) + ours_a.process_frame(tc, None)
        assert ours._frame_score == pytest.approx(own._frame_score, abs=1e-9)
    assert cuts["own"] and [c.frame_num for c in cuts["ours"]] == [c.frame_num for c in cuts["own"]]


def _pyscenedetect_cuts(cls, scores, **kwargs) -> list[int]:
    from scenedetect import FrameTimecode

    from genlab.systems.video.curation.cuts import _precomputed

    det, out = _precomputed(cls)(**kwargs), []
    for t, score in enumerate(scores):
        det.score = float(score)
        out += [c.frame_num for c in det.process_frame(FrameTimecode(t, 30.0), None)]
    return out + [c.frame_num for c in det.post_process(FrameTimecode(len(scores) - 1, 30.0))]


@pytest.mark.parametrize("seed", range(6))
def test_decision_rules_match_pyscenedetect_detectors(seed):
    """Our array versions of ContentDetector's (flash filter MERGE) and AdaptiveDetector's decision
    rules cut exactly where PySceneDetect's own detectors cut, fed the same scores: bursts of
    cuts closer than min_scene_len, flashes, zero-score stretches, ties at the thresholds."""
    from scenedetect import AdaptiveDetector, ContentDetector

    from genlab.systems.video.curation.cuts import adaptive_detector_cuts, content_detector_cuts

    rng = np.random.default_rng(seed)
    n = 600
    scores = rng.gamma(2.0, 4.0, n)
    spikes = rng.choice(n, 40, replace=False)
    scores[spikes] = rng.uniform(10, 90, 40)
    burst = rng.integers(0, n - 30)
    scores[burst:burst + 30:3] = 60.0  # cuts 3 frames apart: merged
    scores[rng.integers(0, n - 20):][:20] = 0.0  # a still stretch (adaptive's zero mean)
    scores[rng.choice(n, 10)] = 27.0  # exactly at the content threshold
    scores[0] = 0.0
    for min_len in (1, 4, 15):
        assert content_detector_cuts(scores, 27.0, min_len) == _pyscenedetect_cuts(
            ContentDetector, scores, threshold=27.0, min_scene_len=min_len)
        for window in (1, 2, 3):
            assert adaptive_detector_cuts(scores, 3.0, 15.0, window, min_len) == _pyscenedetect_cuts(
                AdaptiveDetector, scores, adaptive_threshold=3.0, min_scene_len=min_len, window_width=window,
                min_content_val=15.0)


@pytest.mark.parametrize("name, reason", [
    ("zero.mp4", "empty file"), ("notvideo.mp4", "not a readable video"),
    ("truncated.mp4", "not a readable video"), ("noframes.avi", "no decodable frames"),
    ("truncated_faststart.mp4", "decoding failed after"),
])
def test_bad_inputs_have_clear_reasons(bad_videos, name, reason):
    with pytest.raises(VideoReadError) as err:
        probe(bad_videos / name)
        list(iter_frames(bad_videos / name))
    assert reason in err.value.reason


def test_cascade_finds_hard_cuts_exactly_and_fades_in_span(small_cuts):
    path, truth = small_cuts
    result = detect_cuts(path, CutConfig(), 30.0)
    cuts = result.cuts
    for c in truth.hard_cuts:
        assert min(abs(c - x) for x in cuts) <= 1, (c, cuts)
    for a, b in truth.fades:
        assert any(a - 1 <= x <= b + 1 for x in cuts), ((a, b), cuts)
    assert len(cuts) == len(truth.hard_cuts) + len(truth.fades), cuts


def _frames(path, fps=2.0, max_side=640):
    frames = list(iter_frames(path, max_side=max_side))
    step = int(round(30 / fps))
    samples = frames[::step]
    return ClipFrames(samples, fps, 0.0, frames[-1].time)


def test_motion_static_is_zero_and_grows_with_speed(tmp_path):
    from genlab.systems.video.curation.config import tiny
    from genlab.systems.video.curation.pipeline import sample_clip_frames

    scores = {}
    for baseline in ("frame", "sample"):
        for speed in (0.0, 1.0, 2.0):
            path = tmp_path / f"m{speed}.mp4"
            if not path.exists():
                synthetic.motion_video(path, speed, seed=3, seconds=2.0)
            clip = sample_clip_frames(path, [{"start_s": 0.0, "end_s": 2.0}], tiny(), 1)[0]
            assert [f.index for f in clip.samples] == [0, 15, 30, 45]
            assert [f.index for f in clip.following] == [1, 16, 31, 46]
            stage = MotionStage(MotionConfig(baseline=baseline))
            scores[baseline, speed] = stage({}, clip)["motion_score"]
    for baseline in ("frame", "sample"):
        s0, s1, s2 = (scores[baseline, v] for v in (0.0, 1.0, 2.0))
        assert s0 < 0.5, scores  # px/s: a still clip is ~0
        # 1 px/frame at 30 fps on a 320 px wide frame = 30 px/s
        assert s1 == pytest.approx(30.0, rel=0.15) and s2 == pytest.approx(60.0, rel=0.15), scores


def test_text_ratio_matches_rendered_area(tmp_path):
    truth = synthetic.text_video(tmp_path / "t.mp4", n_lines=3, seed=2, seconds=1.0)
    out = TextStage(TextConfig(frames=1))({}, _frames(tmp_path / "t.mp4"))
    assert abs(out["text_ratio"] - truth) <= 0.03, (out, truth)
    blank = synthetic.text_video(tmp_path / "b.mp4", n_lines=0, seed=2, seconds=1.0)
    assert blank == 0.0
    assert TextStage(TextConfig(frames=1))({}, _frames(tmp_path / "b.mp4"))["text_ratio"] < 0.01
    # the coarse gate changes nothing where there is text, and skips the full pass where there is none
    ungated = TextStage(TextConfig(frames=1, gate_scale=1.0))({}, _frames(tmp_path / "t.mp4"))
    assert ungated["text_ratio"] == pytest.approx(out["text_ratio"], abs=1e-12)
    stage = TextStage(TextConfig(frames=1))
    blank_img = _frames(tmp_path / "b.mp4").samples[0].image
    assert not stage._has_text_coarse(_text_detector(0.5, 1.1), blank_img)


def test_det_input_is_rapidocrs_preprocessing():
    """The gate's one-call DB input equals rapidocr's own DetPreProcess (shape and values)."""
    from genlab.systems.video.curation.stages import _det_input

    det = _text_detector(0.5, 1.1)
    rng = np.random.default_rng(0)
    for h, w in [(90, 160), (135, 240), (33, 47), (180, 320)]:
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        ours = _det_input(det, img)
        ref = det.get_preprocess(max(h, w))(img)
        assert ours.shape == ref.shape and ours.dtype == ref.dtype == np.float32
        assert np.abs(ours - ref).max() < 1e-6


def test_single_pass_grid_matches_second_pass(small_cuts):
    """The 2 fps samples kept during the cut pass give clip frames like a second decoding pass."""
    from genlab.systems.video.curation.config import tiny
    from genlab.systems.video.curation.pipeline import sample_clip_frames
    from genlab.systems.video.curation.stages import SampleGrid

    path, truth = small_cuts
    grid = SampleGrid(2.0, 480)
    result = detect_cuts(path, CutConfig(), 30.0, grid=grid)
    assert [f.index for f in grid.samples] == list(range(0, truth.num_frames, 15))
    bounds = [0, *result.cuts, truth.num_frames]
    clips = [{"start_frame": a, "end_frame": b, "start_s": a / 30, "end_s": b / 30} for a, b in zip(bounds, bounds[1:])]
    second = sample_clip_frames(path, clips, tiny(), 1)
    for clip, other in zip(clips, second):
        mine = grid.clip_frames(clip["start_frame"], clip["end_frame"], clip["start_s"], clip["end_s"])
        assert all(clip["start_frame"] <= f.index < clip["end_frame"] for f in mine.samples)
        assert abs(len(mine.samples) - len(other.samples)) <= 1
        assert mine.samples[0].index - clip["start_frame"] < 15  # first sample within 1/rate of the start
        for s, g in zip(mine.samples, mine.following):
            assert g is None or g.index == s.index + 1
        assert mine.following[-1] is None or mine.following[-1].index < clip["end_frame"]
        if any(clip["start_frame"] <= b and a < clip["end_frame"] for a, b in truth.fades):
            continue  # a sample inside a fade sees brightness change as flow: depends on where it falls
        a = MotionStage(MotionConfig())({}, mine)["motion_score"]
        b = MotionStage(MotionConfig())({}, other)["motion_score"]
        assert a == pytest.approx(b, rel=0.35, abs=3.0)  # DIS on smooth texture: +-30% per pair


def _avi_copy(mp4, avi):
    """The H.264 stream of `mp4` stream-copied into AVI at 30 fps (through a raw Annex B stream:
    copied straight from MP4, AVI takes the MP4 time base as its frame rate, 20 index entries a frame)."""
    import subprocess

    from genlab.systems.video.curation.clipping import ffmpeg_exe

    raw = avi.with_suffix(".h264")
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-i", str(mp4), "-c", "copy", "-bsf:v", "h264_mp4toannexb",
                    "-f", "h264", str(raw)], check=True)
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-r", "30", "-i", str(raw), "-c", "copy", str(avi)], check=True)
    return avi


def test_avi_clips_are_stream_copied_frame_exact(small_cuts, tmp_path):
    """AVI has no presentation times; with the decoder pts of the cut pass, clips that start on a
    keyframe and end where decode order allows are copied, and decode to exactly the source frames."""
    import av

    from genlab.systems.video.curation.config import ClipConfig, CurationConfig, TextConfig
    from genlab.systems.video.curation.pipeline import process_video

    avi = _avi_copy(small_cuts[0], tmp_path / "cuts.avi")

    def gray(path):
        with av.open(str(path)) as c:
            return [f.to_ndarray(format="gray") for f in c.decode(video=0)]

    source = gray(avi)
    config = CurationConfig(clips=ClipConfig(min_clip_s=0.5), text=TextConfig(enabled=False))
    rows = process_video(avi, config, tmp_path / "out")
    assert all(r["status"] == "ok" for r in rows), rows[0]["error"]
    copies = [r for r in rows if r["clip_method"] == "copy"]
    assert len(rows) >= 5 and len(copies) >= len(rows) // 2, [r["clip_method"] for r in rows]
    for r in copies:
        clip = gray(tmp_path / "out" / r["clip_path"])
        assert len(clip) == r["end_frame"] - r["start_frame"]
        assert all(np.array_equal(a, source[r["start_frame"] + k]) for k, a in enumerate(clip))


def test_mp4_clip_without_close_keyframe_is_copied_with_edit_list(small_cuts, tmp_path):
    """A scene with no keyframe within max_snap_s of its start is copied from the keyframe before
    it; the MP4 edit list hides that preroll, so the clip decodes to exactly the scene's frames."""
    import av

    from genlab.core.data.video import keyframe_times
    from genlab.systems.video.curation.clipping import Scene, plan_clip, write_clip
    from genlab.systems.video.curation.config import ClipConfig

    path, truth = small_cuts
    with av.open(str(path)) as c:
        source = [f.to_ndarray(format="gray") for f in c.decode(video=0)]
    keys = keyframe_times(path)
    cfg, dt = ClipConfig(), 1 / 30
    starts = [f for f in range(1, truth.num_frames - 60)
              if not any(f * dt - 1e-3 <= k <= f * dt + cfg.max_snap_s + 1e-3 for k in keys)]
    assert len(starts) > 20
    written = 0
    for first in starts[:: max(1, len(starts) // 6)][:6]:
        end = first + 45
        scene = Scene(first, end, first * dt, end * dt)
        assert plan_clip(scene, keys, cfg, dt).method == "reencode"  # as before: no edit list allowed
        plan = plan_clip(scene, keys, cfg, dt, editlist_ok=True)
        assert plan.method == "copy_editlist" and plan.key_s < scene.start_s and plan.start_s == scene.start_s
        out = tmp_path / f"clip{first}.mp4"
        method = write_clip(path, out, plan, cfg, dt, frames=(first, end))
        with av.open(str(out)) as c:
            clip = [f.to_ndarray(format="gray") for f in c.decode(video=0)]
        with av.open(str(out)) as c:
            packets = sum(1 for p in c.demux(video=0) if p.size)
        assert len(clip) == end - first, (first, method)
        if method == "copy_editlist":
            written += 1
            assert all(np.array_equal(a, source[first + k]) for k, a in enumerate(clip)), first
            assert packets > len(clip)  # the preroll is in the file, hidden by the edit list
        else:
            assert method == "reencode"  # B-frames reorder across the end: re-encoded, same frame count
    assert written >= 3


def test_stream_info_from_the_cut_pass_matches_a_separate_pass(small_cuts, tmp_path):
    """Keyframes and the stream start noted while decoding equal what a second demuxing pass reads
    (MP4 and, through the frame index, AVI), so the clipping needs no second pass."""
    from genlab.core.data.video import keyframe_times, keyframe_times_from_pts
    from genlab.systems.video.curation.clipping import keyframe_times_by_index

    path, _ = small_cuts
    result = detect_cuts(path, CutConfig(), 30.0)
    info = result.stream_info
    keys = keyframe_times_from_pts(info["keyframe_pts"], info["start_pts"], info["time_base"])
    assert len(keys) >= 2 and keys == keyframe_times(path)
    assert info["start_offset_s"] == 0.0
    avi = _avi_copy(path, tmp_path / "cuts.avi")
    result = detect_cuts(avi, CutConfig(), 30.0)
    by_index = keyframe_times_by_index(result.stream_info["keyframe_pts"], result.frame_pts, result.frame_times)
    assert by_index == pytest.approx(keys, abs=1e-9)


def test_grid_samples_of_a_resumed_clip_are_the_cut_pass_samples(small_cuts, tmp_path):
    from genlab.systems.video.curation.config import tiny
    from genlab.systems.video.curation.pipeline import grid_clip_frames, plan_video

    clips, frames = plan_video(small_cuts[0], tiny(), tmp_path)
    assert frames is not None  # a short video: the samples ride along the cut pass
    again = grid_clip_frames(small_cuts[0], clips[2:4], tiny())
    for a, b in zip(frames[2:4], again):
        assert [f.index for f in a.samples] == [f.index for f in b.samples]
        assert all(np.array_equal(x.extra if x.image is None else x.image, y.extra if y.image is None else y.image)
                   for x, y in zip(a.samples, b.samples))
        assert [g and g.index for g in a.following] == [g and g.index for g in b.following]


def test_text_gate_batch_equals_one_pass_per_frame(tmp_path):
    """A clip's frames go through the coarse text gate as one batch: the same probability maps
    (and answers) as one detector pass per frame."""
    import cv2

    from genlab.systems.video.curation.stages import _det_input

    synthetic.text_video(tmp_path / "t.mp4", n_lines=3, seed=2, seconds=1.0)
    synthetic.text_video(tmp_path / "b.mp4", n_lines=0, seed=2, seconds=1.0)
    images = [_frames(tmp_path / name).samples[0].image for name in ("t.mp4", "b.mp4", "t.mp4")]
    det = _text_detector(0.5, 1.1)
    stage = TextStage(TextConfig())
    assert stage._text_coarse(det, images) == [True, False, True]
    blobs = [_det_input(det, cv2.resize(im, (im.shape[1] // 2, im.shape[0] // 2), interpolation=cv2.INTER_AREA))
             for im in images]
    batch = det.infer(np.concatenate(blobs))[0]
    for i, blob in enumerate(blobs):
        assert np.array_equal(det.infer(blob)[0][0], batch[i])


def test_reencode_runs_on_the_workers_thread_budget(small_cuts, tmp_path, monkeypatch):
    """A re-encoded clip decodes, filters and encodes on `threads` threads (ffmpeg's default, a thread per
    core and more, oversubscribes a pool that already runs a worker per core), and is still exact."""
    import av

    from genlab.systems.video.curation import clipping
    from genlab.systems.video.curation.clipping import ClipPlan, write_clip
    from genlab.systems.video.curation.config import ClipConfig

    path, _ = small_cuts
    commands, run = [], clipping.subprocess.run
    monkeypatch.setattr(clipping.subprocess, "run", lambda cmd, **kw: commands.append(cmd) or run(cmd, **kw))
    dt = 1 / 30
    method = write_clip(path, tmp_path / "c.mp4", ClipPlan("reencode", 10 * dt, 40 * dt), ClipConfig(), dt,
                        frames=(10, 40), threads=1)
    assert method == "reencode"
    (cmd,) = commands
    where = [i for i, a in enumerate(cmd) if a in ("-threads", "-filter_threads")]
    assert [cmd[i + 1] for i in where] == ["1", "1", "1"]
    assert where[1] < cmd.index("-i") < where[2]  # the decoder's (before -i) and the encoder's (after)
    with av.open(str(tmp_path / "c.mp4")) as c:
        assert sum(1 for _ in c.decode(video=0)) == 30


def test_a_video_is_opened_once_for_probe_cuts_and_copies(small_cuts, tmp_path, monkeypatch):
    """Probe, the cut pass and every stream copy read one open input (each open probes the file, which
    decodes frames for some codecs), and the rows equal those of separate opens."""
    import av

    from genlab.systems.video.curation import pipeline
    from genlab.systems.video.curation.config import default

    path, _ = small_cuts
    separate = pipeline.plan_video(path, default(), tmp_path / "a")[0]
    opened, real = [], av.open
    monkeypatch.setattr(av, "open", lambda p, *a, **k: opened.append(str(p)) or real(p, *a, **k))
    shared = pipeline.plan_video(path, default(), tmp_path / "b")[0]
    reads = [p for p in opened if p == str(path)]
    assert len(reads) == 1, opened
    assert sum(r["clip_method"] in ("copy", "copy_editlist") for r in shared) >= 3  # (re-encodes run ffmpeg)
    assert [{k: v for k, v in r.items() if k != "clip_path"} for r in shared] == \
        [{k: v for k, v in r.items() if k != "clip_path"} for r in separate]


@pytest.mark.skipif(not os.path.isdir("/proc/self/task") or (os.cpu_count() or 1) < 2,
                    reason="counts the process's threads in /proc; one core gives swscale no threads to start")
def test_frame_conversions_run_on_the_decoders_thread_budget(small_cuts):
    """Scaled conversions of a decoding pass run on the pass's `threads` (1): PyAV >= 17 otherwise
    gives swscale a thread per core, for the same pixels (more CPU, and a pool that already runs a
    worker per core oversubscribed)."""
    path, _ = small_cuts
    before = len(os.listdir("/proc/self/task"))
    during = [len(os.listdir("/proc/self/task")) for _ in iter_frames(path, max_side=64, threads=1)]
    assert max(during) == before
