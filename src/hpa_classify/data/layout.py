"""Find a dataset's samples on disk and check them before any work starts.

A dataset is a CSV (``Id`` plus an optional ``Target``) and a folder of images
named ``{Id}_{red,green,blue,yellow}.{png,jpg,jpeg,tif,tiff}``. On the command
line DATA is either

* a Kaggle root: ``train.csv`` with ``train/``, or ``sample_submission.csv``
  with ``test/``; or
* a CSV path, with images in ``--images DIR`` (default: the CSV's own folder,
  or the folder named after the CSV, ``train/`` for ``train.csv``, when the
  images are there).
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hpa_classify.classes import CHANNELS, parse_target
from hpa_classify.data.io import (  # image_size: the header reader lives in data.io
    IMAGE_EXTENSIONS,
    image_size,
    load_sample,
    read_channel,
    read_file,
)
from hpa_classify.errors import DataError, LabelError, brief, shorten, summarize_ids
from hpa_classify.fileio import file_digest

__all__ = [
    "Dataset",
    "ValidationReport",
    "checked",
    "fingerprint_line",
    "image_size",
    "load_dataset",
    "read_table",
    "require_images",
    "resolve",
    "validate",
]

log = logging.getLogger(__name__)

#: Largest CSV read, in bytes (Kaggle's train.csv is 1.3 MB, HPAv18's 3 MB).
MAX_CSV_BYTES = 256 << 20
#: How a data fingerprint hashes each image file's bytes.
CONTENT_HASH = "blake2b"

# Which image folder belongs to which CSV in a Kaggle root.
_KAGGLE_PAIRS = {"train": ("train.csv", "train"), "test": ("sample_submission.csv", "test")}


@dataclass
class Dataset:
    """The samples of one dataset: Ids, labels (if known) and channel files."""

    csv_path: Path
    image_dir: Path
    ids: list[str]
    labels: list[list[int]] | None
    files: list[dict[str, Path]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def has_labels(self) -> bool:
        return self.labels is not None

    def read(self, index: int, size: int | None = None) -> np.ndarray:
        """The uint8 ``(4, H, W)`` sample at ``index``, resized to ``size`` if given.

        The one place samples are read from; a packed cache
        (:class:`~hpa_classify.data.pack.PackedDataset`) reads its memory map instead.
        """
        return load_sample(self.files[index], size)

    def subset(self, index: Iterable[int]) -> Dataset:
        """A new Dataset holding only the samples at ``index`` (in that order)."""
        idx = list(index)
        return Dataset(
            csv_path=self.csv_path,
            image_dir=self.image_dir,
            ids=[self.ids[i] for i in idx],
            labels=[self.labels[i] for i in idx] if self.labels is not None else None,
            files=[self.files[i] for i in idx] if self.files else [],
        )

    def fingerprint(self, workers: int | None = None, content: bool = True) -> dict[str, str | int]:
        """What data a run saw: hashes of the CSV and of every image file's name, size and bytes.

        ``files_sha256`` is the SHA-256 of one :func:`fingerprint_line` per
        channel file (sample order, then channel order), each with the
        BLAKE2b of the file's bytes: an image edited in place changes it even
        when its size stays. Files are hashed by ``workers`` threads.
        ``files_hashed`` says what went in. ``content=False`` gives the
        fingerprint of names and sizes only that runs recorded before
        contents were hashed (``files_hashed`` "name, size"), to compare with
        such a record.
        """
        try:
            csv_hash = file_digest(self.csv_path, "sha256")
        except OSError as exc:
            raise DataError(f"{self.csv_path}: cannot read ({exc.strerror})") from None
        paths = [files[c] for files in self.files for c in CHANNELS if c in files]
        h = hashlib.sha256()
        if content:
            with ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 1)) as pool:
                for line in pool.map(_file_line, paths):
                    h.update(line.encode())
        else:
            for p in paths:
                h.update(f"{p.name}\t{_file_size(p)}\n".encode())
        return {
            "csv": str(self.csv_path.resolve()),
            "image_dir": str(self.image_dir.resolve()),
            "csv_sha256": csv_hash,
            "files_sha256": h.hexdigest(),
            "files_hashed": f"name, size, {CONTENT_HASH}" if content else "name, size",
            "n_samples": len(self.ids),
        }


def fingerprint_line(path: str | os.PathLike[str], n_bytes: int, digest: str) -> str:
    """One image file's entry in a data fingerprint: name, size and content digest.

    >>> fingerprint_line("/data/a_red.png", 10, "ab12")
    'a_red.png\\t10\\tab12\\n'
    """
    return f"{os.path.basename(path)}\t{n_bytes}\t{digest}\n"


def _file_line(path: Path) -> str:
    try:
        return fingerprint_line(path, path.stat().st_size, file_digest(path, CONTENT_HASH))
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None


# ----------------------------------------------------------------------------- CSV


def read_table(csv_path: str | os.PathLike[str]) -> tuple[list[str], list[list[int]] | None]:
    """Read ``Id,Target`` (Target optional) from a CSV.

    Accepts a UTF-8 BOM and Windows line endings; extra columns are ignored.
    ``Predicted`` (as in a sample submission) is not read as labels.

    Raises
    ------
    DataError
        Naming the file and row: no header, no ``Id`` column, empty table,
        empty Id, duplicate Ids, or a malformed Target; a file over
        :data:`MAX_CSV_BYTES`, a field over 128 KiB, a quote never closed, an
        Id or Target running over several lines. Values quoted in messages
        are cut short.
    """
    path = Path(csv_path)
    raw = read_file(path, "CSV file", limit=MAX_CSV_BYTES)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    numbered = _csv_rows(text, path)
    if not numbered:
        raise DataError(f"{path}: empty CSV (expected a header 'Id,Target' and rows)")
    rows = [r for _, _, r in numbered]
    header = [h.strip() for h in rows[0]]
    lower = [h.lower() for h in header]
    if "id" not in lower:
        raise DataError(
            f"{path}, line {numbered[0][0]}: no 'Id' column in the header {brief(rows[0])} ({len(header)} columns; "
            "the first line must name the columns, e.g. 'Id,Target')"
        )
    id_col = lower.index("id")
    target_col = lower.index("target") if "target" in lower else None
    body = numbered[1:]
    if not body:
        raise DataError(f"{path}: the CSV has a header but no rows")
    ids: list[str] = []
    labels: list[list[int]] | None = [] if target_col is not None else None
    seen: dict[str, int] = {}
    dupes: list[str] = []
    for first, lineno, row in body:
        for col, name in ((id_col, "Id"), (target_col, "Target")):
            if col is not None and col < len(row) and ("\n" in row[col] or "\r" in row[col]):
                raise DataError(
                    f"{path}, line {first}: the {name} runs on to line {lineno} "
                    "(a quote opened on this line closes only there)"
                )
        if id_col >= len(row) or not row[id_col].strip():
            raise DataError(f"{path}, line {lineno}: empty Id")
        sample_id = row[id_col].strip()
        if sample_id in seen:
            dupes.append(sample_id)
        seen[sample_id] = lineno
        ids.append(sample_id)
        if labels is not None:
            target = row[target_col] if target_col < len(row) else ""
            where = f"row {lineno} (Id {_show_id(sample_id)}) of {path}"
            if len(target) > 200:  # all 28 classes take 73 characters
                raise LabelError(f"{where}: Target {brief(target)} is not a list of class ids 0-27")
            try:
                labels.append(parse_target(target, row=where.removeprefix("row ")))
            except LabelError as exc:
                raise LabelError(shorten(str(exc), 400)) from None
    if dupes:
        raise DataError(f"{path}: duplicate Ids: {summarize_ids(sorted(set(dupes)))}")
    return ids, labels


def _show_id(sample_id: str) -> str:
    """An Id for a message: as it is, or cut short when over 80 characters."""
    return sample_id if len(sample_id) <= 80 else brief(sample_id)


def _csv_rows(text: str, path: Path) -> list[tuple[int, int, list[str]]]:
    """``(first line, last line, cells)`` of each non-blank row (blank lines still counted)."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[tuple[int, int, list[str]]] = []
    first = 1
    try:
        for row in reader:
            if any(cell.strip() for cell in row):
                rows.append((first, reader.line_num, row))
            first = reader.line_num + 1
    except csv.Error as exc:
        msg = str(exc)
        if "field limit" in msg:
            what = f"a field longer than {csv.field_size_limit():,} characters (not a table of Ids and labels?)"
        elif "unexpected end of data" in msg:
            what = 'a quote (") opened on this line is never closed'
        else:
            what = f"not valid CSV ({shorten(msg, 100)})"
        raise DataError(f"{path}, line {first}: {what}") from None
    return rows


