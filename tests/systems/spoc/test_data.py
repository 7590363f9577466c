from pathlib import Path

import pytest

from genlab.errors import GenlabError
from genlab.systems.spoc.data import (
    committed_subset_ids,
    ids_checksum,
    load_testcases,
    load_tsv,
    parse_testcases,
    seeded_subset,
    select_ids,
)
from tests.helpers import SHARED_DATA

HEADER = "text\tcode\tworkerid\tprobid\tsubid\tline\tindent\n"


def write(tmp_path, body, name="x.tsv"):
    path = tmp_path / name
    path.write_text(HEADER + body)
    return path


def test_programs_split_where_line_returns_to_zero(tmp_path):
    path = write(tmp_path, "\tint main() {\t1\tP1\t7\t0\t0\nread n\tcin >> n;\t1\tP1\t7\t1\t1\n\t}\t1\tP1\t7\t2\t0\n"
                           "\tint main() {\t2\tP1\t7\t0\t0\n\t}\t2\tP1\t7\t1\t0\n")
    programs = load_tsv(path)
    assert [len(p.lines) for p in programs] == [3, 2]
    assert programs[0].uid != programs[1].uid  # same submission, two workers
    assert programs[0].annotated_indices == [1]
    assert programs[0].lines[1].code == "cin >> n;" and programs[0].lines[1].indent == 1


@pytest.mark.parametrize("body, needle", [
    ("a\tb\t1\tP\t1\t0\n", "expected 7 tab-separated fields"),
    ("a\tb\t1\tP\t1\tzero\t0\n", "field 'line' expected an integer, got 'zero'"),
    ("a\tb\t1\tP\t1\t0\t-1\n", "field 'indent' expected a non-negative integer"),
    ("a\tb\t1\tP\t1\t1\t0\n", "field 'line' expected 0"),
    ("a\tb\t1\tP\t1\t0\t0\na\tb\t1\tP\t1\t2\t0\n", "field 'line' expected 1 (next line), got 2"),
    ("a\tb\t1\tP\t1\t0\t0\na\tb\t1\tQ\t1\t1\t0\n", "field 'probid'/'subid' changed"),
])
def test_malformed_rows_name_file_row_and_field(tmp_path, body, needle):
    path = write(tmp_path, body)
    with pytest.raises(GenlabError) as err:
        load_tsv(path)
    message = str(err.value)
    assert needle in message and str(path) in message
    assert ":2:" in message or ":3:" in message


def test_bad_header_and_missing_file(tmp_path):
    bad = tmp_path / "h.tsv"
    bad.write_text("text\tcode\n")
    with pytest.raises(GenlabError, match="header expected columns"):
        load_tsv(bad)
    with pytest.raises(GenlabError, match="not found"):
        load_tsv(tmp_path / "nope.tsv")


def test_testcases_format(tmp_path):
    d = tmp_path / "P1"
    d.mkdir()
    (d / "P1_testcases_public.txt").write_text("1 2\n###ENDINPUT###\n3\n###ENDOUTPUT###\n5\n###ENDINPUT###\n5\n###ENDOUTPUT###\n")
    cases = load_testcases(tmp_path, "P1", "public")
    assert [(c.input, c.output) for c in cases] == [("1 2\n", "3\n"), ("5\n", "5\n")]
    (d / "bad.txt").write_text("1\n###ENDINPUT###\n2\n")
    with pytest.raises(GenlabError, match="not closed"):
        parse_testcases(d / "bad.txt")
    with pytest.raises(GenlabError, match="expected 'public' or 'hidden'"):
        load_testcases(tmp_path, "P1", "secret")


def test_seeded_subset_is_fixed(tmp_path):
    body = "".join(f"\tx;\t1\tP{i}\t{i}\t0\t0\n" for i in range(50))
    programs = load_tsv(write(tmp_path, body))
    a, b = seeded_subset(programs, 10, seed=3), seeded_subset(programs, 10, seed=3)
    assert [p.uid for p in a] == [p.uid for p in b] and len(a) == 10
    assert [p.uid for p in seeded_subset(programs, 10, seed=4)] != [p.uid for p in a]


def test_committed_subset_matches_the_real_testp():
    ids = committed_subset_ids()
    assert len(ids) == 200 and len(set(ids)) == 200
    assert ids_checksum(ids) == "bb499a125e62427d"  # fixed before any tuning
    tsv = SHARED_DATA / "spoc" / "test" / "spoc-testp.tsv"
    if not tsv.is_file():
        pytest.skip(f"SPoC data not found at {tsv}")
    programs = load_tsv(tsv)
    assert len(programs) == 1815
    assert [p.uid for p in seeded_subset(programs, 200, seed=0)] == ids
    chosen = select_ids(programs, ids)
    assert all((SHARED_DATA / "spoc" / "testcases" / p.probid).is_dir() for p in chosen)


def test_localiser_weights_round_trip_through_save_weights(tmp_path):
    import torch

    from genlab.errors import GenlabError
    from genlab.systems.spoc.localiser import LocaliserConfig, MulticlassLocaliser

    model = MulticlassLocaliser(LocaliserConfig(buckets=64, epochs=3))
    model.weight = torch.arange(64, dtype=torch.float32)
    model.save(tmp_path / "loc")
    assert sorted(p.name for p in (tmp_path / "loc").iterdir()) == ["localiser.json", "localiser.safetensors"]
    back = MulticlassLocaliser.load(tmp_path / "loc")
    assert back.config == model.config and torch.equal(back.weight, model.weight)
    weights = tmp_path / "loc" / "localiser.safetensors"
    weights.write_bytes(weights.read_bytes()[:40])  # truncated: one clear error naming the file
    with pytest.raises(GenlabError, match="localiser.safetensors"):
        MulticlassLocaliser.load(tmp_path / "loc")


def test_data_folder_from_the_environment_else_beside_the_project(monkeypatch, tmp_path):
    from genlab.systems.spoc.data import default_data_dir

    monkeypatch.setenv("GENLAB_SPOC_DATA", str(tmp_path))
    assert default_data_dir() == tmp_path
    monkeypatch.delenv("GENLAB_SPOC_DATA")
    project = Path(__file__).resolve().parents[3]  # tests/systems/spoc/ -> the checkout
    assert default_data_dir() == project.parent / "shared" / "data" / "spoc"
