"""Segmentation quality against true label images: AP of nuclei and cells over a dataset."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from hpa_classify.cells.masks import find_label_file, label_path, read_labels
from hpa_classify.cells.metrics import IOU_THRESHOLDS, MatchCounts, match_counts
from hpa_classify.errors import DataError, summarize_ids
from hpa_classify.progress import Progress, track

log = logging.getLogger(__name__)

__all__ = ["KINDS", "evaluate_labels"]

#: The label images compared, in report order.
KINDS = ("nuclei", "cells")


def evaluate_labels(
    predicted: str | os.PathLike[str],
    truth: str | os.PathLike[str],
    ids: Sequence[str],
    thresholds: Sequence[float] = IOU_THRESHOLDS,
    progress: Progress | None = None,
) -> dict[str, MatchCounts]:
    """Match ``{Id}_{nuclei,cells}.png`` in ``predicted`` against the same names in ``truth``.

    Counts are summed over the fields (every object weighs the same). A kind
    with no true label image at all is left out; fields without one are
    left out of that kind, with a warning.

    Raises
    ------
    DataError
        When ``truth`` holds no label image of any field, or one of the wrong
        shape or type (naming the file).
    """
    predicted, truth = Path(predicted), Path(truth)
    if not truth.is_dir():
        raise DataError(f"{truth}: folder of true label images not found")
    totals: dict[str, MatchCounts] = {}
    missing: dict[str, list[str]] = {k: [] for k in KINDS}
    for sample_id in track(ids, "matching with the true labels", progress=progress):
        for kind in KINDS:
            true_file = find_label_file(truth, sample_id, kind)
            if true_file is None:
                missing[kind].append(sample_id)
                continue
            pred = read_labels(label_path(predicted, sample_id, kind))
            counts = match_counts(read_labels(true_file, pred.shape), pred, thresholds)
            totals[kind] = totals[kind] + counts if kind in totals else counts
    if not totals:
        raise DataError(
            f"{truth}: no true label image for any of the {len(ids)} fields "
            f"(expected names like {label_path(truth, ids[0], 'cells').name})" if ids else f"{truth}: no fields"
        )
    for kind in totals:
        if missing[kind]:
            log.warning("%d fields have no true %s: %s", len(missing[kind]), kind, summarize_ids(missing[kind]))
    return {k: totals[k] for k in KINDS if k in totals}
