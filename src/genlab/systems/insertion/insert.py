"""`genlab insertion insert`: put the person of one photo into another photo.

    scene photo + box/mask, person photo  --photo.py-->  scene (S, S), mask, reference (R, R)
      --InsertionPipeline.sample (any weights: official, diffusers-style, genlab run)-->  N results
      --photo.place_back-->  N full-resolution photos
      -> out.png (scene | reference | results) and out-1.png ... out-N.png (each result alone),
         every PNG with the settings in its text chunk ("genlab")
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from genlab.errors import GenlabError
from genlab.systems.insertion import photo

CLI_MODES = {"insert": "insertion", "person-hallucination": "person_hallucination",
             "scene-hallucination": "scene_hallucination"}
PANEL = 256  # height of each panel of the overview PNG


@dataclass(frozen=True)
class InsertSettings:
    mode: str = "insert"  # a CLI_MODES key
    steps: int | None = None  # DDIM steps; None = the weights' default
    scale_scene: float | None = None
    scale_person: float | None = None
    seed: int = 0
    num: int = 1
    size: int | None = None  # model image side; None = the weights' training size
    composite: bool = False  # paste the photo back outside the mask (the official sampler does not)


def parse_guidance(text: str) -> tuple[float, float]:
    """'S' (the paper's single scale) or 'S,P' (scene, person)."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) not in (1, 2) or not all(np.isfinite(values)):
        raise GenlabError(f"--guidance {text!r}: expected S or S,P (numbers), e.g. 4 or 4,2")
    return values[0], values[-1]


@dataclass
class Inputs:
    """The user's files, read and checked (cheap) before any weights are loaded."""

    scene_path: str
    person_path: str | None
    box: str | None
    mask_path: str | None
    scene_photo: np.ndarray  # (H, W, 3) uint8
    mask_full: np.ndarray  # (H, W) bool
    person_photo: np.ndarray | None
    person_mask: np.ndarray | None  # (H', W') soft mask of the chosen person
    person_box: tuple[int, int, int, int] | None


def read_inputs(scene_path: str | Path, person_path: str | Path | None, box: str | None = None,
                mask_path: str | Path | None = None, mode: str = "insert") -> Inputs:
    """Photos, region and the person cut-out; one GenlabError line for each kind of bad input."""
    if mode not in CLI_MODES:
        raise GenlabError(f"--mode {mode!r}: expected one of {sorted(CLI_MODES)}")
    need_region = CLI_MODES[mode] != "scene_hallucination"
    need_person = CLI_MODES[mode] != "person_hallucination"
    if need_region and (box is None) == (mask_path is None):
        raise GenlabError("give exactly one of --box x0,y0,x1,y1 or --mask mask.png (where the person goes)")
    if need_person and person_path is None:
        raise GenlabError(f"--mode {mode} needs --person (a photo of the person to insert)")
    scene_photo = photo.load_photo(scene_path, "--scene")
    h, w = scene_photo.shape[:2]
    if not need_region:
        mask_full = np.ones((h, w), dtype=bool)
    elif box is not None:
        mask_full = photo.box_mask(photo.parse_box(box, w, h), (h, w))
    else:
        mask_full = photo.load_mask(mask_path, (h, w))
    person_photo = person_mask = person_box = None
    if need_person:
        person_photo = photo.load_photo(person_path, "--person")
        with photo.PersonCutter() as cutter:
            person_mask, person_box = cutter.find(person_photo, f"--person {person_path}")
    return Inputs(str(scene_path), None if person_path is None else str(person_path), box,
                  None if mask_path is None else str(mask_path), scene_photo, mask_full, person_photo,
                  person_mask, person_box)


@dataclass
class InsertResult:
    scene: photo.Scene
    reference: np.ndarray | None  # (R, R, 3) [0, 1]
    samples: np.ndarray  # (N, S, S, 3) [0, 1]: what the model drew
    photos: list[np.ndarray]  # N full-resolution photos (uint8)
    record: dict  # the settings written into the PNGs


def insert(pipe, inputs: Inputs, settings: InsertSettings = InsertSettings(), weights: str = "",
           progress: bool = True) -> InsertResult:
    """Sample the pipeline on the prepared inputs and place the results back into the photo."""
    if settings.num < 1:
        raise GenlabError(f"--num {settings.num}: expected >= 1")
    if settings.steps is not None and settings.steps < 1:
        raise GenlabError(f"--steps {settings.steps}: expected >= 1")
    mode = CLI_MODES[settings.mode]
    cfg = pipe.config
    size = settings.size or cfg.size
    scene = photo.prepare_scene(inputs.scene_photo, inputs.mask_full, size)
    reference = None
    if inputs.person_photo is not None and mode != "person_hallucination":
        reference = photo.centred_person(inputs.person_photo, inputs.person_mask, inputs.person_box, pipe.ref_size)
    sample = cfg.sample
    sample = replace(sample, steps=settings.steps or sample.steps, composite=settings.composite,
                     scale_scene=sample.scale_scene if settings.scale_scene is None else settings.scale_scene,
                     scale_person=sample.scale_person if settings.scale_person is None else settings.scale_person)
    n = settings.num

    def tensor(a):  # (H, W, 3) [0, 1] -> (n, 3, H, W) [-1, 1]
        return (torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None] * 2 - 1).expand(n, -1, -1, -1).contiguous()

    scene_t = tensor(scene.image)
    mask_t = torch.from_numpy(scene.mask)[None, None].expand(n, 1, -1, -1).contiguous()
    ref_t = tensor(reference) if reference is not None else None
    out = pipe.sample(scene_t, mask_t, ref_t, mode=mode, settings=sample,
                      generator=torch.Generator().manual_seed(settings.seed), progress=progress)
    samples = ((out.images.clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1).numpy()
    photos = [photo.place_back(scene, s, composite=settings.composite) for s in samples]
    record = {"genlab": "insertion insert", "scene": inputs.scene_path, "person": inputs.person_path,
              "box": inputs.box, "mask": inputs.mask_path, "weights": weights,
              **asdict(replace(settings, size=size, steps=sample.steps, scale_scene=sample.scale_scene,
                               scale_person=sample.scale_person)),
              "square": asdict(scene.square), "mask_resize": pipe.model.config.mask_resize}
    return InsertResult(scene=scene, reference=reference, samples=samples, photos=photos, record=record)


def _panel(image: np.ndarray, height: int = PANEL, nearest: bool = False) -> np.ndarray:
    from PIL import Image

    h, w = image.shape[:2]
    width = max(1, int(round(w * height / h)))
    return np.asarray(Image.fromarray(image).resize((width, height), Image.NEAREST if nearest else Image.LANCZOS))


def outline(image: np.ndarray, mask: np.ndarray, colour=(255, 40, 40)) -> np.ndarray:
    """The mask's box drawn on a copy of the photo (where the person goes)."""
    from genlab.core.pose.masks import bbox

    out = image.copy()
    b = bbox(mask.astype(np.float32))
    if b is None or mask.all():
        return out
    x0, y0, x1, y1 = b
    t = max(2, min(image.shape[:2]) // 150)
    out[y0:y0 + t, x0:x1] = out[y1 - t:y1, x0:x1] = colour
    out[y0:y1, x0:x0 + t] = out[y0:y1, x1 - t:x1] = colour
    return out


def write_outputs(result: InsertResult, out: str | Path) -> list[Path]:
    """out.png (scene with the region outlined | reference | results) and out-K.png for each result;
    PNGs with the settings in the text chunk, each written atomically."""
    from genlab.core.io import atomic_path

    out = Path(out)
    if out.suffix.lower() != ".png":
        raise GenlabError(f"--out {out}: expected a .png file name")
    gap = np.full((PANEL, 4, 3), 255, np.uint8)
    panels = [_panel(outline(result.scene.photo, result.scene.mask_full))]
    if result.reference is not None:
        panels.append(_panel((result.reference * 255 + 0.5).astype(np.uint8), nearest=True))
    panels += [_panel(p) for p in result.photos]
    grid = np.concatenate([x for p in panels for x in (p, gap)][:-1], 1)
    written = []
    for k, image in enumerate([grid, *result.photos]):
        path = out if k == 0 else out.with_name(f"{out.stem}-{k}.png")
        record = dict(result.record, image="overview: scene | reference | results" if k == 0 else f"result {k}")
        with atomic_path(path) as tmp:
            save_png(tmp, image, record)
        written.append(path)
    return written


def save_png(path: str | Path, image: np.ndarray, settings: dict) -> None:
    """uint8 (H, W, 3) -> PNG with `settings` as JSON in the "genlab" text chunk."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("genlab", json.dumps(settings))
    Image.fromarray(image).save(path, format="PNG", pnginfo=info)
