"""Your own photos -> the tensors the insertion pipeline takes, and the results back into the photo.

    person.jpg -> MediaPipe selfie segmentation -> person components, largest first -> the first one on
      which MediaPipe Pose finds a body -> that person on grey, square crop, `pairs.centred_reference`
      (the training pairs' own function) -> reference (R, R, 3)
    scene.jpg + box (photo pixels) or mask.png -> the square of the photo around the region (grey where
      the square leaves the photo) -> resized to the model size; the mask goes through the same crop with
      nearest resizing -> scene (S, S, 3), mask (S, S)
    result (S, S, 3) -> resized to the square's size -> pasted over the photo (only the mask with
      `composite`) -> full-resolution photo

Photos are read with EXIF rotation applied; grayscale becomes RGB; RGBA is flattened onto grey.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genlab.errors import GenlabError

GREY = 0.5  # the training pairs' grey (masked pixels, reference background)
GREY_U8 = 128
MIN_PERSON_AREA = 0.005  # a person component smaller than this fraction of the photo is noise
PERSON_MARGIN = 1.1  # the reference square is this much larger than the person's box
MAX_CANDIDATES = 3  # person components tried, largest first


def load_photo(path: str | Path, what: str = "photo") -> np.ndarray:
    """RGB uint8 (H, W, 3) with EXIF orientation applied; grayscale -> RGB, alpha -> flattened on grey."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise GenlabError(f"{what} {path} not found")
    try:
        with Image.open(path) as im:
            im.load()
            im = ImageOps.exif_transpose(im)
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise GenlabError(f"{what} {path}: not a readable image ({type(err).__name__})") from None
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        flat = Image.new("RGBA", im.size, (GREY_U8, GREY_U8, GREY_U8, 255))
        im = Image.alpha_composite(flat, im)
    rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
    if min(rgb.shape[:2]) < 8:
        raise GenlabError(f"{what} {path}: image is {rgb.shape[1]}x{rgb.shape[0]} px, too small")
    return np.ascontiguousarray(rgb)


def load_mask(path: str | Path, shape: tuple[int, int]) -> np.ndarray:
    """A mask PNG the size of the scene photo (white = where the person goes) -> bool (H, W)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise GenlabError(f"--mask {path} not found")
    try:
        with Image.open(path) as im:
            im.load()
            im = ImageOps.exif_transpose(im)
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise GenlabError(f"--mask {path}: not a readable image ({type(err).__name__})") from None
    if im.mode in ("RGBA", "LA"):
        m = np.asarray(im.getchannel("A")) > 127  # painted strokes on a transparent layer
    else:
        m = np.asarray(im.convert("L")) > 127
    if m.shape != tuple(shape):
        raise GenlabError(f"--mask {path}: size {m.shape[1]}x{m.shape[0]} px, expected the scene's "
                          f"{shape[1]}x{shape[0]} px")
    if not m.any():
        raise GenlabError(f"--mask {path}: empty (no pixel > 127); paint where the person goes in white")
    if m.all():
        raise GenlabError(f"--mask {path}: covers the whole scene; use --mode scene-hallucination")
    return m


def parse_box(text: str, width: int, height: int) -> tuple[float, float, float, float]:
    """'x0,y0,x1,y1' in the scene photo's pixels, inside the photo, x0 < x1 and y0 < y1."""
    try:
        x0, y0, x1, y1 = (float(v) for v in text.split(","))
    except ValueError:
        raise GenlabError(f"--box {text!r}: expected four numbers x0,y0,x1,y1 (scene pixels)") from None
    if not (x1 > x0 and y1 > y0):
        raise GenlabError(f"--box {text}: expected x0 < x1 and y0 < y1")
    if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
        raise GenlabError(f"--box {text}: outside the scene photo ({width}x{height} px: 0 <= x <= {width}, "
                          f"0 <= y <= {height})")
    return x0, y0, x1, y1


def box_mask(box: tuple[float, float, float, float], shape: tuple[int, int]) -> np.ndarray:
    """bool (H, W): pixels whose centres lie inside the box."""
    h, w = shape
    xs, ys = np.arange(w) + 0.5, np.arange(h) + 0.5
    inside_x = (xs >= box[0]) & (xs <= box[2])
    inside_y = (ys >= box[1]) & (ys <= box[3])
    m = inside_y[:, None] & inside_x[None, :]
    if not m.any():
        raise GenlabError(f"--box {','.join(f'{v:g}' for v in box)}: covers no pixel centre; make it larger")
    return m


