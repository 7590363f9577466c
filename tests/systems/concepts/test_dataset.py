import numpy as np
import pytest

from genlab.errors import GenlabError
from genlab.systems.motion.concepts import dataset
from genlab.systems.motion.concepts.description import Action, Description
from genlab.systems.motion.synthetic import MOTIONS


def test_generator_is_extended_with_the_concept_vocabulary():
    dataset.make_sequence(np.random.default_rng(0))
    assert set(dataset.NAMES) <= set(MOTIONS) and len(dataset.NAMES) >= 6


def test_sequences_keep_exact_labels_at_the_fixed_difficulty():
    diff = dataset.Difficulty()
    assert (diff.jitter, diff.drop, diff.speed, diff.amplitude, diff.mirror) == (0.02, 0.05, (0.7, 1.5), (0.7, 1.3), 0.5)
    seqs = [dataset.make_sequence(np.random.default_rng([5, i])) for i in range(12)]
    for s in seqs:
        d = s.description.validate(dataset.NAMES)
        assert 2 <= len(d.actions) <= 6 and all(2 <= a.count <= 8 for a in d.actions)
        assert all(a != b for a, b in zip(d.concepts, d.concepts[1:]))
        assert s.keypoints.shape == (d.n_frames, 17, 2) and s.clean.shape == s.keypoints.shape
        resid = (s.keypoints - s.clean) / s.body_height
        assert 0.015 < resid.std() < 0.025
    assert 0.2 < np.mean([s.mirrored for s in seqs]) < 0.8
    # 5% of frames dropped: generated frames vs kept frames
    ratio = np.mean([s.description.n_frames / np.ceil(s.program.duration) for s in seqs])
    assert 0.93 < ratio < 0.97


def test_splits_are_seeded_and_checksummed():
    a, b = dataset.sequences("val", 3), dataset.sequences("val", 3)
    assert dataset.checksum(a) == dataset.checksum(b)
    assert dataset.checksum(a) != dataset.checksum(dataset.sequences("val", 3, seed=1))
    assert len(dataset.few_shot(2, names=("squat",))) == 2


def test_frozen_test_set_checksum():
    assert len(dataset.TEST_SHA256) == 64
    first = dataset.sequences("test", 2)
    assert first[0].description.n_frames > 0


@pytest.mark.slow
def test_frozen_test_set_matches_its_checksum():
    assert dataset.checksum(dataset.test_set(100)) == dataset.TEST_SHA256


def test_loader_round_trip_and_errors(tmp_path):
    s = dataset.make_sequence(np.random.default_rng(3))
    dataset.save_sequence(tmp_path / "a.npz", s.keypoints, description=s.description)
    kp, desc, acts = dataset.load_sequence(tmp_path / "a.npz")
    assert np.array_equal(kp, s.keypoints) and desc == s.description and acts is None
    dataset.save_sequence(tmp_path / "b.npz", s.keypoints, actions=s.description.concepts)
    _, desc, acts = dataset.load_sequence(tmp_path / "b.npz")
    assert desc is None and acts == s.description.concepts
    bad = s.keypoints.copy()
    bad[4, 3] = np.nan
    dataset.save_sequence(tmp_path / "c.npz", bad)
    with pytest.raises(GenlabError, match="NaN"):
        dataset.load_sequence(tmp_path / "c.npz")
    dataset.save_sequence(tmp_path / "d.npz", np.zeros((0, 17, 2)))
    with pytest.raises(GenlabError, match="empty"):
        dataset.load_sequence(tmp_path / "d.npz")
    (tmp_path / "e.npz").write_text("junk")
    with pytest.raises(GenlabError, match="not a concepts sequence"):
        dataset.load_sequence(tmp_path / "e.npz")


def test_golfdb_loader_on_a_small_file_in_its_format(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "kp").mkdir()
    np.save(tmp_path / "kp" / "7.npy", rng.normal(size=(60, 17, 2)) + 100)
    rows = ["id,youtube_id,player,sex,club,view,slow,events,bbox,split",
            '7,abc,X,m,driver,face-on,0,"[100, 102, 110, 118, 125, 130, 133, 140, 150, 160]","[0,0,1,1]",1']
    (tmp_path / "golfDB.csv").write_text("\n".join(rows) + "\n")
    clips = dataset.load_golfdb(tmp_path / "golfDB.csv", tmp_path / "kp")
    assert len(clips) == 1 and clips[0].description.concepts == list(dataset.GOLFDB_EVENTS)
    assert clips[0].description.actions[0] == Action("address", 2, 10, 1)
    assert clips[0].description.actions[-1] == Action("finish", 50, 60, 1)
    (tmp_path / "bad.csv").write_text(rows[0] + "\n" + rows[1].replace("[100, 102", "[102, 100") + "\n")
    with pytest.raises(GenlabError, match="10 increasing"):
        dataset.load_golfdb(tmp_path / "bad.csv", tmp_path / "kp")
    assert isinstance(clips[0].description, Description)
