import numpy as np

from tests.helpers import run_genlab


def test_cli_describe_align_synthesise(small_model, tmp_path):
    model, _, _ = small_model
    model.save(tmp_path / "m.json")
    from genlab.systems.motion.concepts import dataset
    from tests.systems.concepts.conftest import SMALL

    s = dataset.make_sequence(np.random.default_rng([77, 0]), names=SMALL)
    dataset.save_sequence(tmp_path / "s.npz", s.keypoints, actions=s.description.concepts)
    r = run_genlab("motion", "concepts", "describe", str(tmp_path / "m.json"), str(tmp_path / "s.npz"),
                   "--json", str(tmp_path / "d.json"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("description frames=")
    r = run_genlab("motion", "concepts", "align", str(tmp_path / "m.json"), str(tmp_path / "s.npz"),
                   "--actions", ",".join(s.description.concepts))
    assert r.returncode == 0, r.stderr
    assert [ln.split("[")[0].strip() for ln in r.stdout.splitlines()[1:]] == s.description.concepts
    r = run_genlab("motion", "concepts", "synthesise", str(tmp_path / "m.json"), str(tmp_path / "d.json"),
                   "--out", str(tmp_path / "k.npy"), "--video", str(tmp_path / "v.gif"))
    assert r.returncode == 0, r.stderr
    assert np.load(tmp_path / "k.npy").shape[1:] == (17, 2) and (tmp_path / "v.gif").stat().st_size > 0
    # bad input: one clear line, exit 2, nothing written
    r = run_genlab("motion", "concepts", "align", str(tmp_path / "m.json"), str(tmp_path / "s.npz"),
                   "--actions", "squat,moonwalk")
    assert r.returncode == 2 and "unknown concept 'moonwalk'" in r.stderr and len(r.stderr.splitlines()) == 1
    (tmp_path / "bad.txt").write_text("description frames=10 version=3\n")
    r = run_genlab("motion", "concepts", "synthesise", str(tmp_path / "m.json"), str(tmp_path / "bad.txt"),
                   "--out", str(tmp_path / "never.npy"))
    assert r.returncode == 2 and "version 3 is not supported" in r.stderr
    assert not (tmp_path / "never.npy").exists()
