"""A packed cache: every sample decoded and resized once into memory-mapped uint8 shards.

Decoding four PNGs per sample costs far more than the augmentations and the
network's input pipeline together; ``hpa pack DATA --size S -o CACHE`` pays it
once. Afterwards ``hpa train CACHE`` and ``hpa predict RUN CACHE`` read each
sample as one contiguous ``(4, S, S)`` uint8 block of a memory-mapped file: no
decoding, no resizing, and the operating system's page cache shared by every
data-loader worker.

A cache folder holds

``pack.json``
    format tag and version, side ``S``, sample count, rows per shard, one
    entry per shard (file name, rows, SHA-256, and ``inputs``: the SHA-256 of
    its samples' image files' names, sizes and BLAKE2b digests), whether the
    pack is complete, and the fingerprint of the source dataset (as
    :meth:`~hpa_classify.data.layout.Dataset.fingerprint` gives it);
``index.csv``
    ``Id`` and, for a labelled dataset, ``Target``, in row order;
``shard-00000.npy`` ...
    ``uint8`` arrays of shape ``(rows, 4, S, S)`` in NumPy's ``.npy`` format,
    channels in :data:`~hpa_classify.classes.CHANNELS` order;
``shard-00000.done`` ...
    written once a shard is complete, holding its SHA-256 and ``inputs``.
    ``hpa pack`` run again with the same arguments re-hashes the image files
    of the shards that have one (in its worker processes) and keeps those
    whose files are unchanged; it packs the rest, so an image edited in place
    is packed again.

``hpa pack CACHE --verify`` re-hashes every shard against ``pack.json``;
opening a cache checks ``pack.json`` (keys, types, ranges, shard files inside
the pack) and every shard's presence, shape and file size.

Safety: the pack folder (``-o``) may not be, hold or lie inside an input (the
CSV, the image folder, a source pack); an existing folder is only resumed or,
with ``force``, replaced when its ``pack.json`` carries this tool's format
tag; the disk's free space is checked before a shard is written, and shard
files are allocated in full when created, so a full disk is an error naming
the path rather than a SIGBUS in a worker.

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
import re
import shutil
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hpa_classify.classes import CHANNELS, format_target
from hpa_classify.data.io import load_sample_digests, read_file, resize
from hpa_classify.data.layout import CONTENT_HASH, Dataset, fingerprint_line, read_table
from hpa_classify.data.workers import process_pool, worker_count
from hpa_classify.errors import DataError, DiskFullError, HPAError, brief
from hpa_classify.fileio import (
    disk_full_error,
    existing_parent,
    file_digest,
    format_bytes,
    is_disk_full,
    write_json,
    write_text,
)
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
    """Samples per shard of side ``size`` so that a shard holds at most ``shard_bytes``."""
    return max(1, shard_bytes // (len(CHANNELS) * size * size))


def is_pack(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a folder made by :func:`pack` (it holds ``pack.json``)."""
    p = Path(path)
    return p.is_dir() and (p / META_NAME).is_file()


def _written_by_pack(root: Path) -> bool:
    """Whether ``root/pack.json`` is a JSON object with this tool's format tag."""
    try:
        with open(root / META_NAME, "rb") as fh:
            meta = json.loads(fh.read(MAX_META_BYTES + 1))
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(meta, dict) and meta.get("format") == PACK_FORMAT


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


def _read_meta(root: Path) -> dict[str, Any]:
    """``root/pack.json``, checked: a :class:`DataError` naming the file and key otherwise."""
    path = root / META_NAME
    raw = read_file(path, "pack index", limit=MAX_META_BYTES)
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise DataError(f"{path}: unreadable pack index ({brief(str(exc), 120)})") from None
    if not isinstance(meta, dict) or meta.get("format") != PACK_FORMAT:
        raise DataError(f"{path}: not a pack index written by 'hpa pack'")
    if meta.get("version") != PACK_VERSION:
        raise DataError(
            f"{path}: pack format version {brief(meta.get('version'))}, this version reads {PACK_VERSION}; "
            "pack the data again"
        )
    _check_meta(meta, path, root)
    return meta


