import numpy as np
import pytest

from genlab.errors import GenlabError
from genlab.systems.motion.concepts.description import Action, Description, from_frame_labels
from genlab.systems.motion.concepts.metrics import (
    count_mae,
    detection_map,
    frechet_distance,
    keypoint_distance,
    levenshtein,
    norm_edit_distance,
    segment_iou,
)


def _desc():
    return Description(300, (Action("squat", 0, 90, 3), Action("jumping_jack", 96, 180, 4, score=1.25)))


def test_json_and_dsl_round_trip():
    d = _desc()
    assert Description.from_json(d.to_json()) == d
    assert Description.from_dsl(d.to_dsl()) == d
    assert "squat[0:90]: for _ in range(3)" in d.to_dsl()


def test_bad_descriptions_are_one_clear_error():
    with pytest.raises(GenlabError, match="unknown concept"):
        _desc().validate(["squat"])
    with pytest.raises(GenlabError, match="count must be >= 1"):
        Description(10, (Action("squat", 0, 5, 0),)).validate()
    bad = _desc().to_dict()
    bad["version"] = 2
    with pytest.raises(GenlabError, match="version 2 is not supported"):
        Description.from_dict(bad)
    with pytest.raises(GenlabError, match="version 9 is not supported"):
        Description.from_dsl("description frames=3 version=9\n")
    with pytest.raises(GenlabError, match="overlapping"):
        Description(100, (Action("a", 0, 50, 1), Action("b", 40, 60, 1))).validate()


def test_frame_labels_round_trip():
    d = Description(300, (Action("squat", 0, 90, 1), Action("jumping_jack", 96, 180, 1)))
    assert from_frame_labels(d.frame_labels()) == d


def test_levenshtein_and_normed():
    assert levenshtein("kitten", "sitting") == 3
    assert levenshtein([], ["a"]) == 1
    assert norm_edit_distance(["a", "b"], ["a", "b", "c", "d"]) == 0.5
    assert norm_edit_distance(["a", "x", "y", "z", "w"], ["a"], "true") == 4.0
    assert norm_edit_distance(["a", "x", "y", "z", "w"], ["a"], "max") == 0.8


def test_map_perfect_and_shifted():
    t = [_desc()]
    assert detection_map(t, t)["mAP"] == pytest.approx(1.0)
    # shifted by 40 of 90 frames: IoU = 50/130 = 0.385 -> hit at 0.1/0.3, miss at 0.5 for squat
    p = [Description(300, (Action("squat", 40, 130, 3), Action("jumping_jack", 96, 180, 4)))]
    assert segment_iou((40, 130), (0, 90)) == pytest.approx(50 / 130)
    m = detection_map(p, t)
    assert m["mAP@0.1"] == pytest.approx(1.0) and m["mAP@0.5"] == pytest.approx(0.5)
    # a confident false positive ranked first halves precision at the first recall step
    p2 = [Description(300, (Action("squat", 0, 90, 3, score=1.0), Action("squat", 200, 290, 3, score=5.0)))]
    t2 = [Description(300, (Action("squat", 0, 90, 3),))]
    assert detection_map(p2, t2)["mAP@0.5"] == pytest.approx(0.5)


def test_count_mae():
    p = [Description(300, (Action("squat", 0, 90, 5), Action("jumping_jack", 96, 180, 4)))]
    assert count_mae(p, [_desc()]) == pytest.approx(1.0)
    assert count_mae([Description(300, ())], [_desc()]) == pytest.approx(3.5)


def test_kd_is_timing_free_and_fid_is_zero_on_equal():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 5, 2))
    slow = np.repeat(x, 2, axis=0)
    assert keypoint_distance(slow, x) == pytest.approx(0.0, abs=1e-12)
    assert keypoint_distance(x + np.array([0.3, 0.4]), x) == pytest.approx(0.5)
    f = rng.normal(size=(500, 4))
    assert frechet_distance(f, f) == pytest.approx(0.0, abs=1e-6)
    # analytic: shift the mean by 2 in one coordinate -> FD about 4
    assert frechet_distance(f, f + np.array([2.0, 0, 0, 0])) == pytest.approx(4.0, abs=1e-6)