# ----------------------------------------------------------------------------- layout


def resolve(
    data: str | os.PathLike[str], images: str | os.PathLike[str] | None = None, prefer: str = "train"
) -> tuple[Path, Path]:
    """Return ``(csv_path, image_dir)`` for DATA as given on the command line.

    ``prefer`` picks the split of a Kaggle root that has both (train or test).
    """
    data = Path(data)
    if data.is_dir():
        order = [prefer] + [k for k in _KAGGLE_PAIRS if k != prefer]
        for split in order:
            csv_name, folder = _KAGGLE_PAIRS[split]
            if (data / csv_name).is_file():
                image_dir = Path(images) if images else data / folder
                if not image_dir.is_dir() and images is None and _has_images(data):
                    image_dir = data  # images beside the CSV
                if not image_dir.is_dir():
                    raise DataError(f"{data}: has {csv_name} but no image folder {image_dir}")
                return data / csv_name, image_dir
        raise DataError(
            f"{data}: not a Kaggle root (expected train.csv with train/, or "
            "sample_submission.csv with test/); pass a CSV path instead"
        )
    if not data.exists():
        raise DataError(f"{data}: no such file or folder")
    if images is not None:
        image_dir = Path(images)
        if not image_dir.is_dir():
            raise DataError(f"{image_dir}: image folder not found")
        return data, image_dir
    here = data.parent
    named = here / {"sample_submission": "test"}.get(data.stem, data.stem)
    if named.is_dir() and not _has_images(here):
        return data, named
    return data, here