def _check_meta(meta: dict[str, Any], path: Path, root: Path) -> None:
    """Keys, types and ranges of a pack index, and shard files that stay inside the pack."""

    def bad(key: str, what: str, value: object) -> DataError:
        return DataError(f"{path}: '{key}' {what}, got {brief(value)}; pack the data again")

    def integer(container: dict[str, Any], key: str, name: str, low: int, high: int | None = None) -> int:
        if key not in container:
            raise DataError(f"{path}: '{name}' is missing; pack the data again")
        value = container[key]
        if type(value) is not int or value < low or (high is not None and value > high):
            span = f"{low}-{high}" if high is not None else f">= {low}"
            raise bad(name, f"must be an integer {span}", value)
        return value

    integer(meta, "size", "size", 16, 4096)
    n = integer(meta, "n_samples", "n_samples", 1)
    per = integer(meta, "rows_per_shard", "rows_per_shard", 1)
    for key in ("complete", "has_labels"):
        if key in meta and not isinstance(meta[key], bool):
            raise bad(key, "must be true or false", meta[key])
    if "source" in meta and not isinstance(meta["source"], dict):
        raise bad("source", "must be a mapping", meta["source"])
    shards = meta.get("shards")
    if not isinstance(shards, list) or not shards:
        raise bad("shards", "must be a non-empty list", shards)
    expected = -(-n // per)
    if len(shards) != expected:
        raise bad("shards", f"must list {expected} shards ({n} samples, {per} per shard)", f"{len(shards)} shards")
    seen: set[str] = set()
    for k, shard in enumerate(shards):
        name = f"shards[{k}]"
        if not isinstance(shard, dict):
            raise bad(name, "must be a mapping", shard)
        rows = integer(shard, "rows", f"{name}.rows", 1, per)
        want = per if k < len(shards) - 1 else n - per * (len(shards) - 1)
        if rows != want:
            raise bad(f"{name}.rows", f"must be {want}", rows)
        file = shard.get("file")
        if not _safe_shard_name(file, root):
            raise bad(f"{name}.file", "must name a file inside the pack folder", file)
        if file in seen:
            raise bad(f"{name}.file", "names a shard twice", file)
        seen.add(file)
        for key in ("sha256", "inputs"):
            value = shard.get(key)
            if value is not None and not (isinstance(value, str) and re.fullmatch(r"[0-9a-f]{64}", value)):
                raise bad(f"{name}.{key}", "must be a SHA-256 hex digest or null", value)


def _safe_shard_name(name: object, root: Path) -> bool:
    """A plain file name (no folder, not absolute, no ``..``) that does not resolve outside ``root``."""
    if not isinstance(name, str) or not name or len(name) > 255 or name in (".", ".."):
        return False
    if "/" in name or "\\" in name or "\x00" in name or os.path.isabs(name):
        return False
    try:
        return (root / name).resolve().parent == root.resolve()  # a symlink may not lead out
    except (OSError, RuntimeError):
        return False


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
    if meta.get("has_labels") is True and labels is None:
        raise DataError(f"{root / INDEX_NAME}: no 'Target' column, but {root / META_NAME} says the pack has labels")
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
        bad = verify_pack(root, progress=False)
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
        if not file.is_file() or shard.get("sha256") != file_digest(file, "sha256"):
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
        {"file": _shard_name(k), "rows": min(rows_per_shard, n - start), "sha256": None, "inputs": None}
        for k, start in enumerate(range(0, n, rows_per_shard))
    ]
    return {
        "format": PACK_FORMAT,
        "version": PACK_VERSION,
        "size": size,
        "n_samples": n,
        "channels": list(CHANNELS),
        "dtype": "uint8",
        "layout": "N,C,H,W",
        "rows_per_shard": rows_per_shard,
        "has_labels": data.labels is not None,
        "shards": shards,
        "source": _source(data),
        "complete": False,
    }


