"""Several captioners per clip and a summariser, each given by a local path, each its own column."""

from __future__ import annotations

import json
import textwrap

import pyarrow.parquet as pq

from genlab.systems.video.curation import synthetic
from tests.helpers import assert_user_error, run_cli_inprocess

# each fake logs one line per call (beside itself): the test counts calls across processes
IMAGE = '''
import json, pathlib
LOG = pathlib.Path(__file__).with_suffix(".log")
def caption(frames):
    LOG.open("a").write(json.dumps([list(f.shape) for f in frames]) + "\\n")
    return f"image of mean {frames[0].mean():.1f}"
'''
VIDEO = '''
import json, pathlib
FRAMES = 0  # every 2 fps sample of the clip
LOG = pathlib.Path(__file__).with_suffix(".log")
def caption(frames):
    LOG.open("a").write(json.dumps([list(f.shape) for f in frames]) + "\\n")
    return f"video of {len(frames)} frames"
'''
SUMMARY = '''
import json, pathlib
LOG = pathlib.Path(__file__).with_suffix(".log")
def summarise(captions):
    LOG.open("a").write(json.dumps(captions) + "\\n")
    return " + ".join(f"{k}: {v}" for k, v in captions.items())
'''


def _write(folder, name, text):
    path = folder / f"{name}.py"
    path.write_text(textwrap.dedent(text))
    return path


def _log(path):
    f = path.with_suffix(".log")
    return [json.loads(line) for line in f.read_text().splitlines()] if f.exists() else []


def test_captioners_and_summariser_by_path_once_per_clip(tmp_path, capsys):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    image, video, summary = (_write(plugins, n, t) for n, t in (("image", IMAGE), ("video", VIDEO), ("summary", SUMMARY)))
    truth = synthetic.cuts_video(tmp_path / "in" / "cuts.mp4", seed=5, n_hard=3, n_fades=0, shot_frames=(40, 50),
                                 size=(160, 90))
    out = tmp_path / "out"
    argv = ["video", "curate", str(tmp_path / "in"), "--out", str(out), "--preset", "tiny", "--no-text", "--quiet",
            "--no-clips", "--captioner", f"mid={image}", "--captioner", f"clip={video}", "--summariser", str(summary)]
    code, _, err = run_cli_inprocess([*argv, "--no-filters"], capsys)
    assert code == 0, err
    rows = pq.read_table(out / "clips.parquet").to_pylist()
    assert len(rows) == len(truth.hard_cuts) + 1
    # one call of each per clip; the image captioner saw the middle frame, the video one every sample
    assert len(_log(image)) == len(_log(video)) == len(_log(summary)) == len(rows)
    assert all(len(shapes) == 1 and shapes[0] == [90, 160, 3] for shapes in _log(image))
    assert all(len(shapes) >= int(r["duration_s"] * 2) for shapes, r in zip(_log(video), rows))  # 2 fps samples
    names = pq.read_schema(out / "clips.parquet").names
    assert names.index("caption") < names.index("caption_mid") < names.index("caption_clip") < names.index("summary")
    for r in rows:
        assert r["caption_mid"].startswith("image of mean") and r["caption_clip"].startswith("video of")
        assert r["summary"] == f"caption_clip: {r['caption_clip']} + caption_mid: {r['caption_mid']}"
        assert r["caption"] is None
    # re-filtering a finished folder captions nothing again
    code, _, err = run_cli_inprocess([*argv, "--min", "duration_s=1.5"], capsys)
    assert code == 0, err
    assert len(_log(image)) == len(_log(video)) == len(_log(summary)) == len(rows)


def test_captioner_arguments_are_checked(tmp_path, capsys):
    synthetic.motion_video(tmp_path / "in" / "m.mp4", 1.0, seconds=1.0, size=(64, 48))
    base = ["video", "curate", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--quiet"]
    code, _, err = run_cli_inprocess([*base, "--captioner", "mid=no/such/model"], capsys)
    assert_user_error(code, err, "--captioner mid", "no/such/model", "local model folder or a .py file")
    code, _, err = run_cli_inprocess([*base, "--captioner", "Bad Name=x.py"], capsys)
    assert_user_error(code, err, "--captioner", "NAME=PATH")
    (tmp_path / "s.py").write_text("def summarise(c):\n    return ''\n")
    code, _, err = run_cli_inprocess([*base, "--summariser", str(tmp_path / "s.py")], capsys)
    assert_user_error(code, err, "--summariser needs captions")
    assert not (tmp_path / "out").exists()


def test_model_folders_as_captioner_and_summariser(tmp_path):
    """A local image-to-text folder captions the middle frame (what `caption` gives); a local
    causal-LM folder summarises the captions (tiny random models: the text is noise, the wiring is not)."""
    import numpy as np
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2Tokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    from genlab.core.data.video import Frame
    from genlab.systems.video.curation.captioning import CaptionerStage, SummaryStage
    from genlab.systems.video.curation.config import Captioner, EmbeddingConfig
    from genlab.systems.video.curation.stages import CaptionStage, ClipFrames
    from tests.systems.curation.tiny_models import make_tiny_models

    _, blip_dir = make_tiny_models(tmp_path / "models")
    lm_dir = tmp_path / "models" / "lm"
    lm_dir.mkdir()
    vocab = {c: i for i, c in enumerate(bytes_to_unicode().values())}
    (lm_dir / "vocab.json").write_text(json.dumps(vocab))
    (lm_dir / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = GPT2Tokenizer(str(lm_dir / "vocab.json"), str(lm_dir / "merges.txt"))
    tokenizer.save_pretrained(lm_dir)
    GPT2LMHeadModel(GPT2Config(vocab_size=len(vocab), n_positions=512, n_embd=32, n_layer=2, n_head=2,
                               bos_token_id=0, eos_token_id=0)).save_pretrained(lm_dir)
    rng = np.random.default_rng(0)
    frames = ClipFrames([Frame(i, i / 2, rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)) for i in range(5)], 2.0, 0, 2.5)
    record = CaptionerStage(Captioner("mid", str(blip_dir)), 30)({}, frames)
    assert record["caption_mid"] == CaptionStage(EmbeddingConfig(caption_path=str(blip_dir)))({}, frames)["caption"]
    summary = SummaryStage(str(lm_dir), 8)({**record, "caption": "a person walks"}, frames)["summary"]
    assert isinstance(summary, str) and 0 < len(summary) <= 8 * 4
    assert SummaryStage(str(lm_dir), 8)({"caption": None}, frames) == {"summary": None}
