"""A user's captioned images for `genlab t2i train --data PATH`: three formats, one record list.

    records, report = read_records("photos/")                 # folder: a.png + a.txt (same stem)
    records, report = read_records("train.jsonl", image_column="file", caption_column="text")
    records, report = read_records("shards/")                 # WebDataset: *.tar with key.jpg + key.txt

* folder: every image under PATH (recursively), caption from the `.txt` of the same stem;
* `.jsonl` / `.csv`: one row per image, paths relative to the table's folder;
* WebDataset: a `.tar` file or a folder of them; members grouped by key (the name up to its first
  dot), caption from `key.txt` / `key.caption` or the `caption`/`text` field of `key.json`.
An image without a caption gets "" (counted in the report; `require_captions=True` makes it an
error); two images with one key (`a.png` and `a.jpg`, or one key in two shards) are an error naming
both. Bytes are read lazily (`Record.read()`), so listing a large dataset costs no RAM.

Buckets (`make_buckets`) are SD-style aspect-ratio buckets of about `resolution`^2 pixels with sides
divisible by `multiple` (the VAE factor times the patch size); `fit_to_bucket` resizes an image to
cover its bucket and crops (centre, or a random crop seeded by the file's content).
"""

from __future__ import annotations

import csv
import io
import json
import math
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from genlab.errors import GenlabError

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
ASPECTS = ((1, 1), (4, 3), (3, 4), (3, 2), (2, 3), (2, 1), (1, 2))  # width : height


@dataclass(frozen=True)
class Record:
    key: str  # unique per dataset (relative path without suffix, or the WebDataset key)
    source: str  # what to name in messages: the file, or "shard.tar:member"
    caption: str | None
    read: Callable[[], bytes] = field(repr=False, compare=False)


@dataclass
class ReadReport:
    missing_captions: int = 0


def read_records(path: str | Path, image_column: str = "image", caption_column: str = "caption",
                 require_captions: bool = False) -> tuple[list[Record], ReadReport]:
    path = Path(path)
    if not path.exists():
        raise GenlabError(f"--data {path}: no such file or folder")
    if path.is_file() and path.suffix == ".jsonl":
        records = _table(path, _jsonl_rows(path), image_column, caption_column)
    elif path.is_file() and path.suffix == ".csv":
        records = _table(path, _csv_rows(path), image_column, caption_column)
    elif path.is_file() and path.suffix == ".tar":
        records = _tars([path])
    elif path.is_dir() and sorted(path.glob("*.tar")) and not any(_images_in(path)):
        records = _tars(sorted(path.glob("*.tar")))
    elif path.is_dir():
        records = _folder(path)
    else:
        raise GenlabError(f"--data {path}: expected an image folder, a .jsonl, a .csv or WebDataset .tar shards")
    if not records:
        raise GenlabError(f"--data {path}: no images found (extensions {', '.join(IMAGE_EXTS)})")
    report = ReadReport(missing_captions=sum(r.caption is None for r in records))
    if require_captions and report.missing_captions:
        first = next(r for r in records if r.caption is None)
        raise GenlabError(f"--require-captions: {report.missing_captions} image(s) have no caption, first {first.source}")
    return [r if r.caption is not None else Record(r.key, r.source, "", r.read) for r in records], report


def _unique(records: list[Record]) -> list[Record]:
    seen: dict[str, Record] = {}
    for r in records:
        if r.key in seen:
            raise GenlabError(f"duplicate image key {r.key!r}: {seen[r.key].source} and {r.source} "
                              "(one caption cannot serve two images; rename one)")
        seen[r.key] = r
    return records


def _file_reader(p: Path) -> Callable[[], bytes]:
    return lambda: p.read_bytes()


def _images_in(folder: Path):
    return (p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTS and p.is_file())


def _folder(folder: Path) -> list[Record]:
    records = []
    for p in sorted(_images_in(folder)):
        rel = p.relative_to(folder).with_suffix("").as_posix()
        txt = p.with_suffix(".txt")
        caption = txt.read_text(encoding="utf-8", errors="replace").strip() if txt.is_file() else None
        records.append(Record(rel, str(p), caption, _file_reader(p)))
    return _unique(records)


def _jsonl_rows(path: Path):
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise GenlabError(f"{path} line {n}: not JSON ({err.msg})") from None
            if not isinstance(row, dict):
                raise GenlabError(f"{path} line {n}: expected a JSON object, got {type(row).__name__}")
            yield n, row


def _csv_rows(path: Path):
    with path.open(newline="", encoding="utf-8") as f:
        yield from enumerate(csv.DictReader(f), 2)


