"""Real data: the walking BVH and the sports2d video (MediaPipe)."""

import numpy as np
import pytest

from genlab.core.pose.skeletons import MEDIAPIPE33
from genlab.systems.motion import FitConfig, fit_program
from genlab.systems.motion.config import video
from genlab.systems.motion.io import load_bvh

# Counted by hand from the frames of sports2d_demo.mp4 (crop of the man on the roof, frames 0-100):
# arms rise at ~frames 8-20 and 45-55, are overhead at ~20-28 and ~55-62, and back down at ~38-44
# and ~75-80; then he stands and walks away. Two complete jumping jacks.
HAND_COUNT_JUMPING_JACKS = 2
ROI = "300,0,700,520"  # x,y,w,h in the 1768x994 frame: the roof, above the walking woman


def _gait_cycles(xy: np.ndarray, a: int, b: int) -> float:
    """Cycles of the left ankle's forward position in frames [a, b): length / autocorrelation period."""
    x = xy[:, 15, 0]
    x = x - x.mean()
    ac = np.correlate(x, x, "full")[len(x) - 1 :]
    period = 10 + int(np.argmax(ac[10:80]))
    return (b - a) / period


@pytest.mark.slow
def test_bvh_loop_iterations_match_gait_cycles(shared_data):
    xy = load_bvh(shared_data / "motion" / "walk_120fps.bvh", fps=30).xy
    prog = fit_program(xy, FitConfig())
    spans = prog.loop_spans()
    covered = sum(b - a for a, b, _ in spans)
    iters = sum(n for _, _, n in spans)
    cycles = sum(_gait_cycles(xy, int(a), int(b)) for a, b, _ in spans)
    print(f"BVH: loops {spans}; {iters} iterations vs {cycles:.1f} gait cycles in the looped frames; "
          f"whole clip {_gait_cycles(xy, 0, len(xy)):.1f} cycles; coverage {covered / len(xy):.0%}")
    assert covered / len(xy) >= 0.7
    assert abs(iters - cycles) <= 1


def test_mediapipe_finds_the_person_in_a_frame(shared_data):
    from PIL import Image

    from genlab.core.pose.mediapipe_pose import MediaPipePose

    img = np.asarray(Image.open(shared_data / "images" / "sports2d_frame000_884x497.png").convert("RGB"))
    crop = img[0:260, 150:500]  # the man on the roof
    with MediaPipePose() as pose:
        out = pose(crop)
    assert out is not None
    xy, vis = out
    coco = MEDIAPIPE33.to_coco17(xy)
    assert coco[0, 1] < coco[15, 1]  # nose above the ankle
    assert 100 < coco[15, 1] - coco[0, 1] < 260  # a person of plausible size in this crop


def test_mediapipe_rejects_other_complexities():
    from genlab.core.pose.mediapipe_pose import MediaPipePose
    from genlab.errors import GenlabError

    with pytest.raises(GenlabError, match="model_complexity"):
        MediaPipePose(model_complexity=2)


@pytest.mark.slow
def test_sports2d_jumping_jacks_end_to_end(shared_data, tmp_path):
    """The whole clip (he does two jumping jacks, then stands, turns and walks off; MediaPipe loses
    him near the end): one loop of 2 within frames 0-68, nothing looped over frames 135-155, the
    lost end declared missing, an H.264 overlay; the same track as a .trc gives the same program."""
    import json

    from genlab.systems.motion.io import load_keypoints, write_trc
    from genlab.systems.motion.program import Missing
    from tests.helpers import run_genlab

    out = tmp_path / "x"
    r = run_genlab("motion", "extract", str(shared_data / "video" / "sports2d_demo.mp4"), "--roi", ROI,
                   "--min-reps", "2", "--quiet", "-o", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    print("sports2d:", r.stdout.strip().splitlines()[-1], summary["loops"], summary["missing"])
    (jj,) = [lp for lp in summary["loops"] if lp["start"] < 68]
    assert jj["count"] == HAND_COUNT_JUMPING_JACKS and jj["end"] <= 68 + 3
    assert not [lp for lp in summary["loops"] if lp["start"] < 155 and lp["end"] > 135]
    assert summary["missing"] and summary["missing"][-1]["end"] == summary["frames"]  # the lost end
    assert summary["reconstruction_error_px"] < 0.03 * summary["body_height_px"]
    import av

    with av.open(str(out / "overlay.mp4")) as c:
        assert c.streams.video[0].codec_context.name == "h264" and c.streams.video[0].frames == summary["frames"]
    # the same keypoints as a .trc (no confidences there, so compare with the fit that ignores them)
    track = load_keypoints(out / "keypoints_coco17.npy")
    write_trc(tmp_path / "s.trc", track.xy, 30.0, units="px")
    a = fit_program(track.xy, video(min_reps=2))
    b = fit_program(load_keypoints(tmp_path / "s.trc").xy, video(min_reps=2))
    assert a.loop_spans() == b.loop_spans() and a.missing_spans() == b.missing_spans()
    assert [s.kinds for s in a.segments()] == [s.kinds for s in b.segments()]
    assert isinstance(a.statements[-1], Missing)
