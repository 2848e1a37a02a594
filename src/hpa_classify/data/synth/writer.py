"""A synthetic dataset on disk in the Kaggle 2018 layout, rendered by a process pool."""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from hpa_classify.classes import CHANNELS, CLASS_NAMES, format_target
from hpa_classify.data.synth.image import MIN_SIZE, REVISIONS, check_version, render_field, render_sample
from hpa_classify.data.synth.labels import class_counts, sample_labels
from hpa_classify.data.synth.regions import pattern_regions
from hpa_classify.data.synth.truth import cell_targets, true_labels
from hpa_classify.data.workers import process_pool, worker_count
from hpa_classify.errors import ConfigError, DataError
from hpa_classify.fileio import atomic_path, write_json
from hpa_classify.progress import Progress, open_task

logger = logging.getLogger(__name__)

#: Written into ``synth.json``; marks a folder as this generator's output.
GENERATOR_TAG = "hpa_classify.data.synth"
TRAIN_PREFIX = "synth-"
TEST_PREFIX = "synth-t-"

_SPLITS = {"train": 0, "test": 1}

#: Folder of the true label images (``generate(..., masks=True)``), and its table of cell labels.
MASKS_DIR = "masks"
CELL_LABELS = "cell_labels.csv"

#: One image to render: out_dir, split, index, sample id, labels, size, seed, masks, pattern masks, version.
_Task = tuple[str, str, int, str, list[int], int, int, bool, bool, int]

#: One cell of the true labels: sample id, cell id, its Target.
_CellRow = tuple[str, int, str]


@dataclass
class SynthSummary:
    """What :func:`generate` wrote."""

    out_dir: Path
    n_train: int
    n_test: int
    size: int
    seed: int
    class_counts_train: list[int]
    class_counts_test: list[int]


def image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator image ``index`` of ``split`` is rendered from."""
    return np.random.default_rng([seed, _SPLITS[split] + 1, 1, index])


def _labels_rng(seed: int, split: str) -> np.random.Generator:
    return np.random.default_rng([seed, _SPLITS[split] + 1, 2])


def _ids(split: str, n: int) -> list[str]:
    prefix = TRAIN_PREFIX if split == "train" else TEST_PREFIX
    return [f"{prefix}{i:06d}" for i in range(n)]


def _write_one(task: _Task) -> list[_CellRow]:
    """Render and write one image (and its true labels when asked); returns its cells' rows."""
    out_dir, split, index, sample_id, labels, size, seed, masks, pattern_masks, version = task
    rng = image_rng(seed, split, index)
    # the same draws either way: the truth is read from the geometry, not drawn
    drawings: dict[int, np.ndarray] | None = {} if pattern_masks else None
    if masks or pattern_masks:
        image, fld = render_field(labels, size, rng, drawings, version)
    else:
        image, fld = render_sample(labels, size, rng, version), None
    folder = Path(out_dir) / split
    for channel, plane in zip(CHANNELS, image, strict=True):
        path = folder / f"{sample_id}_{channel}.png"
        if not cv2.imwrite(str(path), plane):
            raise DataError(f"could not write {path}")
    if fld is not None and drawings is not None:
        for c, region in pattern_regions(drawings, fld, size).items():
            path = Path(out_dir) / MASKS_DIR / f"{sample_id}_pattern_{c}.png"
            if not cv2.imwrite(str(path), region.astype(np.uint8) * 255):
                raise DataError(f"could not write {path}")
    if fld is None or not masks:
        return []
    nuclei, cells, cell_index = true_labels(fld, size)
    for kind, plane in (("nuclei", nuclei), ("cells", cells)):
        path = Path(out_dir) / MASKS_DIR / f"{sample_id}_{kind}.png"
        if not cv2.imwrite(str(path), plane):
            raise DataError(f"could not write {path}")
    targets = cell_targets(fld, labels, cell_index)
    return [(sample_id, k, t) for k, t in enumerate(targets, start=1)]


