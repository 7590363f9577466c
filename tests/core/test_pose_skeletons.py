import numpy as np
import pytest

from genlab.core.pose.skeletons import (
    COCO17,
    HALPE26,
    MEDIAPIPE33,
    OPENPOSE18,
    OPENPOSE25,
    body_height,
    skeleton_for,
)
from genlab.errors import GenlabError


def test_layouts_map_to_coco17():
    for skel in (COCO17, HALPE26, MEDIAPIPE33, OPENPOSE25, OPENPOSE18):
        assert len(skel.coco17_index) == 17
        names = [skel.joints[i] for i in skel.coco17_index]
        assert names == list(COCO17.joints)
        assert all(0 <= a < skel.num_joints and 0 <= b < skel.num_joints for a, b in skel.bones)
    assert skeleton_for(26) is HALPE26 and skeleton_for(33) is MEDIAPIPE33
    with pytest.raises(GenlabError, match="19 joints"):
        skeleton_for(19)


def test_mirror_swaps_sides():
    m = COCO17.mirror_index
    assert COCO17.joints[m[COCO17.index("left_wrist")]] == "right_wrist"
    assert m[0] == 0 and sorted(m) == list(range(17))


def test_body_height_is_pose_invariant():
    from genlab.systems.motion.synthetic import rest_pose

    pose = np.array([rest_pose()[j] for j in COCO17.joints])[None] * 300.0
    assert body_height(pose) == pytest.approx(300.0, rel=0.02)
    arms_up = pose.copy()
    arms_up[0, 9:11, 1] -= 200  # wrists overhead: height unchanged
    assert body_height(arms_up) == pytest.approx(body_height(pose))
    with pytest.raises(GenlabError):
        body_height(np.zeros((3, 17, 2)))
