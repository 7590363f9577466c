import json

import numpy as np
import pytest

from genlab.core.pose.skeletons import HALPE26, OPENPOSE25
from genlab.errors import GenlabError
from genlab.systems.motion import fit_program, make_sequence
from genlab.systems.motion.io import load_alphapose, load_bvh, load_keypoints, load_npy, load_openpose


def _seq():
    return make_sequence("jumping_jack", 2, count=3).keypoints  # (T, 17, 2) COCO


def _halpe(coco: np.ndarray) -> np.ndarray:
    out = np.zeros((26, 2))
    out[:17] = coco
    out[17:] = coco[:9].mean(0)
    return out


def _alphapose_dets(kp, box_key, list_ids):
    dets = []
    for t, frame in enumerate(kp):
        for pid, shift in ((1, 0.0), (2, 500.0)):  # the main person plus a smaller one in some frames
            if pid == 2 and t % 3:
                continue
            pts = _halpe(frame * (1.0 if pid == 1 else 0.3) + shift)
            flat = np.concatenate([pts, np.full((26, 1), 0.9)], 1).reshape(-1).tolist()
            dets.append({"image_id": f"{t}.jpg", "category_id": 1, "keypoints": flat, "score": 2.5,
                         box_key: [0, 0, 100 if pid == 1 else 30, 200 if pid == 1 else 60],
                         "idx": [pid] if list_ids else pid})
    return dets


@pytest.mark.parametrize("box_key,list_ids", [("box", False), ("bbox", True)])
def test_alphapose_main_track(tmp_path, box_key, list_ids):
    kp = _seq()
    path = tmp_path / "alphapose-results.json"
    path.write_text(json.dumps(_alphapose_dets(kp, box_key, list_ids)))
    track = load_alphapose(path)
    assert track.skeleton == HALPE26.name and track.xy.shape == (len(kp), 26, 2)
    np.testing.assert_allclose(track.coco17().xy, kp, atol=1e-9)


def test_openpose_folder_without_ids(tmp_path):
    kp = _seq()
    inv = np.argsort(OPENPOSE25.coco17_index)  # not needed for a bijection check; build BODY_25 directly
    del inv
    for t, frame in enumerate(kp):
        people = []
        for shift in (0.0, 700.0):
            body = np.zeros((25, 3))
            body[list(OPENPOSE25.coco17_index), :2] = frame + shift
            body[list(OPENPOSE25.coco17_index), 2] = 0.8
            people.append({"person_id": [-1], "pose_keypoints_2d": body.reshape(-1).tolist()})
        if t == 5:
            people = people[::-1]  # order changes: nearest-neighbour tracking must keep the same person
        (tmp_path / f"clip_{t:012d}_keypoints.json").write_text(json.dumps({"version": 1.3, "people": people}))
    track = load_openpose(tmp_path)
    coco = track.coco17().xy
    ok = np.isfinite(coco).all(-1)
    assert ok[:, :17].all()
    first = coco[0, 0, 0]
    shift = 0.0 if abs(first - kp[0, 0, 0]) < 1 else 700.0
    np.testing.assert_allclose(coco, kp + shift, atol=1e-9)


def test_npy_and_dispatch(tmp_path):
    kp = _seq()
    np.save(tmp_path / "k.npy", kp)
    assert load_keypoints(tmp_path / "k.npy").xy.shape == kp.shape
    conf = np.concatenate([kp, np.ones(kp.shape[:2] + (1,))], -1)
    np.save(tmp_path / "c.npy", conf)
    assert load_npy(tmp_path / "c.npy").conf.min() == 1.0


def test_bvh_projection(shared_data):
    track = load_bvh(shared_data / "motion" / "walk_120fps.bvh", fps=30)
    assert track.xy.shape == (266, 17, 2) and np.isfinite(track.xy).all()
    # head above ankles (y down) except in a short capture glitch around frame 138; legs swing
    assert (track.xy[:, 0, 1] < track.xy[:, 15, 1]).mean() > 0.95
    a = track.xy[:, 15, 0] - track.xy[:, 15, 0].mean()
    assert np.mean(np.diff(np.sign(a)) != 0) > 0.04  # many zero crossings: periodic


@pytest.mark.parametrize("content", ["", "[", '{"foo": 1}', "[]"])
def test_bad_json_is_one_clear_error(tmp_path, content):
    path = tmp_path / "a.json"
    path.write_text(content)
    with pytest.raises(GenlabError, match="a.json"):
        load_keypoints(path)


def test_truncated_bvh(tmp_path, shared_data):
    text = (shared_data / "motion" / "walk_120fps.bvh").read_text()
    path = tmp_path / "cut.bvh"
    path.write_text(text[: len(text) // 2])
    with pytest.raises(GenlabError, match="truncated|malformed"):
        load_bvh(path)
    (tmp_path / "x.bvh").write_text("")
    with pytest.raises(GenlabError):
        load_bvh(tmp_path / "x.bvh")


def test_bad_arrays(tmp_path):
    np.save(tmp_path / "nan.npy", np.full((30, 17, 2), np.nan))
    np.save(tmp_path / "one.npy", np.zeros((1, 17, 2)))
    np.save(tmp_path / "j12.npy", np.zeros((30, 12, 2)))
    (tmp_path / "trunc.npy").write_bytes(b"\x93NUMPY\x01\x00v\x00{'descr'")
    for name in ("nan.npy", "one.npy"):
        with pytest.raises(GenlabError):
            fit_program(load_keypoints(tmp_path / name).coco17().xy)
    for name in ("j12.npy", "trunc.npy"):
        with pytest.raises(GenlabError):
            load_keypoints(tmp_path / name)