# ----------------------------------------------------------------------------- the scene square
@dataclass(frozen=True)
class Square:
    """The square of the photo the model sees: top-left (x0, y0) and side, in photo pixels; it may
    reach past the photo (filled grey)."""

    x0: int
    y0: int
    side: int

    def crop(self, image: np.ndarray, fill) -> np.ndarray:
        """image (H, W[, C]) -> (side, side[, C]), `fill` outside the photo."""
        h, w = image.shape[:2]
        out = np.full((self.side, self.side, *image.shape[2:]), fill, dtype=image.dtype)
        xa, ya = max(0, self.x0), max(0, self.y0)
        xb, yb = min(w, self.x0 + self.side), min(h, self.y0 + self.side)
        out[ya - self.y0:yb - self.y0, xa - self.x0:xb - self.x0] = image[ya:yb, xa:xb]
        return out


def square_around(region: tuple[int, int, int, int], shape: tuple[int, int]) -> Square:
    """The largest square inside the photo (side = the shorter side) that holds the region, centred on it
    where the photo allows; a region larger than that gets a square of its own size (grey outside)."""
    h, w = shape
    x0, y0, x1, y1 = region
    side = max(min(h, w), x1 - x0, y1 - y0)

    def place(lo, hi, length):
        start = int(round((lo + hi) / 2 - side / 2))
        if side <= length:
            start = min(max(start, 0), length - side)
        return start

    return Square(place(x0, x1, w), place(y0, y1, h), int(side))


def resize(image: np.ndarray, size: int, nearest: bool = False) -> np.ndarray:
    """uint8 (s, s[, 3]) or bool (s, s) -> size x size (Lanczos for images, nearest for bool masks)."""
    from PIL import Image

    if image.dtype == bool:
        im = Image.fromarray(image.astype(np.uint8) * 255)
        return np.asarray(im.resize((size, size), Image.NEAREST)) > 127
    return np.asarray(Image.fromarray(image).resize((size, size), Image.NEAREST if nearest else Image.LANCZOS))


@dataclass
class Scene:
    photo: np.ndarray  # (H, W, 3) uint8, the full-resolution photo
    mask_full: np.ndarray  # (H, W) bool, where the person goes, in photo pixels
    square: Square
    image: np.ndarray  # (S, S, 3) float32 [0, 1]: the model's view, masked pixels grey
    mask: np.ndarray  # (S, S) float32 {0, 1}


def prepare_scene(photo: np.ndarray, mask_full: np.ndarray, size: int) -> Scene:
    """The square around the mask, resized to the model size (mask with nearest), masked pixels grey."""
    from genlab.core.pose.masks import bbox

    region = bbox(mask_full.astype(np.float32))
    if region is None:
        raise GenlabError("scene: the mask is empty; give --box or --mask")
    square = square_around(region, photo.shape[:2])
    image = resize(square.crop(photo, GREY_U8), size).astype(np.float32) / 255
    mask = resize(square.crop(mask_full, False), size).astype(np.float32)
    if not mask.any():
        raise GenlabError(f"scene: the region is smaller than one pixel at the model size {size}; make it larger")
    image = image * (1 - mask[..., None]) + GREY * mask[..., None]
    return Scene(photo=photo, mask_full=mask_full, square=square, image=image.astype(np.float32), mask=mask)


def place_back(scene: Scene, result: np.ndarray, composite: bool = False) -> np.ndarray:
    """result (S, S, 3) in [0, 1] -> the full-resolution photo with the square replaced by the result
    (resized to the square's size); with `composite` only the masked pixels change."""
    sq = scene.square
    big = resize((np.clip(result, 0, 1) * 255 + 0.5).astype(np.uint8), sq.side)
    out = scene.photo.copy()
    h, w = out.shape[:2]
    xa, ya = max(0, sq.x0), max(0, sq.y0)
    xb, yb = min(w, sq.x0 + sq.side), min(h, sq.y0 + sq.side)
    patch = big[ya - sq.y0:yb - sq.y0, xa - sq.x0:xb - sq.x0]
    if composite:
        keep = scene.mask_full[ya:yb, xa:xb, None]
        patch = np.where(keep, patch, out[ya:yb, xa:xb])
    out[ya:yb, xa:xb] = patch
    return out


