"""The pack's file format and :class:`PackedDataset`, which reads samples from its shards.

A shard ``shard-00000.npy`` holds a ``(rows, 4, S, S)`` uint8 array in NumPy's
``.npy`` format; its ``shard-00000.done`` marker is written once it is
complete.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hpa_classify.classes import CHANNELS
from hpa_classify.data.io import resize
from hpa_classify.data.layout import Dataset
from hpa_classify.errors import DataError, brief
from hpa_classify.fileio import file_digest

PACK_FORMAT = "hpa-pack"
PACK_VERSION = 1
META_NAME = "pack.json"
INDEX_NAME = "index.csv"
#: Largest pack.json read (one entry per shard: a few hundred bytes each).
MAX_META_BYTES = 64 << 20
#: Files of a pack that :func:`pack` may delete when replacing one (with force).
_PACK_FILE = re.compile(r"shard-\d{5,}\.(npy|done)")
#: Default shard size: 1 GiB, i.e. 1,024 samples at 512 px.
DEFAULT_SHARD_BYTES = 1 << 30
#: Samples one worker decodes per task.
CHUNK = 32


def shard_rows(size: int, shard_bytes: int = DEFAULT_SHARD_BYTES) -> int:
    """Samples per shard of side ``size`` so that a shard holds at most ``shard_bytes``.

    Examples
    --------
    >>> shard_rows(512, 1 << 30)
    1024
    >>> shard_rows(64, 1 << 20)
    64
    """
    return max(1, shard_bytes // (len(CHANNELS) * size * size))


def _shard_name(k: int) -> str:
    return f"shard-{k:05d}.npy"


def _done_path(shard: Path) -> Path:
    return shard.with_suffix(".done")


def _npy_bytes(rows: int, size: int) -> int:
    """Size on disk of a ``(rows, 4, size, size)`` uint8 ``.npy`` file."""
    header = np.lib.format.header_data_from_array_1_0(np.empty((0,), np.uint8))
    header["shape"] = (rows, len(CHANNELS), size, size)
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    return buf.tell() + rows * len(CHANNELS) * size * size


@dataclass
class PackedDataset(Dataset):
    """A :class:`~hpa_classify.data.layout.Dataset` whose samples come from a packed cache.

    ``read`` returns a sample's ``(4, S, S)`` uint8 block from the shard's
    memory map (resized when another side is asked for). The memory maps are
    opened lazily in each process, so the object pickles small into
    data-loader workers. ``rows`` maps this dataset's samples to rows of the
    pack (a subset keeps the pack and picks rows).
    """

    root: Path = Path()
    side: int = 0
    rows_per_shard: int = 1
    shard_files: list[str] = field(default_factory=list)
    rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    meta: dict[str, Any] = field(default_factory=dict, repr=False)
    _maps: dict[int, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_maps"] = {}
        return state

    def _shard(self, k: int) -> np.ndarray:
        arr = self._maps.get(k)
        if arr is None:
            path = self.root / self.shard_files[k]
            try:
                arr = np.load(path, mmap_mode="r")  # allow_pickle stays False: data, never objects
            except (OSError, ValueError) as exc:
                raise DataError(f"{path}: cannot open the pack shard ({brief(str(exc), 120)})") from None
            rows = int(self.meta["shards"][k]["rows"]) if self.meta.get("shards") else arr.shape[0]
            want = (rows, len(CHANNELS), self.side, self.side)
            if arr.dtype != np.uint8 or arr.shape != want:
                raise DataError(f"{path}: pack shard holds {arr.dtype} {arr.shape}, expected uint8 {want}")
            self._maps[k] = arr
        return arr

    def read(self, index: int, size: int | None = None) -> np.ndarray:
        """The uint8 ``(4, size, size)`` sample at ``index`` (the pack's side by default)."""
        shard, row = divmod(int(self.rows[index]), self.rows_per_shard)
        image = np.array(self._shard(shard)[row])
        if size is not None and size != self.side:
            image = np.stack([resize(plane, size) for plane in image])
        return image

    def subset(self, index: Iterable[int]) -> PackedDataset:
        idx = list(index)
        return PackedDataset(
            csv_path=self.csv_path,
            image_dir=self.image_dir,
            ids=[self.ids[i] for i in idx],
            labels=[self.labels[i] for i in idx] if self.labels is not None else None,
            root=self.root,
            side=self.side,
            rows_per_shard=self.rows_per_shard,
            shard_files=self.shard_files,
            rows=self.rows[np.asarray(idx, np.int64)] if idx else np.zeros(0, np.int64),
            meta=self.meta,
        )

    def fingerprint(self) -> dict[str, str | int]:
        """What data a run saw: the pack's index and shard checksums, and its source."""
        shards = "\n".join(f"{s['file']}\t{s['sha256']}" for s in self.meta.get("shards", []))
        source = self.meta.get("source", {})
        return {
            "csv": str(self.csv_path),
            "image_dir": str(self.image_dir),
            "csv_sha256": file_digest(self.csv_path, "sha256"),
            "files_sha256": hashlib.sha256(shards.encode()).hexdigest(),
            "n_samples": len(self.ids),
            "pack_size": self.side,
            "source_csv": str(source.get("csv", "")),
            "source_csv_sha256": str(source.get("csv_sha256", "")),
            "source_files_sha256": str(source.get("files_sha256", "")),
        }
