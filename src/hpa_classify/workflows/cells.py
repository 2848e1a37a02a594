"""Per-cell jobs that span layers: train a cell classifier on crops, predict every cell of a dataset.

``hpa train --task cells`` (:func:`train_cells`): segment the fields (or take
the user's label images), cut every cell into a crop set labelled with its
field's labels (:mod:`~hpa_classify.cells.cropset`), train an ordinary run on
it, and mark the run as a cell classifier (``cells.json``).

``hpa predict --cells`` (:func:`predict_cells`): segment the fields into
``OUT/masks`` (or take the user's), score every cell with the field runs and
cell runs given (broadcast, cell, or combined: :mod:`~hpa_classify.cells.classify`),
and write the Kaggle 2021 submission, the tables and the overlays
(:mod:`~hpa_classify.cells.predict`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from hpa_classify.cells.batch import segment_dataset
from hpa_classify.cells.classify import DEFAULT_CELL_WEIGHT
from hpa_classify.cells.crops import CROP_MARGIN
from hpa_classify.cells.cropset import write_cropset
from hpa_classify.cells.predict import CellTable, cell_table, write_cell_outputs
from hpa_classify.cells.segment import SegmentSettings
from hpa_classify.config import Config
from hpa_classify.data.layout import Dataset
from hpa_classify.errors import ConfigError
from hpa_classify.fileio import write_json
from hpa_classify.inference.members import ensemble_probs
from hpa_classify.inference.predict import default_device
from hpa_classify.inference.runs import Run, load_model, read_json
from hpa_classify.outputs import check_output_folder
from hpa_classify.progress import Progress
from hpa_classify.train.fit import FitResult
from hpa_classify.train.single import split_dataset, train_run

log = logging.getLogger(__name__)

__all__ = ["CELLS_RECORD", "CellPrediction", "crops_dir_for", "is_cell_run", "predict_cells", "train_cells"]

#: Written into a run trained on cell crops.
CELLS_RECORD = "cells.json"


def crops_dir_for(run_dir: str | os.PathLike[str]) -> Path:
    """Where :func:`train_cells` keeps the label images and crops of a run: beside it, ``RUN-crops``."""
    run_dir = Path(run_dir)
    return run_dir.with_name(run_dir.name + "-crops")


def is_cell_run(run: Run) -> bool:
    """Whether ``run`` was trained on cell crops (``hpa train --task cells``)."""
    return (run.path / CELLS_RECORD).is_file()


def train_cells(
    cfg: Config,
    data: Dataset,
    run_dir: str | os.PathLike[str],
    *,
    masks: str | os.PathLike[str] | None = None,
    settings: SegmentSettings | None = None,
    crops: str | os.PathLike[str] | None = None,
    workers: int | None = None,
    force: bool = False,
    resume: bool = False,
    progress: Progress | None = None,
) -> FitResult:
    """Train a cell classifier on the crops of ``data``'s cells, labelled with their field's labels.

    The crops (``cfg.data.size`` px) and the label images go to ``crops``
    (default :func:`crops_dir_for`), reused when they are already there.
    """
    run_dir = Path(run_dir)
    crops_dir = Path(crops) if crops is not None else crops_dir_for(run_dir)
    check_output_folder(crops_dir, [data.csv_path, data.image_dir, run_dir] + ([Path(masks)] if masks else []))
    labels = segment_dataset(data, crops_dir / "masks", settings=settings, masks=masks, workers=workers,
                             progress=progress)
    log.info("%d cells in %d fields", labels.n_cells, labels.n_fields)
    cropset = write_cropset(data, crops_dir / "masks", crops_dir / "crops", cfg.data.size, progress=progress)
    check_output_folder(run_dir, [data.csv_path, data.image_dir, crops_dir])
    run = train_run(cfg, cropset, run_dir, force=force, progress=progress, resume=resume,
                    split=split_by_field(data, cropset, crops_dir / "crops", cfg))
    write_json(run_dir / CELLS_RECORD, {
        "format": 1, "task": "cells", "crop_size": cfg.data.size, "margin": CROP_MARGIN, "masked": True,
        "fields": len(data), "cells": len(cropset), "crops": str(crops_dir.resolve()),
        "masks": str(Path(masks).resolve()) if masks else None,
    })
    summary_path = run.path / "report" / "summary.json"
    return FitResult(run_dir, run=run, summary=read_json(summary_path) if summary_path.is_file() else None)


def split_by_field(data: Dataset, cropset: Dataset, crops: Path, cfg: Config) -> tuple[Dataset, Dataset]:
    """The crops split into training and validation by field: all cells of a field on one side.

    The fields are split as a field run would split them (multilabel-stratified,
    ``data.val_fraction``, the config's seed), so no field lends cells to both sides.
    """
    labelled = data.subset(i for i, labels in enumerate(data.labels or []) if labels)
    _, val_fields = split_dataset(labelled, cfg)
    held = set(val_fields.ids)
    origin = pd.read_csv(crops / "crops.csv", dtype=str, keep_default_na=False)
    field_of = dict(zip(origin["Id"], origin["field"], strict=True))
    val = [j for j, cid in enumerate(cropset.ids) if field_of[cid] in held]
    train = [j for j, cid in enumerate(cropset.ids) if field_of[cid] not in held]
    if not train or not val:
        raise ConfigError(f"{len(labelled)} labelled fields are too few to split into training and validation")
    return cropset.subset(train), cropset.subset(val)


@dataclass
class CellPrediction:
    """What :func:`predict_cells` wrote."""

    out: Path
    method: str
    n_fields: int
    n_cells: int
    files: dict[str, Path]
    table: CellTable
    seconds: float
    empty: list[str]


def _split_runs(runs: Sequence[Run]) -> tuple[list[Run], list[Run]]:
    cell = [r for r in runs if is_cell_run(r)]
    field = [r for r in runs if not is_cell_run(r)]
    if len(cell) > 1:
        raise ConfigError(f"one cell classifier at a time, got {len(cell)}: {', '.join(str(r.path) for r in cell)}")
    return field, cell


def predict_cells(
    runs: Sequence[Run],
    data: Dataset,
    out: str | os.PathLike[str],
    *,
    masks: str | os.PathLike[str] | None = None,
    settings: SegmentSettings | None = None,
    weight: float = DEFAULT_CELL_WEIGHT,
    tta: int | None = None,
    overlays: bool = True,
    workers: int | None = None,
    progress: Progress | None = None,
) -> CellPrediction:
    """Score every cell of ``data`` with ``runs`` and write the results into ``out``.

    Field runs (several make an ensemble: the mean of their probabilities)
    give each cell its field's probabilities; a cell run (trained with
    ``--task cells``) scores each cell's crop. With both, the written scores
    are the combination; with one kind, that kind's.
    """
    t0 = time.perf_counter()
    field_runs, cell_runs = _split_runs(runs)
    out = Path(out)
    check_output_folder(out, [data.csv_path, data.image_dir, *(r.path for r in runs)]
                        + ([Path(masks)] if masks else []))
    labels_dir = out / "masks"
    seg = segment_dataset(data, labels_dir, settings=settings, masks=masks, workers=workers, progress=progress)
    field_probs = ensemble_probs(field_runs, data, tta=tta, progress=progress) if field_runs else None
    cell_model = None
    if cell_runs:
        run = cell_runs[0]
        cell_model = (load_model(run, default_device()), run.cfg)
    table = cell_table(data, labels_dir, field_probs, cell_model,
                       tta=tta or (cell_runs[0].cfg.predict.tta if cell_runs else 1), weight=weight,
                       progress=progress)
    method = "combined" if "combined" in table.scores else next(iter(table.scores))
    files = write_cell_outputs(table, data, labels_dir, out, method, overlays=overlays, progress=progress)
    record: dict[str, Any] = {
        "method": method, "weight": weight if method == "combined" else None,
        "field_runs": [str(r.path.resolve()) for r in field_runs],
        "cell_run": str(cell_runs[0].path.resolve()) if cell_runs else None,
        "masks": str(Path(masks).resolve()) if masks else None, "fields": len(data), "cells": len(table),
    }
    write_json(out / "predict_cells.json", record)
    return CellPrediction(out, method, len(data), len(table), files, table, time.perf_counter() - t0, seg.empty)

