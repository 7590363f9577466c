"""On-disk caches of encoded training data: memory-mapped `.npy` shards plus one JSON index.

    cache = ShardCache(cache_dir("t2i-latents") / encoder_key)
    if key not in cache: cache.add([key, ...], array)      # one shard per call, (n, *row shape)
    row = cache.row(key)                                    # a read-only memmap view: no RAM per row

A row's key says what went in (the file's content hash, bucket, crop), the folder says what encoded
it (a hash of the encoder's weights), so a replaced image gets a new key and is encoded again while
every other row is found. Each shard is written under a temporary name and renamed, then the index is
rewritten atomically: a run killed while encoding keeps every finished shard and resumes from there.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path

import numpy as np

from genlab.core.io import atomic_path, atomic_write_text
from genlab.errors import GenlabError


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


def file_hash(paths: list[Path]) -> str:
    """A key for an encoder: the bytes of its weight/config files (streamed, so a large VAE costs no RAM)."""
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(p.name.encode())
        with p.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:24]


class ShardCache:
    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.index_path = self.folder / "index.json"
        self.rows: dict[str, tuple[str, int]] = {}
        if self.index_path.is_file():
            try:
                raw = json.loads(self.index_path.read_text())
                self.rows = {k: (v[0], int(v[1])) for k, v in raw["rows"].items()}
            except (json.JSONDecodeError, KeyError, TypeError, IndexError):
                raise GenlabError(f"cache index {self.index_path} is corrupt; delete {self.folder} to rebuild it") from None
        self._open: dict[str, np.ndarray] = {}

    def __contains__(self, key: str) -> bool:
        return key in self.rows and (self.folder / self.rows[key][0]).is_file()

    def add(self, keys: list[str], array: np.ndarray) -> None:
        if len(keys) != array.shape[0]:
            raise ValueError(f"{len(keys)} keys for {array.shape[0]} rows")
        name = f"shard_{uuid.uuid4().hex[:12]}.npy"
        with atomic_path(self.folder / name) as tmp, tmp.open("wb") as f:
            np.save(f, np.ascontiguousarray(array))
        self.rows.update({k: (name, i) for i, k in enumerate(keys)})
        atomic_write_text(self.index_path, json.dumps({"rows": self.rows}) + "\n")

    def row(self, key: str) -> np.ndarray:
        shard, i = self.rows[key]
        if shard not in self._open:
            self._open[shard] = np.load(self.folder / shard, mmap_mode="r")
        return self._open[shard][i]

    def __getstate__(self):  # memmaps reopen lazily in another process
        return {**self.__dict__, "_open": {}}
