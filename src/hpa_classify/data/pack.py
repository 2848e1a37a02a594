"""A packed cache: every sample decoded and resized once into memory-mapped uint8 shards.

Decoding four PNGs per sample costs far more than the augmentations and the
network's input pipeline together; ``hpa pack DATA --size S -o CACHE`` pays it
once. Afterwards ``hpa train CACHE`` and ``hpa predict RUN CACHE`` read each
sample as one contiguous ``(4, S, S)`` uint8 block of a memory-mapped file: no
decoding, no resizing, and the operating system's page cache shared by every
data-loader worker.

A cache folder holds

``pack.json``
    format version, side ``S``, sample count, rows per shard, one entry per
    shard (file name, rows, SHA-256), whether the pack is complete, and the
    fingerprint of the source dataset (CSV and file list);
``index.csv``
    ``Id`` and, for a labelled dataset, ``Target``, in row order;
``shard-00000.npy`` ...
    ``uint8`` arrays of shape ``(rows, 4, S, S)`` in NumPy's ``.npy`` format,
    channels in :data:`~hpa_classify.classes.CHANNELS` order;
``shard-00000.done`` ...
    written once a shard is complete, holding its SHA-256. An interrupted
    ``hpa pack`` run again with the same arguments keeps the shards that have
    one and packs the rest.

``hpa pack CACHE --verify`` re-hashes every shard against ``pack.json``;
opening a cache checks every shard's presence, shape and file size.

Examples
--------
>>> shard_rows(512, 1 << 30)
1024
>>> shard_rows(64, 1 << 20)
64
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hpa_classify.classes import CHANNELS, format_target
from hpa_classify.data.io import load_sample, resize
from hpa_classify.data.layout import Dataset, read_table
from hpa_classify.data.workers import process_pool, worker_count
from hpa_classify.errors import DataError
from hpa_classify.fileio import write_json, write_text
from hpa_classify.progress import Progress, open_task, track

log = logging.getLogger(__name__)

__all__ = [
    "PackedDataset",
    "PackSummary",
    "is_pack",
    "open_pack",
    "pack",
    "shard_rows",
    "verify_pack",
]

PACK_VERSION = 1
META_NAME = "pack.json"
INDEX_NAME = "index.csv"
#: Default shard size: 1 GiB, i.e. 1,024 samples at 512 px.
DEFAULT_SHARD_BYTES = 1 << 30
#: Samples one worker decodes per task.
CHUNK = 32


def shard_rows(size: int, shard_bytes: int = DEFAULT_SHARD_BYTES) -> int:
    """Samples per shard of side ``size`` so that a shard holds at most ``shard_bytes``."""
    return max(1, shard_bytes // (len(CHANNELS) * size * size))


def is_pack(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a folder made by :func:`pack` (it holds ``pack.json``)."""
    p = Path(path)
    return p.is_dir() and (p / META_NAME).is_file()


def _shard_name(k: int) -> str:
    return f"shard-{k:05d}.npy"


def _done_path(shard: Path) -> Path:
    return shard.with_suffix(".done")


def _sha256(path: Path, block: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            h.update(chunk)
    return h.hexdigest()


def _npy_bytes(rows: int, size: int) -> int:
    """Size on disk of a ``(rows, 4, size, size)`` uint8 ``.npy`` file."""
    header = np.lib.format.header_data_from_array_1_0(np.empty((0,), np.uint8))
    header["shape"] = (rows, len(CHANNELS), size, size)
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    return buf.tell() + rows * len(CHANNELS) * size * size


# ----------------------------------------------------------------------------- reading


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
                arr = np.load(path, mmap_mode="r")
            except (OSError, ValueError) as exc:
                raise DataError(f"{path}: cannot open the pack shard ({exc})") from None
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
            "csv_sha256": hashlib.sha256(self.csv_path.read_bytes()).hexdigest(),
            "files_sha256": hashlib.sha256(shards.encode()).hexdigest(),
            "n_samples": len(self.ids),
            "pack_size": self.side,
            "source_csv": str(source.get("csv", "")),
            "source_csv_sha256": str(source.get("csv_sha256", "")),
            "source_files_sha256": str(source.get("files_sha256", "")),
        }