def _has_images(folder: Path) -> bool:
    with os.scandir(folder) as it:
        return any(e.name.lower().endswith(IMAGE_EXTENSIONS) for e in it)


def _index_folder(image_dir: Path) -> dict[str, Path]:
    """Map ``{Id}_{channel}`` to its file; the first extension in IMAGE_EXTENSIONS wins."""
    found: dict[str, Path] = {}
    rank = {ext: i for i, ext in enumerate(IMAGE_EXTENSIONS)}
    try:
        entries = list(os.scandir(image_dir))
    except OSError as exc:
        raise DataError(f"{image_dir}: cannot list the image folder ({exc.strerror})") from None
    for entry in entries:
        stem, ext = os.path.splitext(entry.name)
        ext = ext.lower()
        if ext not in rank or "_" not in stem:
            continue
        prev = found.get(stem)
        if prev is None or rank[ext] < rank[prev.suffix.lower()]:
            found[stem] = Path(entry.path)
    return found


def load_dataset(
    data: str | os.PathLike[str],
    images: str | os.PathLike[str] | None = None,
    prefer: str = "train",
    require_labels: bool = False,
) -> Dataset:
    """Read the CSV and find every sample's channel files (nothing decoded yet).

    Samples with missing channels are kept with the channels they have;
    :func:`validate` reports them.
    """
    csv_path, image_dir = resolve(data, images, prefer)
    ids, labels = read_table(csv_path)
    if require_labels and labels is None:
        raise DataError(f"{csv_path}: no 'Target' column, but labels are needed here")
    index = _index_folder(image_dir)
    files = []
    for sample_id in ids:
        files.append(
            {c: index[f"{sample_id}_{c}"] for c in CHANNELS if f"{sample_id}_{c}" in index}
        )
    return Dataset(csv_path=csv_path, image_dir=image_dir, ids=ids, labels=labels, files=files)


# ----------------------------------------------------------------------------- checks


