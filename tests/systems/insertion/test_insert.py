"""`genlab insertion insert` on your own photos (scikit-image's bundled ones) with a tiny random pipeline
shaped like the real one; the mask reaching the UNet; the person cut-out; one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from genlab.errors import GenlabError
from tests.helpers import assert_user_error, run_cli_inprocess

pytest.importorskip("diffusers")
pytest.importorskip("transformers")
pytest.importorskip("mediapipe")
skimage_data = pytest.importorskip("skimage.data")

# Committed by eye on `astronaut` (512x512): she and the helmet she holds (selfie segmentation, like the
# training pairs' masks, keeps what a person holds), and background regions with no person in them.
ASTRONAUT_PERSON_BOX = (15, 12, 512, 512)
ASTRONAUT_BACKGROUND = ((0, 0, 80, 140), (370, 0, 470, 260), (300, 0, 512, 140))


def _save(image: np.ndarray, path, exif_orientation: int | None = None):
    from PIL import Image

    im = Image.fromarray(image)
    if exif_orientation is None:
        im.save(path)
    else:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation  # Orientation
        im.save(path, exif=exif.tobytes())
    return path


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    astronaut = skimage_data.astronaut()
    rgba = np.concatenate([astronaut, np.full((*astronaut.shape[:2], 1), 255, np.uint8)], -1)
    return {
        "coffee": _save(skimage_data.coffee(), folder / "coffee.png"),  # 600x400, no person
        # stored 400 wide x 600 high, EXIF says "rotate 90 CW": displayed 600x400 like coffee.png
        "coffee_exif": _save(np.ascontiguousarray(np.rot90(skimage_data.coffee(), 1)), folder / "coffee.jpg", 6),
        "chelsea": _save(skimage_data.chelsea(), folder / "chelsea.jpg"),
        "astronaut": _save(astronaut, folder / "astronaut.jpg"),
        "astronaut_rgba": _save(rgba, folder / "astronaut_rgba.png"),
        "camera": _save(skimage_data.camera(), folder / "camera.png"),  # grayscale, a person with a camera
    }


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    from tests.systems.insertion.tiny_real import save_folder, tiny_parts

    return save_folder(tiny_parts(), tmp_path_factory.mktemp("weights") / "tiny")


def _png_record(path) -> dict:
    from PIL import Image

    with Image.open(path) as im:
        return json.loads(im.text["genlab"])


def test_insert_end_to_end_on_bundled_photos(photos, weights, tmp_path, capsys):
    from PIL import Image

    out = tmp_path / "out.png"
    argv = ["insertion", "insert", "--scene", str(photos["coffee_exif"]), "--person", str(photos["astronaut_rgba"]),
            "--box", "60,120,200,380", "--weights", str(weights), "--steps", "2", "--guidance", "3,2",
            "--num", "2", "--size", "64", "--seed", "5", "--out", str(out), "--quiet"]
    code, stdout, err = run_cli_inprocess(argv, capsys)
    assert code == 0, err
    from genlab.systems.insertion.photo import load_photo

    upright = load_photo(photos["coffee_exif"])  # the JPEG as shown: EXIF rotation applied
    assert upright.shape == (400, 600, 3)
    assert np.abs(upright.astype(int) - skimage_data.coffee().astype(int)).mean() < 8  # upright, not rotated
    results = [np.asarray(Image.open(tmp_path / f"out-{k}.png")) for k in (1, 2)]
    for r in results:
        assert r.shape == upright.shape  # the full-resolution photo
        # the model saw the square x 0..400 (the box is near the left edge); the rest is the photo
        assert np.array_equal(r[:, 400:], upright[:, 400:])
        assert np.abs(r[120:380, 60:200].astype(int) - upright[120:380, 60:200]).mean() > 5
    overview = Image.open(out)
    assert overview.height == 256 and overview.width > 3 * 256  # scene | reference | 2 results
    record = _png_record(out)
    assert record["box"] == "60,120,200,380" and record["steps"] == 2 and record["num"] == 2
    assert (record["scale_scene"], record["scale_person"]) == (3.0, 2.0) and record["composite"] is False
    assert record["mask_resize"] == "nearest" and record["square"] == {"x0": 0, "y0": 0, "side": 400}
    assert _png_record(tmp_path / "out-1.png")["image"] == "result 1"
    assert not np.array_equal(results[0], results[1])  # two draws, different noise


def test_mask_channel_is_one_exactly_on_the_corner_box_latent_cells(photos, weights):
    """coffee (600x400): the box's model square is x 200..600, resized 400 -> 64 px (6.25 photo px per
    model px), so the box 530..600 covers model pixels 53..63 (PIL nearest: pixel i reads photo pixel
    floor((i + 0.5) * 6.25)); nearest resizing to the 32x32 latent keeps cells i with 2i >= 53, i.e.
    27..31. Max-pooling would also mark cell 26 (it holds pixel 53)."""
    from genlab.systems.insertion import insert
    from genlab.systems.insertion.convert import load_pipeline

    pipe = load_pipeline(weights)
    seen = []
    forward = pipe.model.unet.forward

    def spy(x, *args, **kwargs):
        seen.append(x[:, 8].clone())  # channels: noisy latent 0..3, masked-scene latent 4..7, mask 8
        return forward(x, *args, **kwargs)

    pipe.model.unet.forward = spy
    inputs = insert.read_inputs(photos["coffee"], photos["astronaut"], box="530,330,600,400")
    result = insert.insert(pipe, inputs, insert.InsertSettings(steps=1, size=64), progress=False)
    assert result.scene.square == insert.photo.Square(200, 0, 400)
    pixel = np.zeros((64, 64), np.float32)
    pixel[53:, 53:] = 1
    assert np.array_equal(result.scene.mask, pixel)
    expected = torch.zeros(32, 32)
    expected[27:, 27:] = 1
    (masks,) = seen  # one step, the dropped and the given scene in one batch (the paper's single scale)
    assert sum(torch.equal(m, expected) for m in masks) == 1
    assert sum(torch.equal(m, torch.ones(32, 32)) for m in masks) == 1  # the dropped scene: all ones


def test_person_cut_out_on_astronaut_and_the_larger_of_two_people():
    from genlab.systems.insertion.photo import PersonCutter

    astronaut = skimage_data.astronaut()
    with PersonCutter() as cutter:
        mask, box = cutter.find(astronaut)
        hard = mask > 0.5
        x0, y0, x1, y1 = ASTRONAUT_PERSON_BOX
        inside = np.zeros_like(hard)
        inside[y0:y1, x0:x1] = True
        # the cut-out's box covers >= 90% of the committed person box, and <= 10% of the area outside it is masked
        bx0, by0, bx1, by1 = box
        overlap = max(0, min(x1, bx1) - max(x0, bx0)) * max(0, min(y1, by1) - max(y0, by0))
        assert overlap / ((x1 - x0) * (y1 - y0)) >= 0.9, box
        assert hard[~inside].mean() <= 0.10
        assert hard[inside].mean() >= 0.5  # a person, not a frame around the box
        for bx0, by0, bx1, by1 in ASTRONAUT_BACKGROUND:  # flag, shuttle model, wall
            assert hard[by0:by1, bx0:bx1].mean() <= 0.10, (bx0, by0, bx1, by1)
        # two people: the larger is chosen, wherever it is
        for big_left in (True, False):
            canvas = np.full((512, 1024, 3), 200, np.uint8)
            big, small = (slice(0, 512), slice(600, 856)) if big_left else (slice(512, 1024), slice(100, 356))
            canvas[:, big] = astronaut
            canvas[256:, small] = astronaut[::2, ::2]
            _, (cx0, _, cx1, _) = cutter.find(canvas)
            assert cx0 >= big.start - 5 and cx1 <= big.stop + 5, (big_left, cx0, cx1)
        reference = cutter.cut_out(astronaut, 32).reference
    assert reference.shape == (32, 32, 3)
    assert np.allclose(reference[0, 0], 0.5, atol=0.02) and np.allclose(reference[-1, 0], 0.5, atol=0.02)  # grey corners


@pytest.mark.parametrize("case", ["no_person", "box_outside", "mask_size", "unet_channels", "not_an_image", "grey_rgba"])
def test_bad_input_is_one_clear_line(case, photos, weights, tmp_path, capsys):
    from tests.systems.insertion.tiny_real import save_folder, tiny_parts

    base = ["insertion", "insert", "--scene", str(photos["coffee"]), "--weights", str(weights), "--steps", "1",
            "--size", "64", "--quiet", "--out", str(tmp_path / "out.png")]
    person = ["--person", str(photos["astronaut"])]
    if case == "no_person":  # a cat: selfie segmentation finds a foreground, Pose no body
        argv, needles = base + ["--person", str(photos["chelsea"]), "--box", "10,10,100,100"], ("--person", "no person")
    elif case == "box_outside":
        argv, needles = base + person + ["--box", "500,300,700,390"], ("--box", "outside", "600x400")
    elif case == "mask_size":
        from PIL import Image

        Image.fromarray(np.full((100, 100), 255, np.uint8)).save(tmp_path / "mask.png")
        argv, needles = base + person + ["--mask", str(tmp_path / "mask.png")], ("--mask", "100x100", "600x400")
    elif case == "unet_channels":  # a text-to-image UNet (4 -> 4)
        folder = save_folder(tiny_parts(in_channels=4), tmp_path / "t2i")
        argv = [a if a != str(weights) else str(folder) for a in base] + person + ["--box", "10,10,100,100"]
        needles = ("2C+1", "4 -> 4")
    elif case == "not_an_image":
        (tmp_path / "scene.jpg").write_text("not a photo")
        argv = [a if a != str(photos["coffee"]) else str(tmp_path / "scene.jpg") for a in base] + person + [
            "--box", "1,1,5,5"]
        needles = ("--scene", "not a readable image")
    else:  # grayscale and RGBA photos are fine: the error here is the missing region only
        argv, needles = base + ["--person", str(photos["camera"])], ("--box", "--mask")
    capsys.readouterr()  # the fixtures' own output
    code, _, err = run_cli_inprocess(argv, capsys)
    assert_user_error(code, err, *needles)
    assert not (tmp_path / "out.png").exists()  # nothing written


def test_grayscale_person_photo_is_cut_out(photos):
    from genlab.systems.insertion import insert

    inputs = insert.read_inputs(photos["coffee"], photos["camera"], box="10,10,100,100")
    assert inputs.person_photo.shape == (512, 512, 3)  # grayscale -> RGB
    x0, y0, x1, y1 = inputs.person_box
    assert (x1 - x0) * (y1 - y0) > 0.1 * 512 * 512  # the cameraman, not a speck


def test_unreadable_checkpoint_objects_are_refused_with_a_conversion_hint(tmp_path, monkeypatch):
    """A `.ckpt` is a pickle: only tensors, containers and Lightning's ModelCheckpoint are read."""
    import sys
    import types

    from genlab.systems.insertion.convert import read_checkpoint

    module = types.ModuleType("pytorch_lightning.callbacks.model_checkpoint")

    class ModelCheckpoint:  # what an SD-style Lightning checkpoint pickles in `callbacks`
        def __init__(self):
            self.best_model_score = torch.tensor(0.5)

    ModelCheckpoint.__module__, ModelCheckpoint.__qualname__ = module.__name__, "ModelCheckpoint"
    module.ModelCheckpoint = ModelCheckpoint
    for name in ("pytorch_lightning", "pytorch_lightning.callbacks", module.__name__):
        monkeypatch.setitem(sys.modules, name, module)
    state = {"model.diffusion_model.x": torch.ones(2)}
    torch.save({"state_dict": state, "callbacks": {"ModelCheckpoint": ModelCheckpoint()}}, tmp_path / "ok.ckpt")
    torch.save({"state_dict": state, "extra": Extra()}, tmp_path / "extra.ckpt")
    monkeypatch.undo()  # the classes are gone, as on a user's machine without Lightning
    assert torch.equal(read_checkpoint(tmp_path / "ok.ckpt")["model.diffusion_model.x"], torch.ones(2))
    with pytest.raises(GenlabError, match=r"Extra.*convert it to safetensors.*weights_only=False.*save_file") as err:
        read_checkpoint(tmp_path / "extra.ckpt")
    assert "\n" not in str(err.value)