def _read_meta(root: Path) -> dict[str, Any]:
    path = root / META_NAME
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: unreadable pack index ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != "hpa-pack":
        raise DataError(f"{path}: not a pack index written by 'hpa pack'")
    if meta.get("version") != PACK_VERSION:
        raise DataError(
            f"{path}: pack format version {meta.get('version')}, this version reads {PACK_VERSION}; "
            "pack the data again"
        )
    return meta


def open_pack(
    path: str | os.PathLike[str], require_labels: bool = False, verify: bool = False
) -> PackedDataset:
    """Open a packed cache made by :func:`pack`.

    Every shard must be present with the shape and file size the index gives;
    with ``verify`` its SHA-256 is checked too (this reads every byte).

    Raises
    ------
    DataError
        Naming the file: not a pack, an unfinished pack (run ``hpa pack`` again
        to finish it), a missing, short or altered shard, labels needed but absent.
    """
    root = Path(path)
    meta = _read_meta(root)
    if not meta.get("complete"):
        raise DataError(
            f"{root}: the pack is unfinished; run the same 'hpa pack' command again to finish it"
        )
    ids, labels = read_table(root / INDEX_NAME)
    if len(ids) != meta["n_samples"]:
        raise DataError(
            f"{root / INDEX_NAME}: {len(ids)} rows, but {root / META_NAME} counts {meta['n_samples']}"
        )
    if require_labels and labels is None:
        raise DataError(f"{root / INDEX_NAME}: no 'Target' column, but labels are needed here")
    side = int(meta["size"])
    for shard in meta["shards"]:
        file = root / shard["file"]
        if not file.is_file():
            raise DataError(f"{file}: pack shard missing")
        expected = _npy_bytes(shard["rows"], side)
        if file.stat().st_size != expected:
            raise DataError(
                f"{file}: pack shard is {file.stat().st_size} bytes, expected {expected} (truncated?)"
            )
    if verify:
        bad = verify_pack(root)
        if bad:
            raise DataError(f"{root}: shards do not match their checksums: {', '.join(bad)}")
    return PackedDataset(
        csv_path=root / INDEX_NAME,
        image_dir=root,
        ids=ids,
        labels=labels,
        root=root,
        side=side,
        rows_per_shard=int(meta["rows_per_shard"]),
        shard_files=[s["file"] for s in meta["shards"]],
        rows=np.arange(len(ids), dtype=np.int64),
        meta=meta,
    )


def verify_pack(path: str | os.PathLike[str], progress: Progress | None = None) -> list[str]:
    """Re-hash every shard; return the names of those that differ from ``pack.json``."""
    root = Path(path)
    meta = _read_meta(root)
    shards = meta["shards"]
    bad: list[str] = []
    for shard in track(shards, "verifying shards", progress=progress):
        file = root / shard["file"]
        if not file.is_file() or shard.get("sha256") != _sha256(file):
            bad.append(shard["file"])
    return bad


# ----------------------------------------------------------------------------- writing


@dataclass
class PackSummary:
    """What :func:`pack` did."""

    root: Path
    n_samples: int
    size: int
    n_shards: int
    packed_shards: int
    kept_shards: int
    bytes: int


def _plan(data: Dataset, size: int, rows_per_shard: int) -> dict[str, Any]:
    n = len(data)
    shards = [
        {"file": _shard_name(k), "rows": min(rows_per_shard, n - start), "sha256": None}
        for k, start in enumerate(range(0, n, rows_per_shard))
    ]
    return {
        "format": "hpa-pack",
        "version": PACK_VERSION,
        "size": size,
        "n_samples": n,
        "channels": list(CHANNELS),
        "dtype": "uint8",
        "layout": "N,C,H,W",
        "rows_per_shard": rows_per_shard,
        "has_labels": data.labels is not None,
        "shards": shards,
        "source": data.fingerprint(),
        "complete": False,
    }