def _source(data: Dataset) -> dict[str, Any]:
    """What is being packed, cheaply: the CSV's hash and the file names (contents come later).

    A pack source is named by its own fingerprint, which holds its shards' checksums.
    """
    if isinstance(data, PackedDataset):
        return dict(data.fingerprint())
    try:
        csv_sha256 = file_digest(data.csv_path, "sha256")
    except OSError as exc:
        raise DataError(f"{data.csv_path}: cannot read ({exc.strerror})") from None
    names = hashlib.sha256()
    for sample_id, files in zip(data.ids, data.files):
        names.update("\t".join([sample_id, *(Path(files[c]).name for c in CHANNELS if c in files)]).encode())
        names.update(b"\n")
    return {
        "csv": str(data.csv_path.resolve()),
        "image_dir": str(data.image_dir.resolve()),
        "csv_sha256": csv_sha256,
        "names_sha256": names.hexdigest(),
        "n_samples": len(data),
    }


_PLAN_KEYS = ("version", "size", "n_samples", "rows_per_shard", "has_labels")


def _source_key(source: Any) -> tuple[Any, Any]:
    if not isinstance(source, dict):
        return (None, None)
    return source.get("csv_sha256"), source.get("names_sha256") or source.get("files_sha256")


def _same_plan(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Same CSV, file names, size and shard size: the pack can be resumed or brought up to date."""
    return all(a.get(k) == b.get(k) for k in _PLAN_KEYS) and _source_key(a.get("source")) == _source_key(
        b.get("source")
    )


def _index_text(data: Dataset) -> str:
    if data.labels is None:
        return "Id\n" + "".join(f"{i}\n" for i in data.ids)
    return "Id,Target\n" + "".join(f"{i},{format_target(t)}\n" for i, t in zip(data.ids, data.labels))


def _shard_done(root: Path, shard: dict[str, Any], size: int) -> tuple[str, str | None] | None:
    """``(sha256, inputs)`` recorded for a finished shard, or None if it must be packed again.

    ``inputs`` is None for a marker written before inputs were recorded.
    """
    file = root / shard["file"]
    done = _done_path(file)
    if not (done.is_file() and file.is_file()):
        return None
    if file.stat().st_size != _npy_bytes(shard["rows"], size):
        return None
    try:
        lines = done.read_text(encoding="utf-8").split()
    except (OSError, UnicodeDecodeError):
        return None
    digest = lines[0] if lines and re.fullmatch(r"[0-9a-f]{64}", lines[0]) else None
    if digest is None:
        return None
    inputs = lines[1] if len(lines) > 1 and re.fullmatch(r"[0-9a-f]{64}", lines[1]) else None
    return digest, inputs


def _pack_chunk(task: tuple[str, int, list[dict[str, str]], int]) -> tuple[int, str]:
    """Decode samples into rows ``start...`` of one shard.

    Returns how many were written and their files' fingerprint lines, hashed
    from the very bytes decoded.
    """
    path, start, files, size = task
    arr = np.load(path, mmap_mode="r+")
    lines = []
    for k, sample_files in enumerate(files):
        image, digests = load_sample_digests(sample_files, size, CONTENT_HASH)
        arr[start + k] = image
        lines.extend(fingerprint_line(sample_files[c], *digests[c]) for c in CHANNELS)
    arr.flush()
    del arr
    return len(files), "".join(lines)


def _hash_chunk(files: list[dict[str, str]]) -> tuple[int, str]:
    """The fingerprint lines of some samples' files (a finished shard's inputs, checked again)."""
    lines = []
    for sample_files in files:
        for c in CHANNELS:
            data = read_file(Path(sample_files[c]))
            lines.append(fingerprint_line(sample_files[c], len(data), hashlib.new(CONTENT_HASH, data).hexdigest()))
    return len(files), "".join(lines)


def _hash_shard(path: str) -> str:
    return file_digest(path, "sha256")


def _read_chunk_task(task: tuple[str, int, list[int], int, Dataset]) -> tuple[int, str]:
    """Like :func:`_pack_chunk`, for a source that is itself a pack (re-packing at another side)."""
    path, start, indices, size, data = task
    arr = np.load(path, mmap_mode="r+")
    for k, i in enumerate(indices):
        arr[start + k] = data.read(i, size)
    arr.flush()
    del arr
    return len(indices), ""


def _clear(root: Path) -> None:
    """Delete the files of the pack in ``root`` (and nothing else there)."""
    for p in list(root.iterdir()):
        if _PACK_FILE.fullmatch(p.name) and (p.is_file() or p.is_symlink()):
            p.unlink()
    for name in (META_NAME, INDEX_NAME):
        (root / name).unlink(missing_ok=True)


def _check_out(root: Path, data: Dataset) -> None:
    """Refuse a pack folder that is, holds or lies inside an input of this pack."""
    out = root.resolve()
    inputs: list[tuple[str, Path]] = [("image folder", data.image_dir), ("CSV", data.csv_path)]
    if isinstance(data, PackedDataset):
        inputs.insert(0, ("source pack", data.root))
    for what, path in inputs:
        src = Path(path).resolve()
        if out == src:
            relation = f"is the {what} being packed"
        elif out.is_relative_to(src):
            relation = f"is inside the {what} being packed, {path}"
        elif src.is_relative_to(out):
            relation = f"holds the {what} being packed, {path}"
        else:
            continue
        raise DataError(f"{root}: the pack folder (-o) {relation}; choose a folder apart from the data")


def _allocated(path: Path) -> int:
    try:
        st = path.stat()
    except OSError:
        return 0
    blocks = getattr(st, "st_blocks", None)
    return st.st_size if blocks is None else min(st.st_size, blocks * 512)


def _check_space(root: Path, plan: dict[str, Any], clearing: bool) -> None:
    """Refuse before writing when the disk lacks the space the shards still need."""
    size = plan["size"]
    want = sum(_npy_bytes(s["rows"], size) for s in plan["shards"])
    if clearing:  # the old shards go first
        have = sum(_allocated(p) for p in root.glob("shard-*.npy") if _PACK_FILE.fullmatch(p.name))
    else:
        have = sum(min(_allocated(root / s["file"]), _npy_bytes(s["rows"], size)) for s in plan["shards"])
    need = want - have + (1 << 20)  # index, pack.json, markers
    try:
        free = shutil.disk_usage(existing_parent(root)).free
    except OSError:
        return
    if need > free:
        raise DiskFullError(
            f"{root}: the pack needs {format_bytes(need)} more, but only {format_bytes(free)} are free "
            "on that disk; free some space or choose another folder (or a smaller --size)"
        )


def _create_shard(path: Path, rows: int, size: int) -> None:
    """A shard file of full size, its blocks allocated now (a full disk fails here, not in a worker)."""
    try:
        arr = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(rows, len(CHANNELS), size, size))
        del arr
        if hasattr(os, "posix_fallocate"):
            fd = os.open(path, os.O_RDWR)
            try:
                os.posix_fallocate(fd, 0, _npy_bytes(rows, size))
            except OSError as exc:
                if is_disk_full(exc):
                    raise
                # EINVAL/EOPNOTSUPP: a filesystem without fallocate; the free-space check stands
            finally:
                os.close(fd)
    except OSError as exc:
        if is_disk_full(exc):
            raise disk_full_error(path, exc) from None
        raise DataError(f"{path}: cannot create the shard ({exc.strerror})") from None


def pack(
    data: Dataset,
    out: str | os.PathLike[str],
    size: int = 512,
    workers: int | None = None,
    shard_bytes: int = DEFAULT_SHARD_BYTES,
    force: bool = False,
    progress: bool = True,
) -> PackSummary:
    """Decode, resize and store every sample of ``data`` (already validated) in ``out``.

    Samples are decoded in parallel (``workers`` processes, default all
    cores), each task writing a chunk of rows straight into its shard's
    memory map and returning the BLAKE2b of each file it decoded. A shard
    gets its ``.done`` marker (checksum and input digest) as soon as its last
    chunk lands; ``pack.json`` is marked complete at the end. Run again on the
    same CSV, file names, size and shard size, it re-hashes the files of the
    finished shards and keeps those whose files are unchanged (an interrupted
    run resumes; an edited image is packed again); on other data it refuses
    unless ``force``.

    Raises
    ------
    DataError
        ``out`` is, holds or lies inside an input; ``out`` holds something
        else than a pack written by this tool (``force`` does not change
        that), or a pack of other data or another size without ``force``; a
        sample cannot be read.
    DiskFullError
        The disk lacks the space the shards need (checked before writing), or
        filled up while writing.
    """
    root = Path(out)
    if not 16 <= size <= 4096:
        raise DataError(f"pack size must be 16-4096 px, got {size}")
    if len(data) == 0:
        raise DataError(f"{data.csv_path}: no samples to pack")
    _check_out(root, data)
    plan = _plan(data, size, shard_rows(size, shard_bytes))
    clearing = False
    if root.exists() and not root.is_dir():
        raise DataError(f"{root}: exists and is not a folder; choose an empty or new folder")
    if (root / META_NAME).exists():
        if not _written_by_pack(root):
            raise DataError(
                f"{root}: its {META_NAME} was not written by 'hpa pack'; choose an empty or new folder "
                "(--force replaces only a pack)"
            )
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
            clearing = True
    elif root.exists() and any(root.iterdir()):
        raise DataError(f"{root}: exists and is not a pack; choose an empty or new folder")
    _check_space(root, plan, clearing)
    if clearing:
        _clear(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if is_disk_full(exc):
            raise disk_full_error(root, exc) from None
        raise DataError(f"{root}: cannot create the pack folder ({exc.strerror})") from None
    write_text(root / INDEX_NAME, _index_text(data))
    write_json(root / META_NAME, plan)

    from_files = not isinstance(data, PackedDataset)
    rows = plan["rows_per_shard"]

    def chunks(k: int) -> Iterator[tuple[int, list[int]]]:
        first, n = k * rows, plan["shards"][k]["rows"]
        for start in range(0, n, CHUNK):
            yield start, list(range(first + start, first + min(start + CHUNK, n)))

    todo: list[int] = []
    finished: dict[int, tuple[str, str | None]] = {}
    for k, shard in enumerate(plan["shards"]):
        done = _shard_done(root, shard, size)
        if done is None or (from_files and done[1] is None):
            todo.append(k)
        else:
            finished[k] = done
    lines: dict[int, str] = {}
    if finished and from_files:
        # the files of finished shards may have changed since: hash them again, in the workers
        checks = [
            (k, start, ("hash", ([data.files[i] for i in idx],)))
            for k in finished
            for start, idx in chunks(k)
        ]
        n_rows = sum(plan["shards"][k]["rows"] for k in finished)
        found = _run(checks, plan, root, workers, progress, n_rows, f"checking {n_rows} packed samples", seal=False)
        for k, text in found.items():
            if _inputs_digest(text) == finished[k][1]:
                lines[k] = text
            else:
                log.info("%s: the images of %s changed; packing it again", root, plan["shards"][k]["file"])
                del finished[k]
                todo.append(k)
    for k, (digest, inputs) in finished.items():
        plan["shards"][k]["sha256"] = digest
        plan["shards"][k]["inputs"] = inputs
    todo.sort()
    kept = len(finished)
    if kept:
        log.info("%s: keeping %d finished shards, packing %d", root, kept, len(todo))

    tasks: list[tuple[int, int, tuple]] = []
    for k in todo:
        shard = plan["shards"][k]
        path = root / shard["file"]
        _done_path(path).unlink(missing_ok=True)
        _create_shard(path, shard["rows"], size)
        for start, idx in chunks(k):
            if from_files:
                tasks.append((k, start, ("files", (str(path), start, [data.files[i] for i in idx], size))))
            else:
                tasks.append((k, start, ("read", (str(path), start, idx, size, data))))

    n_todo = sum(plan["shards"][k]["rows"] for k in todo)
    lines.update(_run(tasks, plan, root, workers, progress, n_todo, f"packing {n_todo} samples"))
    if from_files:  # the source's content fingerprint, as Dataset.fingerprint() gives it
        h = hashlib.sha256()
        for k in range(len(plan["shards"])):
            h.update(lines[k].encode())
        plan["source"]["files_sha256"] = h.hexdigest()
        plan["source"]["files_hashed"] = f"name, size, {CONTENT_HASH}"
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


def _inputs_digest(lines: str) -> str | None:
    """A shard's ``inputs``: the SHA-256 of its files' fingerprint lines (None without files)."""
    return hashlib.sha256(lines.encode()).hexdigest() if lines else None


def _do(kind: str, args: tuple) -> tuple[int, str]:
    if kind == "files":
        return _pack_chunk(args)
    if kind == "hash":
        return _hash_chunk(*args)
    return _read_chunk_task(args)


def _worker_died(root: Path) -> HPAError:
    """The error for a pool whose worker ended abruptly (killed, out of memory, SIGBUS)."""
    try:
        free = shutil.disk_usage(existing_parent(root)).free
    except OSError:
        free = None
    if free is not None and free < (64 << 20):
        return DiskFullError(
            f"{root}: a packing process ended abruptly with {format_bytes(free)} free on that disk "
            "(disk full?); free some space and run the same command again to resume"
        )
    return HPAError(
        f"{root}: a packing process ended abruptly (killed, or out of memory?); "
        "run the same command again to resume, or with fewer --workers"
    )


def _run(
    tasks: Sequence[tuple[int, int, tuple]],
    plan: dict[str, Any],
    root: Path,
    workers: int | None,
    progress: bool,
    total: int,
    description: str = "packing",
    seal: bool = True,
) -> dict[int, str]:
    """Run chunk tasks ``(shard, first row, (kind, args))``; returns each shard's fingerprint lines.

    With ``seal``, a shard whose chunks are all written is hashed (in the
    pool) and gets its ``.done`` marker and ``pack.json`` entry.
    """
    remaining = {k: 0 for k, _, _ in tasks}
    for k, _, _ in tasks:
        remaining[k] += 1
    parts: dict[int, dict[int, str]] = {k: {} for k in remaining}

    def landed(k: int, start: int, result: tuple[int, str]) -> bool:
        """Record a chunk's result; whether it was the shard's last."""
        n, text = result
        advance(n)
        parts[k][start] = text
        remaining[k] -= 1
        return remaining[k] == 0

    def shard_lines(k: int) -> str:
        return "".join(parts[k][start] for start in sorted(parts[k]))

    def finish(k: int, digest: str) -> None:
        shard = plan["shards"][k]
        shard["sha256"] = digest
        shard["inputs"] = _inputs_digest(shard_lines(k))
        write_text(_done_path(root / shard["file"]), f"{digest}\n{shard['inputs'] or ''}\n")
        write_json(root / META_NAME, plan)  # progress survives an interruption

    n_workers = worker_count(workers, len(tasks))
    task = open_task(progress, description, total)
    advance = task.advance
    try:
        if n_workers <= 1:
            for k, start, (kind, args) in tasks:
                if landed(k, start, _do(kind, args)) and seal:
                    finish(k, _hash_shard(str(root / plan["shards"][k]["file"])))
            return {k: shard_lines(k) for k in parts}
        pool = process_pool(n_workers)
        try:
            pending: dict[Future, tuple[str, int, int]] = {}
            queue: Iterator[tuple[int, int, tuple]] = iter(tasks)
            # keep the pool a few tasks ahead, not the whole list in flight
            for k, start, (kind, args) in _take(queue, 4 * n_workers):
                pending[pool.submit(_do, kind, args)] = ("chunk", k, start)
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    what, k, start = pending.pop(fut)
                    try:
                        result = fut.result()  # re-raises a worker's DataError
                    except BrokenProcessPool:
                        raise _worker_died(root) from None
                    if what == "chunk":
                        if landed(k, start, result) and seal:
                            path = str(root / plan["shards"][k]["file"])
                            pending[pool.submit(_hash_shard, path)] = ("hash", k, 0)
                        for k2, start2, (kind, args) in _take(queue, 1):
                            pending[pool.submit(_do, kind, args)] = ("chunk", k2, start2)
                    else:
                        finish(k, result)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    finally:
        task.close()
    return {k: shard_lines(k) for k in parts}


def _take(it: Iterator[tuple[int, int, tuple]], n: int) -> list[tuple[int, int, tuple]]:
    out = []
    for _ in range(n):
        try:
            out.append(next(it))
        except StopIteration:
            break
    return out