# ----------------------------------------------------------------------------- the reference person
@dataclass
class Person:
    reference: np.ndarray  # (R, R, 3) float32 [0, 1], person on grey, centred
    mask: np.ndarray  # (H, W) float32 [0, 1]: the chosen person in the photo (soft)
    box: tuple[int, int, int, int]  # the person's box in photo pixels


class PersonCutter:
    """MediaPipe selfie segmentation finds the foreground; MediaPipe Pose (model_complexity=1) confirms a
    body on each component, largest first (the segmenter alone also cuts out cats and cups)."""

    def __init__(self):
        from genlab.core.pose.masks import MediaPipeSelfieSegmenter
        from genlab.core.pose.mediapipe_pose import MediaPipePose

        # model 0 (the general 256x256 model): cleaner outlines on portrait photos than the landscape one
        self.segment = MediaPipeSelfieSegmenter(0)
        self.pose = MediaPipePose(model_complexity=1, static_image_mode=True)

    def close(self) -> None:
        self.segment.close()
        self.pose.close()

    def __enter__(self) -> PersonCutter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def find(self, photo: np.ndarray, source: str = "person photo") -> tuple[np.ndarray, tuple[int, int, int, int]]:
        """The largest person's soft mask (H, W) and box; GenlabError when there is none."""
        from genlab.core.pose.masks import bbox, largest_components

        soft = self.segment(photo)
        comps = [c for c in largest_components(soft) if c.mean() >= MIN_PERSON_AREA][:MAX_CANDIDATES]
        for comp in comps:
            box = bbox(comp)
            sq = square_around_box(box, 1.3)
            view = sq.crop(photo, GREY_U8)
            found = self.pose(view)
            if found is None:
                continue
            xy, vis = found
            seen = xy[vis > 0.5] + np.array([sq.x0, sq.y0])
            inside = [comp[int(y), int(x)] for x, y in seen
                      if 0 <= x < comp.shape[1] and 0 <= y < comp.shape[0]]
            if len(inside) >= 3 and np.mean(inside) >= 0.5:  # the body found is on this component
                return (soft * comp).astype(np.float32), box
        raise GenlabError(f"{source}: no person found (MediaPipe found no body on the {len(comps)} "
                          "foreground region(s)); use a photo where one person is clearly visible")

    def cut_out(self, photo: np.ndarray, ref_size: int, source: str = "person photo") -> Person:
        mask, box = self.find(photo, source)
        return Person(reference=centred_person(photo, mask, box, ref_size), mask=mask, box=box)


def square_around_box(box: tuple[int, int, int, int], margin: float) -> Square:
    x0, y0, x1, y1 = box
    side = int(math.ceil(max(x1 - x0, y1 - y0) * margin))
    return Square(int(round((x0 + x1 - side) / 2)), int(round((y0 + y1 - side) / 2)), max(side, 1))


def centred_person(photo: np.ndarray, mask: np.ndarray, box: tuple[int, int, int, int], ref_size: int) -> np.ndarray:
    """The person on grey, centred in a square, as the training pairs' references: a square crop whose
    centre `PairConfig.ref_crop` part is the person's box (x PERSON_MARGIN), then
    `pairs.centred_reference` (no augmentation)."""
    from genlab.systems.insertion.pairs import PairConfig, centred_reference

    cfg = PairConfig(size=ref_size, ref_size=ref_size, augment=False)
    sq = square_around_box(box, PERSON_MARGIN / cfg.ref_crop)
    work = max(ref_size * 2, 64)  # resample once with Lanczos, then the pairs' bilinear transform
    view = resize(sq.crop(photo, GREY_U8), int(math.ceil(work / cfg.ref_crop))).astype(np.float32) / 255
    soft = resize((sq.crop(mask, 0.0) * 255).astype(np.uint8), view.shape[0]).astype(np.float32) / 255
    return centred_reference(view, soft, cfg, rng=None)
