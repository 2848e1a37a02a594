"""Writing a pack: :func:`pack`, the pack folder's checks, disk space and shard allocation."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hpa_classify.classes import CHANNELS
from hpa_classify.data.layout import CONTENT_HASH, Dataset
from hpa_classify.data.pack._dataset import (
    _PACK_FILE,
    DEFAULT_SHARD_BYTES,
    INDEX_NAME,
    META_NAME,
    PackedDataset,
    _done_path,
    _npy_bytes,
    shard_rows,
)
from hpa_classify.data.pack._meta import _read_meta, _written_by_pack
from hpa_classify.data.pack._plan import _chunks, _index_text, _inputs_digest, _plan, _same_plan, _shard_done
from hpa_classify.data.pack._run import _run
from hpa_classify.errors import DataError, DiskFullError
from hpa_classify.fileio import (
    disk_full_error,
    existing_parent,
    format_bytes,
    is_disk_full,
    write_json,
    write_text,
)
from hpa_classify.progress import Progress

log = logging.getLogger(__name__)


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
    progress: Progress | None = None,
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
    _prepare_folder(root, data, plan, force)
    todo, lines = _keep_finished(root, data, plan, workers, progress)
    tasks = _chunk_tasks(root, data, plan, todo)
    n_todo = sum(plan["shards"][k]["rows"] for k in todo)
    lines.update(_run(tasks, plan, root, workers, progress, n_todo, f"packing {n_todo} samples"))
    if not isinstance(data, PackedDataset):  # the source's content fingerprint, as Dataset.fingerprint() gives it
        _record_files(plan, lines)
    plan["complete"] = True
    write_json(root / META_NAME, plan)
    return PackSummary(
        root=root,
        n_samples=len(data),
        size=size,
        n_shards=len(plan["shards"]),
        packed_shards=len(todo),
        kept_shards=len(plan["shards"]) - len(todo),
        bytes=sum(_npy_bytes(s["rows"], size) for s in plan["shards"]),
    )


def _replacing(root: Path, plan: dict[str, Any], force: bool) -> bool:
    """Whether ``root`` holds a pack of other data that ``force`` lets :func:`pack` replace.

    Raises
    ------
    DataError
        ``root`` is not a folder, holds something else than a pack written by
        this tool, or a pack of other data, size or shard size without ``force``.
    """
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
            return True
    elif root.exists() and any(root.iterdir()):
        raise DataError(f"{root}: exists and is not a pack; choose an empty or new folder")
    return False


def _prepare_folder(root: Path, data: Dataset, plan: dict[str, Any], force: bool) -> None:
    """Check the pack folder and the disk's free space, clear a pack being replaced, and
    write the index and the unfinished ``pack.json``."""
    clearing = _replacing(root, plan, force)
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


def _keep_finished(
    root: Path, data: Dataset, plan: dict[str, Any], workers: int | None, progress: Progress | None
) -> tuple[list[int], dict[int, str]]:
    """The shards still to pack, in order, and the fingerprint lines of the shards kept.

    A shard is kept when its ``.done`` marker is in place and, for a pack of
    image files, those files hashed again (in the workers) match its recorded
    ``inputs``. A kept shard's ``sha256`` and ``inputs`` are entered in ``plan``.
    """
    from_files = not isinstance(data, PackedDataset)
    todo: list[int] = []
    finished: dict[int, tuple[str, str | None]] = {}
    for k, shard in enumerate(plan["shards"]):
        done = _shard_done(root, shard, plan["size"])
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
            for start, idx in _chunks(plan, k)
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
    if finished:
        log.info("%s: keeping %d finished shards, packing %d", root, len(finished), len(todo))
    return todo, lines


def _chunk_tasks(root: Path, data: Dataset, plan: dict[str, Any], todo: list[int]) -> list[tuple[int, int, tuple]]:
    """Create the shards in ``todo`` (allocated in full, markers removed) and list their chunk tasks."""
    size = plan["size"]
    tasks: list[tuple[int, int, tuple]] = []
    for k in todo:
        shard = plan["shards"][k]
        path = root / shard["file"]
        _done_path(path).unlink(missing_ok=True)
        _create_shard(path, shard["rows"], size)
        for start, idx in _chunks(plan, k):
            if not isinstance(data, PackedDataset):
                tasks.append((k, start, ("files", (str(path), start, [data.files[i] for i in idx], size))))
            else:
                tasks.append((k, start, ("read", (str(path), start, idx, size, data))))
    return tasks


def _record_files(plan: dict[str, Any], lines: dict[int, str]) -> None:
    """Enter in ``plan`` the source's content fingerprint, from every shard's fingerprint lines."""
    h = hashlib.sha256()
    for k in range(len(plan["shards"])):
        h.update(lines[k].encode())
    plan["source"]["files_sha256"] = h.hexdigest()
    plan["source"]["files_hashed"] = f"name, size, {CONTENT_HASH}"
