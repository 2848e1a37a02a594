"""Find a dataset's samples on disk and check them before any work starts.

A dataset is a CSV (``Id`` plus an optional ``Target``) and a folder of images
named ``{Id}_{red,green,blue,yellow}.{png,jpg,jpeg,tif,tiff}``, or holding one
multi-channel TIFF per field (``{Id}.tif``, ``{Id}.ome.tif``, or the file a
``File`` column names; :mod:`hpa_classify.data.folder`). On the command line
DATA is either

* a Kaggle root: ``train.csv`` with ``train/``, or ``sample_submission.csv``
  with ``test/``;
* a CSV path, with images in ``--images DIR`` (default: the CSV's own folder,
  or the folder named after the CSV, ``train/`` for ``train.csv``, when the
  images are there); or
* a folder of images without a CSV: the fields are found from the file names
  (unlabelled; the files that fit no field are logged).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hpa_classify.classes import CHANNELS
from hpa_classify.data.folder import discover, file_column, index_folder, sample_files
from hpa_classify.data.io import (  # image_size: the header reader lives in data.io
    IMAGE_EXTENSIONS,
    Reading,
    Scaling,
    channels_of,
    image_size,
    load_sample,
    plane_count,
    read_channel,
)
from hpa_classify.data.table import MAX_CSV_BYTES, read_table, show_id
from hpa_classify.errors import DataError, summarize_ids
from hpa_classify.fileio import file_digest

__all__ = [
    "MAX_CSV_BYTES",
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
    reading: Reading = field(default_factory=Reading)
    unplaced: list[Path] = field(default_factory=list)

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
        return load_sample(self.files[index], size, self.reading)

    def subset(self, index: Iterable[int]) -> Dataset:
        """A new Dataset holding only the samples at ``index`` (in that order)."""
        idx = list(index)
        return Dataset(
            csv_path=self.csv_path,
            image_dir=self.image_dir,
            ids=[self.ids[i] for i in idx],
            labels=[self.labels[i] for i in idx] if self.labels is not None else None,
            files=[self.files[i] for i in idx] if self.files else [],
            reading=self.reading,
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
        # a multi-channel file holds several channels of a sample: hashed once
        paths = [p for files in self.files for p in dict.fromkeys(files[c] for c in CHANNELS if c in files)]
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


def load_dataset(
    data: str | os.PathLike[str],
    images: str | os.PathLike[str] | None = None,
    prefer: str = "train",
    require_labels: bool = False,
    channel_map: dict[str, int] | None = None,
    scaling: Scaling | None = None,
) -> Dataset:
    """Read the CSV and find every sample's channel files (nothing decoded yet).

    Samples with missing channels are kept with the channels they have;
    :func:`validate` reports them. ``channel_map`` says which plane of a
    multi-channel file holds which channel (default: OME names, else plane
    order); ``scaling`` how more than 8 bits become 8. A folder without a
    CSV is read by its file names (:func:`hpa_classify.data.folder.discover`).
    """
    if _is_plain_folder(Path(data)) and images is None:
        if require_labels:
            raise DataError(f"{data}: a folder of images without a CSV has no labels, but labels are needed here")
        return _folder_dataset(Path(data), channel_map, scaling)
    csv_path, image_dir = resolve(data, images, prefer)
    ids, labels = read_table(csv_path)
    if require_labels and labels is None:
        raise DataError(f"{csv_path}: no 'Target' column, but labels are needed here")
    index = index_folder(image_dir)
    named = file_column(csv_path, image_dir)
    if named:
        index.multi_files.update(named)
    channels = _multi_channels(list(index.multi_files.values()), channel_map)
    files = [sample_files(sample_id, index, channels) for sample_id in ids]
    reading = Reading(channel_map=channel_map, scaling=scaling, channels=_present(files, channels))
    return Dataset(csv_path=csv_path, image_dir=image_dir, ids=ids, labels=labels, files=files, reading=reading)


def _is_plain_folder(data: Path) -> bool:
    """A folder holding images and neither Kaggle CSV (``train.csv``, ``sample_submission.csv``)."""
    return (
        data.is_dir()
        and not any((data / name).is_file() for name, _ in _KAGGLE_PAIRS.values())
        and _has_images(data)
    )


def _multi_channels(paths: list[Path], channel_map: dict[str, int] | None) -> tuple[str, ...]:
    """The channels the multi-channel files hold, from the first one's header (and the map)."""
    if not paths:
        return CHANNELS
    first = min(paths)
    if not first.is_file():
        return tuple(channel_map) if channel_map else CHANNELS
    n, names = plane_count(first)
    return tuple(c for c in CHANNELS if c in channels_of(n, names, channel_map, first))


def _present(files: list[dict[str, Path]], channels: tuple[str, ...]) -> tuple[str, ...]:
    """The channels a dataset holds: all four for per-channel files, else those of its
    multi-channel files."""
    multi = any(len(set(f.values())) == 1 and len(f) > 1 for f in files)
    single = any(len(set(f.values())) > 1 for f in files)
    return channels if multi and not single else CHANNELS


def _folder_dataset(folder: Path, channel_map: dict[str, int] | None, scaling: Scaling | None) -> Dataset:
    ids, files, unplaced = discover(folder)
    if not ids:
        raise DataError(
            f"{folder}: no fields found (expected {{Id}}_green.png/.jpg/.tif with the other channels, "
            "or one multi-channel {Id}.tif / {Id}.ome.tif per field)"
        )
    if unplaced:
        shown = ", ".join(p.name for p in unplaced[:10]) + (f" and {len(unplaced) - 10} more" if len(unplaced) > 10 else "")
        log.warning("%s: %d image files fit no field and are left out: %s", folder, len(unplaced), shown)
    multi = [f["green"] for f in files if len(f) == 1]
    channels = _multi_channels(multi, channel_map)
    files = [{c: f["green"] for c in channels} if len(f) == 1 else f for f in files]
    reading = Reading(channel_map=channel_map, scaling=scaling, channels=_present(files, channels))
    return Dataset(csv_path=folder, image_dir=folder, ids=ids, labels=None, files=files, reading=reading,
                   unplaced=unplaced)


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
            lines.append(f"  {show_id(sample_id)}: {msg}")
        if len(self.problems) > limit:
            lines.append(f"  ... and {len(self.problems) - limit} more problems")
        return "\n".join(lines)


def _check_sample(
    args: tuple[str, dict[str, Path], Path, bool, Reading],
) -> tuple[list[str], tuple[int, int] | None]:
    sample_id, files, image_dir, deep, reading = args
    problems = []
    missing = [c for c in reading.channels if c not in files]
    for c in missing:
        problems.append(f"missing {c} channel (no {show_id(sample_id)}_{c}.png/.jpg/.tif in {image_dir})")
    sizes = {}
    for c, path in files.items():
        try:
            sizes[c] = image_size(path)
            if deep and len(set(files.values())) > 1:
                read_channel(path)
        except DataError as exc:
            problems.append(str(exc))
    if deep and not problems and len(set(files.values())) == 1 and len(files) > 1:
        try:
            load_sample(files, None, reading)
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
    jobs = [(i, f, dataset.image_dir, deep, dataset.reading) for i, f in zip(dataset.ids, dataset.files)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(_check_sample, jobs, chunksize=64))
    problems: list[tuple[str, str]] = []
    sizes: dict[tuple[int, int], int] = {}
    for (sample_id, *_), (found, wh) in zip(jobs, results):
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
