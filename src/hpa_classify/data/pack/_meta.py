"""Reading and checking a pack's index (``pack.json``); opening and verifying a pack."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from hpa_classify.data.io import read_file
from hpa_classify.data.layout import read_table
from hpa_classify.data.pack._dataset import (
    INDEX_NAME,
    MAX_META_BYTES,
    META_NAME,
    PACK_FORMAT,
    PACK_VERSION,
    PackedDataset,
    _npy_bytes,
)
from hpa_classify.errors import DataError, brief
from hpa_classify.fileio import file_digest
from hpa_classify.progress import Progress, track


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
    ids, labels = read_table(root / INDEX_NAME, allow_empty=True)  # a 2021 Negative has no class
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
        if not file.is_file() or shard.get("sha256") != file_digest(file, "sha256"):
            bad.append(shard["file"])
    return bad
