"""Per-cell prediction over a dataset, and what it writes: the Kaggle 2021 submission, tables, overlays.

The cells come from label images already made (``hpa segment``, or the
user's own, in one folder as :mod:`~hpa_classify.cells.batch` writes them).
The field classifier's probabilities come in whole (one row per field); the
cell classifier sees every cell's crop (:mod:`~hpa_classify.cells.crops`) at
its own input size. :func:`cell_table` gathers the scores of every method
(:mod:`~hpa_classify.cells.classify`); :func:`write_cell_outputs` writes:

* ``submission.csv``: ``ID,ImageWidth,ImageHeight,PredictionString``, one row
  per field; for every cell and each of the 19 classes, ``label confidence
  mask`` with the mask in the competition's encoding (:mod:`~hpa_classify.cells.rle`);
  a field without cells gets an empty PredictionString;
* ``cell_probs.csv``: field ``ID``, ``cell`` and the 19 scores by class name;
* ``cells.csv``: for people: field, cell, bounding box, area, and the three
  most probable classes with their scores;
* ``overlays/{ID}.png`` (optional): the composite with every cell outlined
  and its most probable class written on it;
* ``cells.html``: a page for people: how many cells each class leads, then
  each field's overlay and its cells' three most probable classes (the first
  :data:`PAGE_FIELDS` fields).
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from scipy import ndimage
from torch import nn

from hpa_classify.cells.classify import DEFAULT_CELL_WEIGHT, cell_scores, crop_probs
from hpa_classify.cells.crops import cell_crops
from hpa_classify.cells.masks import read_cells
from hpa_classify.cells.overlay import draw_outlines, write_overlay
from hpa_classify.cells.rle import encode_labels, format_prediction
from hpa_classify.classes import CLASS_NAMES_2021, NUM_CLASSES, NUM_CLASSES_2021
from hpa_classify.config import Config
from hpa_classify.data.layout import Dataset
from hpa_classify.fileio import write_csv, write_text
from hpa_classify.progress import Progress, track
from hpa_classify.render.html import html_document, html_table

__all__ = ["SUBMISSION_COLUMNS", "CellTable", "cell_table", "write_cell_outputs"]

#: Columns of a Kaggle 2021 submission.
SUBMISSION_COLUMNS = ("ID", "ImageWidth", "ImageHeight", "PredictionString")

#: Classes named in ``cells.csv``, most probable first.
TOP_CLASSES = 3

#: Smallest side of an overlay: smaller fields are enlarged to at least this.
OVERLAY_MIN_SIDE = 512

#: Fields shown on ``cells.html`` (all of them are in the tables).
PAGE_FIELDS = 50


@dataclass
class CellTable:
    """Every cell of a dataset and its scores by method.

    ``field_index[j]`` is the row in ``ids`` (the dataset's order) of cell ``j``,
    ``cell[j]`` its id in the field's label image; ``scores[method]`` is
    ``(n_cells, 19)``. ``shapes`` holds each field's ``(height, width)``.
    """

    ids: list[str]
    shapes: list[tuple[int, int]]
    field_index: np.ndarray
    cell: np.ndarray
    scores: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.cell)

    def of_field(self, index: int) -> np.ndarray:
        """Positions (rows) of the cells of field ``index``."""
        return np.flatnonzero(self.field_index == index)


def cell_table(
    dataset: Dataset,
    labels_dir: str | os.PathLike[str],
    field_probs: np.ndarray | None = None,
    cell_model: tuple[nn.Module, Config] | None = None,
    tta: int = 1,
    weight: float = DEFAULT_CELL_WEIGHT,
    progress: Progress | None = None,
) -> CellTable:
    """Every cell of ``dataset`` (labels in ``labels_dir``) with the scores the models allow.

    Parameters
    ----------
    field_probs : ndarray, optional
        ``(len(dataset), 28)`` probabilities of a field classifier, in the
        dataset's order.
    cell_model : (model, config), optional
        A classifier trained on cell crops; crops are cut at its
        ``data.size``.
    tta : int
        Views of test-time augmentation for the crops.
    """
    if field_probs is not None and len(field_probs) != len(dataset):
        raise ValueError(f"{len(field_probs)} rows of field probabilities for {len(dataset)} fields")
    index: list[np.ndarray] = []
    cells: list[np.ndarray] = []
    probs: list[np.ndarray] = []
    shapes: list[tuple[int, int]] = []
    for i in track(range(len(dataset)), f"cells of {len(dataset)} fields", progress=progress):
        image = dataset.read(i)
        shape = (int(image.shape[1]), int(image.shape[2]))
        shapes.append(shape)
        labels = read_cells(labels_dir, dataset.ids[i], shape)
        if cell_model is not None:
            model, cfg = cell_model
            ids, crops = cell_crops(image, labels, cfg.data.size)
            probs.append(crop_probs(model, cfg, crops, tta=tta))
        else:
            ids = np.unique(labels)
            ids = ids[ids > 0].astype(np.int64)
        cells.append(ids)
        index.append(np.full(len(ids), i, np.int64))
    field_index = np.concatenate(index) if index else np.zeros(0, np.int64)
    table = CellTable(list(dataset.ids), shapes, field_index, np.concatenate(cells) if cells else field_index)
    cell_p = None
    if cell_model is not None:
        cell_p = np.concatenate(probs) if probs else np.zeros((0, NUM_CLASSES), np.float32)
    table.scores = cell_scores(field_probs, field_index, cell_p, weight)
    return table


def _boxes(labels: np.ndarray, ids: np.ndarray) -> list[tuple[int, int, int, int, int]]:
    """``(y0, x0, y1, x1, area)`` of each id in ``ids``."""
    slices = ndimage.find_objects(labels.astype(np.int64, copy=False))
    areas = np.bincount(labels.ravel(), minlength=int(ids.max(initial=0)) + 1)
    out = []
    for k in ids:
        sl = slices[int(k) - 1]
        out.append((sl[0].start, sl[1].start, sl[0].stop, sl[1].stop, int(areas[k])))
    return out


def _label_text(image: np.ndarray, labels: np.ndarray, ids: np.ndarray, texts: list[str]) -> np.ndarray:
    """The outlined composite with ``texts[j]`` written at the centre of cell ``ids[j]``.

    A field under :data:`OVERLAY_MIN_SIDE` px is enlarged (by a whole factor) so the text stays legible.
    """
    up = max(1, OVERLAY_MIN_SIDE // max(labels.shape))
    if up > 1:
        image = image.repeat(up, axis=1).repeat(up, axis=2)
        labels = labels.repeat(up, axis=0).repeat(up, axis=1)
    rgb = np.ascontiguousarray(draw_outlines(image, labels))
    scale = rgb.shape[0] / labels.shape[0]
    centres = ndimage.center_of_mass(np.ones_like(labels), labels, ids) if len(ids) else []
    font = max(0.3, rgb.shape[0] / 1400)
    for (cy, cx), text in zip(centres, texts, strict=True):
        (width, height), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font, 1)
        x, y = int(cx * scale) - width // 2, int(cy * scale) + height // 2
        box = rgb[max(0, y - height - 2):y + base + 1, max(0, x - 2):x + width + 2]
        box //= 3  # a darker box under the name keeps it legible on any colour
        cv2.putText(rgb, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, font, (255, 255, 120), 1, cv2.LINE_AA)
    return rgb


def _short(name: str) -> str:
    return name if len(name) <= 18 else name[:16] + "."


def write_cell_outputs(
    table: CellTable,
    dataset: Dataset,
    labels_dir: str | os.PathLike[str],
    out: str | os.PathLike[str],
    method: str,
    overlays: bool = False,
    progress: Progress | None = None,
) -> dict[str, Path]:
    """Write ``submission.csv``, ``cell_probs.csv``, ``cells.csv`` (and ``overlays/``) of ``method``.

    Returns the paths written, by name.
    """
    if method not in table.scores:
        raise ValueError(f"no '{method}' scores (have: {', '.join(table.scores)})")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    scores = table.scores[method]
    rows, people = [], []
    names = list(CLASS_NAMES_2021)
    if overlays:
        (out / "overlays").mkdir(exist_ok=True)
    for i in track(range(len(table.ids)), f"writing {len(table.ids)} fields", progress=progress):
        h, w = table.shapes[i]
        labels = read_cells(labels_dir, table.ids[i], (h, w))
        at = table.of_field(i)
        items = []
        encoded = encode_labels(labels)
        for j, (y0, x0, y1, x1, area) in zip(at, _boxes(labels, table.cell[at]), strict=True):
            mask = encoded[int(table.cell[j])]
            items += [(c, float(scores[j, c]), mask) for c in range(NUM_CLASSES_2021)]
            top = np.argsort(-scores[j], kind="stable")[:TOP_CLASSES]
            people.append(
                [table.ids[i], int(table.cell[j]), y0, x0, y1, x1, area]
                + [v for c in top for v in (names[c], round(float(scores[j, c]), 4))]
            )
        rows.append((table.ids[i], w, h, format_prediction(items)))
        if overlays:
            texts = [_short(names[int(np.argmax(scores[j]))]) for j in at]
            rgb = _label_text(dataset.read(i), labels, table.cell[at], texts)
            write_overlay(out / "overlays" / f"{table.ids[i]}.png", rgb)
    top_cols = [c for k in range(1, TOP_CLASSES + 1) for c in (f"class_{k}", f"prob_{k}")]
    paths = {
        "submission": write_csv(out / "submission.csv", pd.DataFrame(rows, columns=list(SUBMISSION_COLUMNS))),
        "cells": write_csv(out / "cells.csv", pd.DataFrame(
            people, columns=["ID", "cell", "y0", "x0", "y1", "x1", "area", *top_cols])),
        "cell_probs": write_csv(out / "cell_probs.csv", pd.concat([
            pd.DataFrame({"ID": [table.ids[i] for i in table.field_index], "cell": table.cell}),
            pd.DataFrame(np.round(scores, 6), columns=names),
        ], axis=1)),
    }
    paths["page"] = write_text(out / "cells.html", _page(table, method, people, overlays))
    if overlays:
        paths["overlays"] = out / "overlays"
    return paths


def _page(table: CellTable, method: str, people: list[list[object]], overlays: bool) -> str:
    """``cells.html``: how many cells each class leads, then each field's picture and cells."""
    scores = table.scores[method]
    top = scores.argmax(axis=1) if len(scores) else np.zeros(0, np.int64)
    summary = html_table(
        ["class", "cells where it is the most probable", "mean score"],
        [[f"{c} {name}", str(int((top == c).sum())), f"{scores[:, c].mean():.3f}" if len(scores) else "n/a"]
         for c, name in enumerate(CLASS_NAMES_2021)],
        [False, True, True],
    )
    body = [
        f"<p>{len(table)} cells in {len(table.ids)} fields, scored <b>{method}</b> "
        "(<code>cell_probs.csv</code> holds all 19 scores of every cell).</p>",
        summary,
    ]
    shown = table.ids[:PAGE_FIELDS]
    if len(table.ids) > len(shown):
        body.append(f"<p>The first {len(shown)} of {len(table.ids)} fields; all of them are in "
                    "<code>cells.csv</code>" + (" and <code>overlays/</code>" if overlays else "") + ".</p>")
    by_field: dict[str, list[list[object]]] = {}
    for row in people:
        by_field.setdefault(str(row[0]), []).append(row)
    for sample_id in shown:
        body.append(f"<h2>{html.escape(sample_id)}</h2>")
        if overlays:
            src = html.escape(f"overlays/{sample_id}.png", quote=True)
            body.append(f'<figure><img src="{src}" alt="cells of {html.escape(sample_id)}"></figure>')
        rows = [[str(r[1]), str(r[6]), *(f"{r[k]} ({float(r[k + 1]):.2f})" for k in range(7, 7 + 2 * TOP_CLASSES, 2))]
                for r in by_field.get(sample_id, [])]
        body.append(html_table(["cell", "area (px)", *(f"class {k}" for k in range(1, TOP_CLASSES + 1))],
                               rows, [True, True] + [False] * TOP_CLASSES) if rows else "<p>No cells.</p>")
    return html_document(f"Cells: {len(table)} cells in {len(table.ids)} fields", body)
