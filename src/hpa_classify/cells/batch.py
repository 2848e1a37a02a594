"""Segment every field of a dataset: label images, ``cells.csv``, overlays; parallel and resumable.

OUT holds, per field, ``{Id}_nuclei.png`` and ``{Id}_cells.png`` (uint16, a
cell and its nucleus share one id, 0 is background), and for the whole
dataset ``cells.csv`` (one row per cell, :data:`~hpa_classify.cells.measure.CELL_COLUMNS`)
and ``segment.json`` (how the labels were made). A field whose two label
images are complete and of the field's size is not segmented again when the
same settings are asked for; its cells are measured from the saved labels.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hpa_classify.cells.masks import (
    find_label_file,
    label_path,
    label_png_shape,
    match_nuclei,
    read_labels,
    write_labels,
)
from hpa_classify.cells.measure import CELL_COLUMNS, measure_cells
from hpa_classify.cells.overlay import draw_outlines, write_overlay
from hpa_classify.cells.scale import infer_pixel_size
from hpa_classify.cells.segment import SegmentSettings, find_nuclei, segment_field
from hpa_classify.data.io import load_sample
from hpa_classify.data.layout import Dataset
from hpa_classify.data.workers import process_pool, worker_count
from hpa_classify.errors import DataError, RunError, summarize_ids
from hpa_classify.fileio import write_csv, write_json
from hpa_classify.outputs import check_output_folder
from hpa_classify.progress import Progress, open_task

log = logging.getLogger(__name__)

__all__ = ["CSV_NAME", "RECORD_NAME", "SegmentSummary", "segment_dataset"]

CSV_NAME = "cells.csv"
RECORD_NAME = "segment.json"
OVERLAY_DIR = "overlays"
RECORD_FORMAT = 1


@dataclass
class SegmentSummary:
    """What :func:`segment_dataset` did."""

    out: Path
    csv: Path
    n_fields: int
    n_cells: int
    n_resumed: int
    seconds: float
    empty: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Job:
    sample_id: str
    files: dict[str, Path]
    out: Path
    settings: SegmentSettings
    masks: Path | None
    overlays: Path | None
    resume: bool


@dataclass
class _Done:
    sample_id: str
    rows: list[dict[str, Any]]
    n_cells: int
    resumed: bool


def _record(settings: SegmentSettings, masks: Path | None) -> dict[str, Any]:
    return {
        "format": RECORD_FORMAT,
        "method": "masks" if masks is not None else "watershed",
        "masks": str(Path(masks).resolve()) if masks is not None else None,
        "settings": settings.to_dict(),
    }


def _foreign_files(out: Path, ids: list[str]) -> list[Path]:
    """Files in OUT that this command would write, when OUT has no record of making them."""
    names = [CSV_NAME] + [f"{i}_{k}.png" for i in ids for k in ("nuclei", "cells")]
    return [out / n for n in names if (out / n).exists()]


def _check_record(out: Path, record: dict[str, Any], force: bool, ids: list[str]) -> bool:
    """Whether OUT's earlier results may be kept; RunError if they differ and ``force`` is off.

    Files of the names this command writes, in an OUT without its record, were
    not made by it: they are never replaced, even with ``force``.
    """
    path = out / RECORD_NAME
    if not path.is_file():
        foreign = _foreign_files(out, ids)
        if foreign:
            raise RunError(
                f"{foreign[0]}: not made by hpa segment (no {RECORD_NAME} in {out}), and never "
                f"replaced; {len(foreign)} such files: choose another output folder"
            )
        return False
    try:
        earlier = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        earlier = None
    if earlier == record:
        return True
    if not force:
        raise RunError(
            f"{out}: holds a segmentation made otherwise ({path}); pass --force to "
            "replace it, or choose another output folder"
        )
    log.warning("%s: made otherwise before; segmenting every field again", out)
    return False


def _labels_for(job: _Job, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(nuclei, cells)`` of one field: segmented, or read from ``job.masks`` and matched."""
    shape = image.shape[1:]
    if job.masks is None:
        seg = segment_field(image, job.settings)
        return seg.nuclei, seg.cells
    cells_file = find_label_file(job.masks, job.sample_id, "cells")
    if cells_file is None:
        raise DataError(f"{label_path(job.masks, job.sample_id, 'cells')}: label image not found")
    cells = read_labels(cells_file, shape)
    nuclei_file = find_label_file(job.masks, job.sample_id, "nuclei")
    nuclei = read_labels(nuclei_file, shape) if nuclei_file else find_nuclei(image, job.settings)
    cells, nuclei = match_nuclei(cells, nuclei)
    return nuclei.astype(np.uint16), cells.astype(np.uint16)


def _is_done(job: _Job, shape: tuple[int, int]) -> bool:
    return job.resume and all(
        label_png_shape(label_path(job.out, job.sample_id, kind)) == shape for kind in ("nuclei", "cells")
    )