@dataclass
class ValidationReport:
    """What :func:`validate` found: ``problems`` is a list of (Id, message)."""

    n_samples: int
    problems: list[tuple[str, str]]
    sizes: dict[tuple[int, int], int]

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def bad_ids(self) -> list[str]:
        return list(dict.fromkeys(i for i, _ in self.problems))

    def message(self, limit: int = 5) -> str:
        bad = self.bad_ids
        lines = [f"{len(bad)} of {self.n_samples} samples are invalid: {summarize_ids(bad, limit)}"]
        for sample_id, msg in self.problems[:limit]:
            lines.append(f"  {_show_id(sample_id)}: {msg}")
        if len(self.problems) > limit:
            lines.append(f"  ... and {len(self.problems) - limit} more problems")
        return "\n".join(lines)


def _check_sample(
    args: tuple[str, dict[str, Path], Path, bool],
) -> tuple[list[str], tuple[int, int] | None]:
    sample_id, files, image_dir, deep = args
    problems = []
    missing = [c for c in CHANNELS if c not in files]
    for c in missing:
        problems.append(f"missing {c} channel (no {_show_id(sample_id)}_{c}.png/.jpg/.tif in {image_dir})")
    sizes = {}
    for c, path in files.items():
        try:
            sizes[c] = image_size(path)
            if deep:
                read_channel(path)
        except DataError as exc:
            problems.append(str(exc))
    if len(set(sizes.values())) > 1:
        detail = ", ".join(f"{c} {w}x{h}" for c, (w, h) in sizes.items())
        problems.append(f"channels differ in size ({detail})")
    return problems, (sizes.get("green") if not problems else None)


def validate(dataset: Dataset, deep: bool = False, workers: int = 8) -> ValidationReport:
    """Check every sample: all four channels present, readable, not truncated, same size.

    Parameters
    ----------
    deep : bool
        Also decode every image (slower; the default reads headers and the
        file ends only, which finds missing, empty and truncated files).
    """
    jobs = [(i, f, dataset.image_dir, deep) for i, f in zip(dataset.ids, dataset.files)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(_check_sample, jobs, chunksize=64))
    problems: list[tuple[str, str]] = []
    sizes: dict[tuple[int, int], int] = {}
    for (sample_id, _, _, _), (found, wh) in zip(jobs, results):
        problems.extend((sample_id, msg) for msg in found)
        if wh is not None:
            sizes[wh] = sizes.get(wh, 0) + 1
    return ValidationReport(n_samples=len(dataset), problems=problems, sizes=sizes)


def require_images(dataset: Dataset) -> None:
    """Raise a :class:`DataError` when not one sample has a channel file in the image folder.

    That is a wrong or empty folder rather than many bad samples, and is said so.
    """
    if not dataset.ids or any(dataset.files):
        return
    try:
        empty = not any(True for _ in os.scandir(dataset.image_dir))
    except OSError:
        empty = False
    what = (
        "the folder is empty"
        if empty
        else f"no file there is named like {dataset.ids[0]}_green.png (.jpg, .tif)"
    )
    raise DataError(
        f"{dataset.image_dir}: no images for the {len(dataset)} samples of {dataset.csv_path} "
        f"({what}); pass the image folder with --images DIR"
    )


def checked(dataset: Dataset, skip_invalid: bool = False, deep: bool = False) -> Dataset:
    """Validate ``dataset``; raise on problems, or drop the bad samples if asked.

    The returned dataset's ``skipped`` lists (Id, reason) of what was dropped.
    """
    require_images(dataset)
    report = validate(dataset, deep=deep)
    if report.ok:
        return dataset
    if not skip_invalid:
        raise DataError(
            f"{dataset.csv_path}: {report.message()}\n"
            "Fix or remove these samples, or pass --skip-invalid to leave them out."
        )
    bad = set(report.bad_ids)
    keep = [i for i, sample_id in enumerate(dataset.ids) if sample_id not in bad]
    if not keep:
        raise DataError(f"{dataset.csv_path}: every sample is invalid\n{report.message()}")
    log.warning("skipping %d invalid samples of %d", len(bad), len(dataset))
    out = dataset.subset(keep)
    out.skipped = report.problems
    return out
