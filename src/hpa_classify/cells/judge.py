"""Per-cell predictions scored against per-cell truth with the HPA 2021 metric.

The truth is a folder of cell label images ``{Id}_cells.png`` with a table
``cell_labels.csv``: ``Id,cell`` and either ``Target`` (2018 class ids,
space-separated; mapped with :func:`~hpa_classify.classes.to_2021`, an empty
Target is a Negative cell) or ``Label`` (2021 ids, ``|``-separated), as
``hpa synth --synth-version 2 --masks`` writes into ``masks/``. A dataset
root whose ``masks/`` holds them serves as well.

Two ways in, one metric (:class:`~hpa_classify.cells.scoring.CellScorer`):
:func:`score_table` scores the arrays of a :class:`~hpa_classify.cells.predict.CellTable`,
:func:`score_submission` a written Kaggle 2021 submission, decoding its masks
as Kaggle would. On the same predictions the two agree (a test checks it).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from hpa_classify.cells.masks import read_cells
from hpa_classify.cells.predict import CellTable
from hpa_classify.cells.rle import parse_prediction
from hpa_classify.cells.scoring import CellScorer, ScoreResult
from hpa_classify.classes import NUM_CLASSES_2021, parse_label_2021, parse_target, to_2021
from hpa_classify.data.table import MAX_CSV_BYTES
from hpa_classify.errors import DataError, LabelError, summarize_ids

__all__ = ["TRUTH_TABLE", "Truth", "read_truth", "score_submission", "score_table"]

TRUTH_TABLE = "cell_labels.csv"

#: The 2021 classes of each true cell, by field Id and cell id.
Truth = dict[str, dict[int, list[int]]]


def truth_folder(path: str | os.PathLike[str]) -> Path:
    """The folder holding ``cell_labels.csv``: ``path`` itself or its ``masks/``."""
    path = Path(path)
    for folder in (path, path / "masks"):
        if (folder / TRUTH_TABLE).is_file():
            return folder
    raise DataError(f"{path}: no {TRUTH_TABLE} here or in {path / 'masks'} (per-cell truth: Id,cell,Target or Label)")


def _read_csv(path: Path) -> pd.DataFrame:
    """Every cell of ``path`` as text; a DataError naming the file when it is not a readable CSV."""
    if path.stat().st_size > MAX_CSV_BYTES:
        raise DataError(f"{path}: larger than {MAX_CSV_BYTES >> 20} MiB")
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"{path}: not a readable CSV ({str(exc).splitlines()[0][:120]})") from None


def read_truth(path: str | os.PathLike[str]) -> tuple[Path, Truth]:
    """``(folder, truth)``: where the true label images are, and every true cell's 2021 classes."""
    folder = truth_folder(path)
    csv = folder / TRUTH_TABLE
    table = _read_csv(csv)
    if "Id" not in table.columns or "cell" not in table.columns:
        raise DataError(f"{csv}: needs the columns Id and cell, has {', '.join(table.columns)}")
    use_target = "Target" in table.columns
    if not use_target and "Label" not in table.columns:
        raise DataError(f"{csv}: needs a Target (2018 ids) or a Label (2021 ids) column")
    truth: Truth = {}
    for line, row in enumerate(table.itertuples(index=False), start=2):
        where = f"{csv}, line {line} (Id {row.Id})"
        try:
            cell = int(row.cell)
        except ValueError:
            raise DataError(f"{where}: cell {row.cell!r} is not an integer id") from None
        try:
            if use_target:
                labels = to_2021(parse_target(row.Target) if row.Target.strip() else [])
            else:
                labels = parse_label_2021(row.Label)
        except LabelError as exc:
            raise LabelError(f"{where}: {exc}") from None
        cells = truth.setdefault(row.Id, {})
        if cell in cells:
            raise DataError(f"{where}: cell {cell} of this field has a row already")
        cells[cell] = labels
    return folder, truth