def _segment_one(job: _Job) -> _Done:
    """Segment (or resume) one field and measure its cells; runs in a worker process."""
    image = load_sample(job.files)
    shape = image.shape[1:]
    nuclei_path = label_path(job.out, job.sample_id, "nuclei")
    cells_path = label_path(job.out, job.sample_id, "cells")
    resumed = _is_done(job, shape)
    if resumed:
        nuclei, cells = read_labels(nuclei_path, shape), read_labels(cells_path, shape)
    else:
        nuclei, cells = _labels_for(job, image)
        write_labels(nuclei_path, nuclei)
        write_labels(cells_path, cells)  # written last: its presence marks the field done
    if job.overlays is not None:
        png = job.overlays / f"{job.sample_id}.png"
        if not (resumed and png.is_file()):
            write_overlay(png, draw_outlines(image, cells, nuclei))
    pixel_size = job.settings.pixel_size or infer_pixel_size(shape)
    rows = measure_cells(job.sample_id, image, nuclei, cells, pixel_size)
    return _Done(job.sample_id, rows, len(rows), resumed)


def _run(jobs: list[_Job], workers: int | None, progress: Progress | None) -> dict[str, _Done]:
    done: dict[str, _Done] = {}
    n_workers = worker_count(workers, len(jobs))
    task = open_task(progress, f"segmenting {len(jobs)} fields", len(jobs))
    try:
        if n_workers <= 1:
            for job in jobs:
                done[job.sample_id] = _segment_one(job)
                task.advance(1)
            return done
        pool = process_pool(n_workers)
        try:
            pending: set[Future[_Done]] = set()
            queue = iter(jobs)
            for job in queue:  # keep the pool a few fields ahead, not all of them in flight
                pending.add(pool.submit(_segment_one, job))
                if len(pending) >= 2 * n_workers:
                    break
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    result = fut.result()  # re-raises a worker's DataError
                    done[result.sample_id] = result
                    task.advance(1)
                    nxt = next(queue, None)
                    if nxt is not None:
                        pending.add(pool.submit(_segment_one, nxt))
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    finally:
        task.close()
    return done


def _check_masks(dataset: Dataset, masks: Path) -> None:
    if not masks.is_dir():
        raise DataError(f"{masks}: mask folder not found")
    missing = [i for i in dataset.ids if find_label_file(masks, i, "cells") is None]
    if missing:
        first = label_path(masks, missing[0], "cells")
        raise DataError(
            f"{first}: label image not found; {len(missing)} fields have no "
            f"{{Id}}_cells.png (.tif) in {masks}: {summarize_ids(missing)}"
        )


def segment_dataset(
    dataset: Dataset,
    out: str | os.PathLike[str],
    settings: SegmentSettings | None = None,
    masks: str | os.PathLike[str] | None = None,
    overlays: bool = False,
    workers: int | None = None,
    force: bool = False,
    progress: Progress | None = None,
    reads: Sequence[str | os.PathLike[str]] = (),
) -> SegmentSummary:
    """Label images and ``cells.csv`` for every field of ``dataset`` in ``out``.

    Parameters
    ----------
    settings : SegmentSettings, optional
        The default segmentation's settings (the pixel size also serves ``masks``).
    masks : path, optional
        A folder of label images made elsewhere, ``{Id}_cells.png`` (or .tif)
        and optionally ``{Id}_nuclei.png``; used instead of segmenting. Without
        nuclei, they are found in the blue channel and given to their cells.
    overlays : bool
        Also write ``out/overlays/{Id}.png``: outlines on the composite.
    force : bool
        Replace results in ``out`` made with other settings or masks.
    reads : paths
        Other files or folders the caller reads (a folder of true labels):
        ``out`` may not be one of them nor hold one, as for the dataset's
        CSV, its images and ``masks``.
    """
    t0 = time.perf_counter()
    settings = settings or SegmentSettings()
    out = Path(out)
    masks_dir = Path(masks) if masks is not None else None
    if masks_dir is not None:
        _check_masks(dataset, masks_dir)
    inputs = [dataset.csv_path, dataset.image_dir, *reads] + ([masks_dir] if masks_dir else [])
    check_output_folder(out, inputs)
    record = _record(settings, masks_dir)
    resume = _check_record(out, record, force, dataset.ids)
    if not resume:  # labels of other settings must not pass for done after an interruption
        for sample_id in dataset.ids:
            label_path(out, sample_id, "cells").unlink(missing_ok=True)
    write_json(out / RECORD_NAME, record)
    overlay_dir = out / OVERLAY_DIR if overlays else None
    jobs = [
        _Job(i, dict(f), out, settings, masks_dir, overlay_dir, resume)
        for i, f in zip(dataset.ids, dataset.files)
    ]
    done = _run(jobs, workers, progress)
    rows = [row for i in dataset.ids for row in done[i].rows]
    csv = write_csv(out / CSV_NAME, pd.DataFrame(rows, columns=list(CELL_COLUMNS)))
    empty = [i for i in dataset.ids if done[i].n_cells == 0]
    why = "its label image holds no cells" if masks_dir is not None else "no nuclei found, so no cells"
    for sample_id in empty:
        log.warning("%s: %s", sample_id, why)
    return SegmentSummary(
        out=out, csv=csv, n_fields=len(jobs), n_cells=len(rows),
        n_resumed=sum(d.resumed for d in done.values()), seconds=time.perf_counter() - t0, empty=empty,
    )
