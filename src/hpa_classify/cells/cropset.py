"""A training set of cell crops, labelled with their field's labels, in the Kaggle layout.

Weak supervision as the HPA 2021 challenge posed it: only fields carry labels,
so every cell of a field is given the field's labels. The crop set is an
ordinary dataset (``train.csv`` and ``train/{Id}_{red,green,blue,yellow}.png``)
that every command reads, with crop Ids ``{field Id}-c{cell:05d}``, plus
``crops.csv`` (``Id,field,cell``) saying where each crop came from and
``cropset.json`` (how the crops were cut, from which fields). For
training, fields without a label (a Negative 2021 field) give no crops;
otherwise (``hpa crops``: cells to look at, embed or classify one by one)
every cell is cut.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

from hpa_classify.cells.crops import CROP_MARGIN, cell_crops
from hpa_classify.cells.masks import read_cells, write_png
from hpa_classify.classes import CHANNELS, format_target
from hpa_classify.data.layout import Dataset, load_dataset
from hpa_classify.errors import DataError
from hpa_classify.fileio import write_csv, write_json
from hpa_classify.progress import Progress, track

__all__ = ["CROPSET_RECORD", "crop_id", "write_cropset"]

CROPSET_RECORD = "cropset.json"


def crop_id(field_id: str, cell: int) -> str:
    """The Id of the crop of ``cell`` in field ``field_id``.

    >>> crop_id("abc", 7)
    'abc-c00007'
    """
    return f"{field_id}-c{int(cell):05d}"


def _record_of(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_cropset(
    dataset: Dataset,
    labels_dir: str | os.PathLike[str],
    out: str | os.PathLike[str],
    size: int,
    margin: float = CROP_MARGIN,
    for_training: bool = True,
    progress: Progress | None = None,
) -> Dataset:
    """Cut every cell of ``dataset`` into ``out``; return the crop set as a Dataset.

    ``for_training`` (the default) needs the fields' labels and leaves out the
    fields without any (a Negative 2021 field). Otherwise every cell is cut,
    and ``train.csv`` has a Target column only when every field has labels
    (``crops.csv`` always names each crop's field and cell). An ``out`` that
    already holds the crops of the same fields, size and margin (its
    ``cropset.json``) is reused as it is.
    """
    if for_training and dataset.labels is None:
        raise DataError(f"{dataset.csv_path}: a crop set for training needs the fields' labels (a Target column)")
    out = Path(out)
    record: dict[str, Any] = {
        "format": 1, "size": size, "margin": margin, "masked": True, "for_training": for_training,
        "fields": len(dataset), "source": str(Path(dataset.csv_path).resolve()),
        "labels": str(Path(labels_dir).resolve()),
    }
    csv = out / "train.csv"
    if _record_of(out / CROPSET_RECORD) == record and csv.is_file():
        return load_dataset(out)
    (out / "train").mkdir(parents=True, exist_ok=True)
    (out / CROPSET_RECORD).unlink(missing_ok=True)  # written last: a cut short set is never reused
    field_labels = dataset.labels or [[] for _ in dataset.ids]
    rows = []
    for i in track(range(len(dataset)), f"cutting the cells of {len(dataset)} fields", progress=progress):
        if for_training and not field_labels[i]:
            continue
        image = dataset.read(i)
        labels = read_cells(labels_dir, dataset.ids[i], image.shape[1:])
        ids, crops = cell_crops(image, labels, size, margin)
        target = format_target(field_labels[i]) if field_labels[i] else ""
        for k, crop in zip(ids, crops, strict=True):
            cid = crop_id(dataset.ids[i], int(k))
            for c, name in enumerate(CHANNELS):
                write_png(out / "train" / f"{cid}_{name}.png", crop[c])
            rows.append((cid, dataset.ids[i], int(k), target))
    if not rows:
        what = "labelled field" if for_training else "field"
        raise DataError(f"{labels_dir}: no cells in any {what}, so no crops")
    table = pd.DataFrame(rows, columns=["Id", "field", "cell", "Target"])
    labelled = dataset.labels is not None and all(field_labels)
    write_csv(csv, table[["Id", "Target"]] if labelled or for_training else table[["Id"]])
    write_csv(out / "crops.csv", table if dataset.labels is not None else table[["Id", "field", "cell"]])
    write_json(out / CROPSET_RECORD, record)
    return load_dataset(out)