def _true_of(folder: Path, truth: Truth, sample_id: str, cells: np.ndarray) -> dict[int, list[int]]:
    """The classes of every cell of the true label image ``cells`` of ``sample_id``."""
    labels = dict(truth.get(sample_id, {}))
    present = np.unique(cells)
    missing = [int(k) for k in present[present > 0] if int(k) not in labels]
    if missing:
        raise DataError(f"{folder / TRUTH_TABLE}: field {sample_id} has cells {missing[:5]} without a row")
    return {k: v for k, v in labels.items() if k in set(present.tolist())}


def _check_ids(ids: list[str], truth: Truth, what: str) -> None:
    unknown = [i for i in ids if i not in truth]
    if unknown:
        raise DataError(f"{len(unknown)} fields of {what} have no per-cell truth: {summarize_ids(unknown)}")


def score_table(
    table: CellTable, labels_dir: str | os.PathLike[str], truth_path: str | os.PathLike[str],
    methods: Sequence[str],
) -> dict[str, ScoreResult]:
    """The 2021 metric of each of ``table.scores[method]`` (cells in ``labels_dir``) against the truth.

    The truth and the label images are read once for all ``methods``.
    """
    folder, truth = read_truth(truth_path)
    _check_ids(table.ids, truth, "the predictions")
    scorers = {method: CellScorer() for method in methods}
    for i, sample_id in enumerate(table.ids):
        true_cells = read_cells(folder, sample_id, table.shapes[i])
        true_labels = _true_of(folder, truth, sample_id, true_cells)
        pred = read_cells(labels_dir, sample_id, table.shapes[i])
        at = table.of_field(i)
        at = at[np.argsort(table.cell[at], kind="stable")]  # rows in increasing cell id
        for method, scorer in scorers.items():
            scorer.add(true_cells, true_labels, pred, table.scores[method][at])
    return {method: scorer.result() for method, scorer in scorers.items()}


def score_submission(submission: str | os.PathLike[str], truth_path: str | os.PathLike[str]) -> ScoreResult:
    """The 2021 metric of a Kaggle 2021 submission CSV against the truth.

    Each distinct mask of a field is one predicted cell; a class a cell was
    given no triple for scores 0 there. Masks of one field may not overlap.
    """
    path = Path(submission)
    folder, truth = read_truth(truth_path)
    if not path.is_file():
        raise DataError(f"{path}: submission not found")
    frame = _read_csv(path)
    need = {"ID", "ImageWidth", "ImageHeight", "PredictionString"}
    if not need <= set(frame.columns):
        raise DataError(f"{path}: needs the columns {', '.join(sorted(need))}, has {', '.join(frame.columns)}")
    _check_ids(list(frame["ID"]), truth, str(path))
    repeated = sorted(set(frame["ID"][frame["ID"].duplicated()]))
    if repeated:
        raise DataError(f"{path}: fields listed more than once: {summarize_ids(repeated)}")
    scorer = CellScorer()
    for line, row in enumerate(frame.itertuples(index=False), start=2):
        where = f"{path}, line {line} (ID {row.ID})"
        true_cells = read_cells(folder, row.ID)
        h, w = true_cells.shape
        if (row.ImageHeight.strip(), row.ImageWidth.strip()) != (str(h), str(w)):
            raise DataError(
                f"{where}: ImageWidth x ImageHeight {row.ImageWidth} x {row.ImageHeight} is not the size of "
                f"its true label image, {w} x {h}"
            )
        triples = parse_prediction(row.PredictionString, h, w, where=where)
        pred = np.zeros((h, w), np.int32)
        slot: dict[int, int] = {}
        for _, _, mask in triples:
            if id(mask) in slot:
                continue
            if (pred[mask] > 0).any():
                raise DataError(f"{where}: two different masks overlap (scored here only for non-overlapping cells)")
            slot[id(mask)] = len(slot) + 1
            pred[mask] = slot[id(mask)]
        scores = np.zeros((len(slot), NUM_CLASSES_2021))
        for label, confidence, mask in triples:
            scores[slot[id(mask)] - 1, label] = max(scores[slot[id(mask)] - 1, label], confidence)
        present = np.unique(pred)
        present = present[present > 0]
        true_labels = _true_of(folder, truth, row.ID, true_cells)
        scorer.add(true_cells, true_labels, pred, scores[present - 1])
    return scorer.result()
