"""Planning a pack: its shards, what is being packed, and which shards are already done."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hpa_classify.classes import CHANNELS, format_target
from hpa_classify.data.layout import Dataset
from hpa_classify.data.pack._dataset import (
    CHUNK,
    PACK_FORMAT,
    PACK_VERSION,
    PackedDataset,
    _done_path,
    _npy_bytes,
    _shard_name,
)
from hpa_classify.errors import DataError
from hpa_classify.fileio import file_digest


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


def _inputs_digest(lines: str) -> str | None:
    """A shard's ``inputs``: the SHA-256 of its files' fingerprint lines (None without files)."""
    return hashlib.sha256(lines.encode()).hexdigest() if lines else None


def _chunks(plan: dict[str, Any], k: int) -> Iterator[tuple[int, list[int]]]:
    """The chunks of shard ``k``: ``(first row in the shard, sample indices)``, :data:`CHUNK` at a time."""
    rows = plan["rows_per_shard"]
    first, n = k * rows, plan["shards"][k]["rows"]
    for start in range(0, n, CHUNK):
        yield start, list(range(first + start, first + min(start + CHUNK, n)))