def _write_table(path: Path, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def _finish(
    out_dir: Path,
    params: dict[str, Any],
    ids: dict[str, list[str]],
    labels: dict[str, list[list[int]]],
) -> dict[str, list[int]]:
    """Write the label tables, then ``synth.json`` marked complete; return the class counts.

    ``train.csv`` and ``test_labels.csv`` hold ``Id,Target``; ``sample_submission.csv``
    holds ``Id,Predicted`` with every prediction ``"0"``.
    """
    for name, split in (("train.csv", "train"), ("test_labels.csv", "test")):
        rows = [(i, format_target(s)) for i, s in zip(ids[split], labels[split], strict=True)]
        _write_table(out_dir / name, ("Id", "Target"), rows)
    submission = [(i, "0") for i in ids["test"]]
    _write_table(out_dir / "sample_submission.csv", ("Id", "Predicted"), submission)
    counts = {split: class_counts(labels[split]) for split in _SPLITS}
    record = {**params, "complete": True, "class_names": list(CLASS_NAMES)}
    record.update({f"class_counts_{split}": counts[split] for split in _SPLITS})
    write_json(out_dir / "synth.json", record)
    return counts


def _read_record(folder: Path) -> dict[str, Any] | None:
    """The ``synth.json`` of ``folder`` if this generator wrote it, else None."""
    try:
        record = json.loads((folder / "synth.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("generator") != GENERATOR_TAG:
        return None
    return record


def matches(
    folder: str | os.PathLike[str],
    *,
    n_train: int | None = None,
    n_test: int | None = None,
    size: int | None = None,
    seed: int | None = None,
    class_alpha: float | None = None,
    min_per_class: int | None = None,
    version: int | None = None,
) -> bool:
    """Whether ``folder`` holds a complete dataset of :func:`generate` made with these values.

    Reads the folder's ``synth.json``; a parameter left at None is not compared.

    >>> matches("no-such-folder", size=64)
    False
    """
    record = _read_record(Path(folder))
    if record is None or record.get("complete") is not True:
        return False
    wanted = dict(
        n_train=n_train, n_test=n_test, size=size, seed=seed,
        class_alpha=class_alpha, min_per_class=min_per_class,
    )
    if version is not None and record.get("version", 1) != version:
        return False
    if record.get("revision", 1) != REVISIONS.get(record.get("version", 1)):
        return False  # drawn by another revision of the generator
    return all(record.get(k) == v for k, v in wanted.items() if v is not None)


def _check_out_dir(out_dir: Path) -> None:
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise DataError(f"{out_dir} exists and is not a folder")
    if any(out_dir.iterdir()) and _read_record(out_dir) is None:
        raise DataError(
            f"{out_dir} is not empty and is not a synthetic dataset made by this generator "
            "(no synth.json naming it); choose an empty or new folder"
        )


def _check_params(n_train: int, n_test: int, size: int, workers: int | None) -> None:
    if n_train < 0 or n_test < 0:
        raise ConfigError(f"n_train and n_test must be >= 0, got {n_train} and {n_test}")
    if size < MIN_SIZE:
        raise ConfigError(f"image size must be >= {MIN_SIZE} px, got {size}")
    if workers is not None and workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")


def written_here(folder: str | os.PathLike[str]) -> bool:
    """Whether ``folder`` holds a ``synth.json`` of this generator (finished or not)."""
    return _read_record(Path(folder)) is not None


def _prepare(out_dir: Path, params: dict[str, Any]) -> None:
    """Empty an earlier output, mark the folder as incomplete, make the split folders."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for split in _SPLITS:
        folder = out_dir / split
        if folder.is_dir():
            for path in folder.glob(f"{TRAIN_PREFIX}*.png"):
                path.unlink()
    for name in ("train.csv", "test_labels.csv", "sample_submission.csv"):
        (out_dir / name).unlink(missing_ok=True)
    if (out_dir / MASKS_DIR).is_dir():
        for path in (out_dir / MASKS_DIR).glob(f"{TRAIN_PREFIX}*.png"):
            path.unlink()
        (out_dir / MASKS_DIR / CELL_LABELS).unlink(missing_ok=True)
    write_json(out_dir / "synth.json", {**params, "complete": False})
    for split in _SPLITS:
        (out_dir / split).mkdir(exist_ok=True)


def generate(
    out_dir: str | os.PathLike[str],
    n_train: int = 800,
    n_test: int = 200,
    size: int = 128,
    seed: int = 0,
    class_alpha: float = 0.5,
    min_per_class: int = 2,
    workers: int | None = None,
    progress: Progress | None = None,
    masks: bool = False,
    pattern_masks: bool = False,
    version: int = 1,
) -> SynthSummary:
    """Write a synthetic HPA dataset in the Kaggle 2018 layout.

    Files written into ``out_dir``: ``train.csv`` (``Id,Target``),
    ``train/{Id}_{red,green,blue,yellow}.png``, ``test/`` likewise,
    ``sample_submission.csv`` (``Id,Predicted``, every prediction ``"0"``),
    ``test_labels.csv`` (``Id,Target``, the true test labels) and
    ``synth.json`` (parameters and class counts). Train Ids look like
    ``synth-000123``, test Ids like ``synth-t-000045``.

    Parameters
    ----------
    out_dir : path
        Destination; must be empty, absent, or an earlier output of this
        generator (whose images and CSVs are then replaced).
    n_train, n_test : int
        Images in each split.
    size : int
        Image side in pixels (at least 32).
    seed : int
        Everything written is a pure function of the seed and the other
        parameters: image ``i`` of a split uses a generator seeded from
        ``(seed, split, i)``, so ``workers`` does not change the output.
    class_alpha : float
        Class flattening exponent of :func:`sample_labels`.
    min_per_class : int
        Every class appears in at least this many images of each split.
    workers : int, optional
        Processes rendering images; default ``os.cpu_count()``.
    progress : Progress, optional
        Told of each image rendered (:mod:`hpa_classify.progress`).
    masks : bool
        Also write the true label images of every field into ``out_dir/masks/``:
        ``{Id}_nuclei.png`` and ``{Id}_cells.png`` (uint16, 0 background, a cell
        and its nucleus share one id, as ``hpa segment`` writes them), and
        ``masks/cell_labels.csv`` (``Id,cell,Target``: the classes each cell
        shows). The images are the same bytes with or without.
    pattern_masks : bool
        Also write where each class's green pattern lies:
        ``masks/{Id}_pattern_{class}.png`` (uint8, 255 inside), one per class of
        the image (:func:`~hpa_classify.data.synth.regions.pattern_regions`).
        The images are the same bytes with or without.
    version : int
        1 (default): fields of 2 to 24 cells that all show the image's labels.
        2: crowded fields of 10 to 40 touching cells, some of which express
        none or only a subset of the labels (their own labels are in
        ``masks/cell_labels.csv``, an empty Target for none), and classes
        drawn alike in green that only the yellow ER channel tells apart (the
        ER, mitochondria and cytosol networks; peroxisomes, endosomes and
        lysosomes) (:mod:`hpa_classify.data.synth.crowd`,
        :mod:`hpa_classify.data.synth.reference`). Recorded in ``synth.json``
        with the drawing's revision.

    Returns
    -------
    SynthSummary

    Raises
    ------
    DataError
        If ``out_dir`` holds anything else.
    ConfigError
        On a bad parameter value.
    """
    out_dir = Path(out_dir)
    _check_params(n_train, n_test, size, workers)
    check_version(version)
    _check_out_dir(out_dir)
    sizes = {"train": n_train, "test": n_test}
    ids = {split: _ids(split, n) for split, n in sizes.items()}
    labels = {
        split: sample_labels(n, _labels_rng(seed, split), class_alpha, min_per_class)
        for split, n in sizes.items()
    }
    params = {
        "generator": GENERATOR_TAG,
        "n_train": n_train,
        "n_test": n_test,
        "size": size,
        "seed": seed,
        "class_alpha": class_alpha,
        "min_per_class": min_per_class,
        "channels": list(CHANNELS),
    }
    if masks:  # recorded only when asked, so that the record of a plain dataset is unchanged
        params["masks"] = MASKS_DIR
    if pattern_masks:  # likewise
        params["pattern_masks"] = MASKS_DIR
    if version != 1:  # likewise
        params["version"] = version
    if REVISIONS[version] != 1:  # likewise
        params["revision"] = REVISIONS[version]
    _prepare(out_dir, params)
    if masks or pattern_masks:
        (out_dir / MASKS_DIR).mkdir(exist_ok=True)

    tasks: list[_Task] = [
        (str(out_dir), split, i, sid, lab, size, seed, masks, pattern_masks, version)
        for split in _SPLITS
        for i, (sid, lab) in enumerate(zip(ids[split], labels[split], strict=True))
    ]
    n_workers = worker_count(workers, len(tasks))
    logger.info(
        "rendering %d train + %d test images of %d px (version %d) with %d worker(s) into %s",
        n_train, n_test, size, version, n_workers, out_dir,
    )
    cell_rows = _run_tasks(tasks, n_workers, progress)
    if masks:
        _write_table(out_dir / MASKS_DIR / CELL_LABELS, ("Id", "cell", "Target"), cell_rows)
    counts = _finish(out_dir, params, ids, labels)
    return SynthSummary(out_dir, n_train, n_test, size, seed, counts["train"], counts["test"])


def _run_tasks(tasks: list[_Task], n_workers: int, progress: Progress | None) -> list[_CellRow]:
    """Render every task; returns the rows of the cells' labels (none without masks), in order."""
    rows: list[_CellRow] = []
    task = open_task(progress, "synthetic images", len(tasks))
    try:
        if n_workers == 1:
            for item in tasks:
                rows += _write_one(item)
                task.advance(1)
            return rows
        chunk = max(1, min(16, len(tasks) // (n_workers * 8)))
        pool = process_pool(n_workers)
        try:
            for found in pool.map(_write_one, tasks, chunksize=chunk):
                rows += found
                task.advance(1)
        finally:
            # on an error, images not yet started are dropped rather than rendered
            pool.shutdown(wait=True, cancel_futures=True)
    finally:
        task.close()
    return rows