def _table(path: Path, rows, image_column: str, caption_column: str) -> list[Record]:
    records = []
    for n, row in rows:
        if image_column not in row:
            raise GenlabError(f"{path} row {n}: no column {image_column!r} (--image-column); columns: {sorted(row)}")
        img = path.parent / str(row[image_column])
        caption = row.get(caption_column)
        caption = None if caption is None or str(caption).strip() == "" else str(caption).strip()
        key = Path(str(row[image_column])).with_suffix("").as_posix()
        records.append(Record(key, str(img), caption, _file_reader(img)))
    return _unique(records)


def _tars(shards: list[Path]) -> list[Record]:
    records = []
    for shard in shards:
        try:
            with tarfile.open(shard) as tar:
                members = [m for m in tar.getmembers() if m.isfile()]
        except (tarfile.TarError, OSError) as err:
            raise GenlabError(f"WebDataset shard {shard}: not a readable tar ({err})") from None
        groups: dict[str, dict[str, str]] = {}
        for m in members:
            folder, _, base = m.name.rpartition("/")
            stem, dot, ext = base.partition(".")
            if dot:
                groups.setdefault(f"{folder}/{stem}" if folder else stem, {})[ext.lower()] = m.name
        for key, files in groups.items():
            image = next((files[e] for e in files if "." + e in IMAGE_EXTS), None)
            if image is None:
                continue
            caption = None
            for ext in ("txt", "caption"):
                if ext in files:
                    caption = _tar_member(shard, files[ext]).decode("utf-8", errors="replace").strip() or None
                    break
            else:
                if "json" in files:
                    try:
                        meta = json.loads(_tar_member(shard, files["json"]))
                    except json.JSONDecodeError:
                        meta = {}
                    caption = (meta.get("caption") or meta.get("text") or None) if isinstance(meta, dict) else None
            records.append(Record(key, f"{shard}:{image}", caption,
                                  lambda s=shard, n=image: _tar_member(s, n)))
    return _unique(records)


def _tar_member(shard: Path, name: str) -> bytes:
    with tarfile.open(shard) as tar:
        f = tar.extractfile(name)
        return f.read() if f is not None else b""


# ----------------------------------------------------------------------------- decoding and buckets
def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the header; raises ValueError/OSError if unreadable."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        return img.size


def decode(data: bytes, channels: int):
    """A fully decoded PIL image in L (1 channel) or RGB (3); raises on a corrupt or truncated file."""
    from PIL import Image

    img = Image.open(io.BytesIO(data))
    img.load()
    return img.convert("L" if channels == 1 else "RGB")


def make_buckets(resolution: int, multiple: int, aspects: tuple[tuple[int, int], ...] = ASPECTS) -> list[tuple[int, int]]:
    """(height, width) buckets of about resolution^2 pixels, sides divisible by `multiple`, one per aspect."""
    if resolution < multiple or resolution % multiple:
        raise GenlabError(f"--resolution {resolution}: expected a multiple of {multiple} (autoencoder factor x patch size)")
    out = []
    for aw, ah in aspects:
        w = max(multiple, round(resolution * math.sqrt(aw / ah) / multiple) * multiple)
        h = max(multiple, round(resolution * math.sqrt(ah / aw) / multiple) * multiple)
        if (h, w) not in out:
            out.append((h, w))
    return out


def pick_bucket(width: int, height: int, buckets: list[tuple[int, int]]) -> int | None:
    """Index of the bucket whose aspect ratio is closest (log scale); None if the image is smaller than the
    smallest bucket side (upscaling it would only train on blur)."""
    if min(width, height) < min(min(b) for b in buckets):
        return None
    ratio = math.log(width / height)
    return min(range(len(buckets)), key=lambda i: abs(math.log(buckets[i][1] / buckets[i][0]) - ratio))


def fit_to_bucket(img, bucket: tuple[int, int], crop: str = "center", seed: int = 0) -> np.ndarray:
    """Resize to cover (h, w) and crop -> float32 (C, h, w) in [-1, 1]."""
    from PIL import Image

    bh, bw = bucket
    scale = max(bw / img.width, bh / img.height)
    size = (max(bw, round(img.width * scale)), max(bh, round(img.height * scale)))
    img = img.resize(size, Image.BICUBIC if scale < 1 else Image.LANCZOS)
    if crop == "random":
        rng = np.random.default_rng(seed)
        left, top = int(rng.integers(0, size[0] - bw + 1)), int(rng.integers(0, size[1] - bh + 1))
    else:
        left, top = (size[0] - bw) // 2, (size[1] - bh) // 2
    arr = np.asarray(img.crop((left, top, left + bw, top + bh)), dtype=np.float32) / 127.5 - 1.0
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