class Extra:
    """Any other object in a checkpoint: refused."""


@pytest.mark.slow
def test_insert_with_a_genlab_trained_toy_run(photos, tmp_path, capsys):
    """The README's example without external weights: a `tiny` run (trained with max-pooled masks, which
    its config records) drives `insert` on the same photos."""
    run = tmp_path / "run"
    code, _, err = run_cli_inprocess(["insertion", "train", "--preset", "tiny", "--steps", "20", "--pool", "64",
                                      "--out", str(run), "--quiet"], capsys)
    assert code == 0, err
    out = tmp_path / "toy.png"
    code, _, err = run_cli_inprocess(["insertion", "insert", "--scene", str(photos["chelsea"]), "--person",
                                      str(photos["astronaut"]), "--box", "300,150,440,290", "--weights", str(run),
                                      "--steps", "4", "--composite", "--out", str(out), "--quiet"], capsys)
    assert code == 0, err
    record = _png_record(out)
    assert record["mask_resize"] == "max" and record["size"] == 32 and record["composite"] is True
    from PIL import Image

    from genlab.systems.insertion.photo import load_photo

    result, scene = np.asarray(Image.open(tmp_path / "toy-1.png")), load_photo(photos["chelsea"])
    outside = np.ones(scene.shape[:2], bool)
    outside[150:290, 300:440] = False
    assert np.array_equal(result[outside], scene[outside])  # --composite: only the box changes
    assert not np.array_equal(result[~outside], scene[~outside])


def test_hallucination_modes_need_no_box_or_no_person(photos, weights):
    from genlab.systems.insertion import insert
    from genlab.systems.insertion.convert import load_pipeline

    pipe = load_pipeline(weights)
    scene_only = insert.read_inputs(photos["coffee"], None, box="400,150,560,380", mode="person-hallucination")
    assert scene_only.person_photo is None
    a = insert.insert(pipe, scene_only, insert.InsertSettings(mode="person-hallucination", steps=1, size=64),
                      progress=False)
    person_only = insert.read_inputs(photos["coffee"], photos["astronaut"], mode="scene-hallucination")
    assert person_only.mask_full.all()  # the whole scene is drawn
    b = insert.insert(pipe, person_only, insert.InsertSettings(mode="scene-hallucination", steps=1, size=64),
                      progress=False)
    assert a.reference is None and b.reference.shape == (pipe.ref_size, pipe.ref_size, 3)
    assert b.scene.square == insert.photo.Square(0, -100, 600)  # a square holding the whole photo
    assert a.photos[0].shape == b.photos[0].shape == (400, 600, 3)
    with pytest.raises(GenlabError, match="--person"):
        insert.read_inputs(photos["coffee"], None, box="1,1,50,50")