_PLAN_KEYS = ("version", "size", "n_samples", "rows_per_shard", "has_labels", "source")


def _same_plan(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return all(a.get(k) == b.get(k) for k in _PLAN_KEYS)


def _index_text(data: Dataset) -> str:
    if data.labels is None:
        return "Id\n" + "".join(f"{i}\n" for i in data.ids)
    return "Id,Target\n" + "".join(f"{i},{format_target(t)}\n" for i, t in zip(data.ids, data.labels))


def _shard_done(root: Path, shard: dict[str, Any], size: int) -> str | None:
    """The SHA-256 recorded for a finished shard, or None if it must be packed again."""
    file = root / shard["file"]
    done = _done_path(file)
    if not (done.is_file() and file.is_file()):
        return None
    if file.stat().st_size != _npy_bytes(shard["rows"], size):
        return None
    digest = done.read_text(encoding="utf-8").strip()
    return digest or None


def _pack_chunk(task: tuple[str, int, list[dict[str, str]], int]) -> int:
    """Decode samples into rows ``start...`` of one shard; returns how many were written."""
    path, start, files, size = task
    arr = np.load(path, mmap_mode="r+")
    for k, sample_files in enumerate(files):
        arr[start + k] = load_sample(sample_files, size)
    arr.flush()
    del arr
    return len(files)


def _hash_shard(path: str) -> str:
    return _sha256(Path(path))


def _read_chunk_task(task: tuple[str, int, list[int], int, Dataset]) -> int:
    """Like :func:`_pack_chunk`, for a source that is itself a pack (re-packing at another side)."""
    path, start, indices, size, data = task
    arr = np.load(path, mmap_mode="r+")
    for k, i in enumerate(indices):
        arr[start + k] = data.read(i, size)
    arr.flush()
    del arr
    return len(indices)


def _clear(root: Path) -> None:
    for p in list(root.glob("shard-*.npy")) + list(root.glob("shard-*.done")):
        p.unlink()
    for name in (META_NAME, INDEX_NAME):
        (root / name).unlink(missing_ok=True)


def pack(
    data: Dataset,
    out: str | os.PathLike[str],
    size: int = 512,
    workers: int | None = None,
    shard_bytes: int = DEFAULT_SHARD_BYTES,
    force: bool = False,
    progress: Progress | None = None,
) -> PackSummary:
    """Decode, resize and store every sample of ``data`` (already validated) in ``out``.

    Samples are decoded in parallel (``workers`` processes, default all
    cores), each task writing a chunk of rows straight into its shard's
    memory map. A shard gets its ``.done`` marker and checksum as soon as its
    last chunk lands; ``pack.json`` is marked complete at the end. Run again
    on the same data, size and shard size, it keeps the finished shards (an
    interrupted run resumes); on other data it refuses unless ``force``.

    Raises
    ------
    DataError
        ``out`` holds something else, or holds a pack of other data or
        another size and ``force`` is not given; or a sample cannot be read.
    """
    root = Path(out)
    if not 16 <= size <= 4096:
        raise DataError(f"pack size must be 16-4096 px, got {size}")
    if len(data) == 0:
        raise DataError(f"{data.csv_path}: no samples to pack")
    plan = _plan(data, size, shard_rows(size, shard_bytes))
    if is_pack(root):
        try:
            existing: dict[str, Any] | None = _read_meta(root)
        except DataError:
            existing = None
        if existing is None or not _same_plan(existing, plan):
            if not force:
                raise DataError(
                    f"{root}: holds a pack of other data, size or shard size; "
                    "pass --force to replace it"
                )
            _clear(root)
    elif root.exists() and any(root.iterdir()):
        raise DataError(f"{root}: exists and is not a pack; choose an empty or new folder")
    root.mkdir(parents=True, exist_ok=True)
    write_text(root / INDEX_NAME, _index_text(data))
    write_json(root / META_NAME, plan)

    todo: list[int] = []
    for k, shard in enumerate(plan["shards"]):
        digest = _shard_done(root, shard, size)
        if digest is None:
            todo.append(k)
        else:
            shard["sha256"] = digest
    kept = len(plan["shards"]) - len(todo)
    if kept:
        log.info("%s: keeping %d finished shards, packing %d", root, kept, len(todo))

    rows = plan["rows_per_shard"]
    tasks: list[tuple[int, tuple]] = []
    for k in todo:
        shard = plan["shards"][k]
        path = root / shard["file"]
        _done_path(path).unlink(missing_ok=True)
        arr = np.lib.format.open_memmap(
            path, mode="w+", dtype=np.uint8, shape=(shard["rows"], len(CHANNELS), size, size)
        )
        del arr
        first = k * rows
        for start in range(0, shard["rows"], CHUNK):
            idx = list(range(first + start, first + min(start + CHUNK, shard["rows"])))
            if isinstance(data, PackedDataset):
                tasks.append((k, ("read", (str(path), start, idx, size, data))))
            else:
                tasks.append((k, ("files", (str(path), start, [data.files[i] for i in idx], size))))

    n_todo = sum(plan["shards"][k]["rows"] for k in todo)
    _run(tasks, plan, root, workers, progress, n_todo)
    plan["complete"] = True
    write_json(root / META_NAME, plan)
    return PackSummary(
        root=root,
        n_samples=len(data),
        size=size,
        n_shards=len(plan["shards"]),
        packed_shards=len(todo),
        kept_shards=kept,
        bytes=sum(_npy_bytes(s["rows"], size) for s in plan["shards"]),
    )


def _do(kind: str, args: tuple) -> int:
    return _pack_chunk(args) if kind == "files" else _read_chunk_task(args)


def _run(
    tasks: Sequence[tuple[int, tuple]],
    plan: dict[str, Any],
    root: Path,
    workers: int | None,
    progress: Progress | None,
    total: int,
) -> None:
    remaining = {k: 0 for k, _ in tasks}
    for k, _ in tasks:
        remaining[k] += 1

    def finish(k: int, digest: str) -> None:
        shard = plan["shards"][k]
        shard["sha256"] = digest
        write_text(_done_path(root / shard["file"]), digest + "\n")
        write_json(root / META_NAME, plan)  # progress survives an interruption

    n_workers = worker_count(workers, len(tasks))
    task = open_task(progress, f"packing {total} samples", total)
    advance = task.advance
    try:
        if n_workers <= 1:
            for k, (kind, args) in tasks:
                advance(_do(kind, args))
                remaining[k] -= 1
                if remaining[k] == 0:
                    finish(k, _hash_shard(str(root / plan["shards"][k]["file"])))
            return
        pool = process_pool(n_workers)
        try:
            pending: dict[Future, tuple[str, int]] = {}
            queue: Iterator[tuple[int, tuple]] = iter(tasks)
            # keep the pool a few tasks ahead, not the whole list in flight
            for item in _take(queue, 4 * n_workers):
                k, (kind, args) = item
                pending[pool.submit(_do, kind, args)] = ("chunk", k)
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    what, k = pending.pop(fut)
                    result = fut.result()  # re-raises a worker's DataError
                    if what == "chunk":
                        advance(result)
                        remaining[k] -= 1
                        if remaining[k] == 0:
                            path = str(root / plan["shards"][k]["file"])
                            pending[pool.submit(_hash_shard, path)] = ("hash", k)
                        for item in _take(queue, 1):
                            k2, (kind, args) = item
                            pending[pool.submit(_do, kind, args)] = ("chunk", k2)
                    else:
                        finish(k, result)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    finally:
        task.close()


def _take(it: Iterator[tuple[int, tuple]], n: int) -> list[tuple[int, tuple]]:
    out = []
    for _ in range(n):
        try:
            out.append(next(it))
        except StopIteration:
            break
    return out
