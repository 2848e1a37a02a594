"""Finding fields in an image folder from file names alone.

Two namings are understood, and may be mixed in one folder:

* one file per channel, ``{Id}_{red,green,blue,yellow}.{png,jpg,jpeg,tif,tiff}``
  (Kaggle 2018; HPAv18 downloads are the same names as colour JPEGs);
* one multi-channel TIFF per field, ``{Id}.tif``, ``{Id}.tiff``, ``{Id}.ome.tif``
  or ``{Id}.ome.tiff``.

When both namings give the same Id, the per-channel files win. A CSV may
instead name each field's multi-channel file in a ``File`` column (relative
to the image folder).
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

from hpa_classify.classes import CHANNELS
from hpa_classify.data.io import IMAGE_EXTENSIONS, TIFF_EXTENSIONS, read_file
from hpa_classify.errors import DataError

#: Endings of a multi-channel file, longest first (``.ome.tif`` before ``.tif``).
MULTI_CHANNEL_ENDINGS = (".ome.tiff", ".ome.tif") + TIFF_EXTENSIONS

#: CSV columns that may name a field's multi-channel file.
FILE_COLUMNS = ("file", "path", "image")


@dataclass
class FolderIndex:
    """What a folder holds: per-channel files by ``{Id}_{channel}``, multi-channel files by Id."""

    channel_files: dict[str, Path] = field(default_factory=dict)
    multi_files: dict[str, Path] = field(default_factory=dict)
    other_images: list[Path] = field(default_factory=list)


def multi_channel_id(name: str) -> str | None:
    """The Id of a multi-channel file's name, or None if the name is not one.

    >>> multi_channel_id("field7.ome.tif"), multi_channel_id("a_green.tif"), multi_channel_id("a.png")
    ('field7', None, None)
    """
    lower = name.lower()
    for ending in MULTI_CHANNEL_ENDINGS:
        if lower.endswith(ending):
            stem = name[: -len(ending)]
            if not stem or any(stem.endswith(f"_{c}") for c in CHANNELS):
                return None
            return stem
    return None


def index_folder(image_dir: Path) -> FolderIndex:
    """Map ``{Id}_{channel}`` and multi-channel Ids to their files; the first extension in
    IMAGE_EXTENSIONS wins between files of one channel."""
    out = FolderIndex()
    rank = {ext: i for i, ext in enumerate(IMAGE_EXTENSIONS)}
    try:
        entries = sorted(os.scandir(image_dir), key=lambda e: e.name)
    except OSError as exc:
        raise DataError(f"{image_dir}: cannot list the image folder ({exc.strerror})") from None
    for entry in entries:
        stem, ext = os.path.splitext(entry.name)
        ext = ext.lower()
        if ext not in rank:
            continue
        if any(stem.endswith(f"_{c}") for c in CHANNELS):
            prev = out.channel_files.get(stem)
            if prev is None or rank[ext] < rank[prev.suffix.lower()]:
                out.channel_files[stem] = Path(entry.path)
            continue
        sample_id = multi_channel_id(entry.name)
        if sample_id is not None and sample_id not in out.multi_files:
            out.multi_files[sample_id] = Path(entry.path)
        else:
            out.other_images.append(Path(entry.path))
    return out


def sample_files(sample_id: str, index: FolderIndex, channels: tuple[str, ...] = CHANNELS) -> dict[str, Path]:
    """One sample's channel files: its per-channel files, else its multi-channel file for each
    of ``channels`` (the channels that file holds)."""
    found = {c: index.channel_files[f"{sample_id}_{c}"] for c in CHANNELS if f"{sample_id}_{c}" in index.channel_files}
    if found or sample_id not in index.multi_files:
        return found
    return {c: index.multi_files[sample_id] for c in channels}


def file_column(csv_path: Path, image_dir: Path) -> dict[str, Path] | None:
    """Id -> file of a CSV's ``File`` (or ``Path``, ``Image``) column, relative to ``image_dir``;
    None without such a column."""
    text = read_file(csv_path, "CSV file").decode("utf-8-sig", errors="replace")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    if not rows:
        return None
    header = [h.strip().lower() for h in rows[0]]
    col = next((header.index(c) for c in FILE_COLUMNS if c in header), None)
    if col is None or "id" not in header:
        return None
    id_col = header.index("id")
    out: dict[str, Path] = {}
    for row in rows[1:]:
        if len(row) > max(col, id_col) and row[id_col].strip() and row[col].strip():
            name = row[col].strip()
            if Path(name).is_absolute() or ".." in Path(name).parts:
                raise DataError(f"{csv_path}: the file {name[:80]!r} must lie inside the image folder {image_dir}")
            out[row[id_col].strip()] = image_dir / name
    return out


def discover(image_dir: Path) -> tuple[list[str], list[dict[str, Path]], list[Path]]:
    """The fields of a folder without a CSV: Ids, their channel files, and the image files
    that could not be placed (no green channel file for their Id, or a name of neither kind).

    A multi-channel file's entry maps the green channel to it; :func:`sample_files` spreads it
    over the channels it holds.
    """
    index = index_folder(image_dir)
    ids: dict[str, None] = {}
    unplaced = list(index.other_images)
    for stem, path in index.channel_files.items():
        sample_id = stem.rsplit("_", 1)[0]
        if f"{sample_id}_green" in index.channel_files:
            ids[sample_id] = None
        else:
            unplaced.append(path)
    for sample_id in index.multi_files:
        ids.setdefault(sample_id, None)
    ordered = sorted(ids)
    return ordered, [sample_files(i, index, ("green",)) for i in ordered], sorted(unplaced)
