"""Segmentation quality against true label images: AP of nuclei and cells over a dataset."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from hpa_classify.cells.masks import find_label_file, label_path, read_labels
from hpa_classify.cells.metrics import IOU_THRESHOLDS, MatchCounts, match_counts
from hpa_classify.errors import DataError, summarize_ids
from hpa_classify.progress import Progress, track

log = logging.getLogger(__name__)

__all__ = ["ALL", "DENSITY_BINS", "KINDS", "density_group", "evaluate_by_density", "evaluate_labels"]

#: The label images compared, in report order.
KINDS = ("nuclei", "cells")


#: Fields grouped by how many true cells they hold: (label, fewest, most), inclusive.
DENSITY_BINS: tuple[tuple[str, int, int], ...] = (
    ("1-19 cells", 1, 19),
    ("20-29 cells", 20, 29),
    ("30+ cells", 30, 10**9),
)
#: Key of the whole dataset in :func:`evaluate_by_density`.
ALL = "all fields"


def density_group(n_cells: int, bins: Sequence[tuple[str, int, int]] = DENSITY_BINS) -> str | None:
    """The label of the bin holding a field of ``n_cells`` true cells (None: in no bin).

    >>> density_group(25), density_group(0)
    ('20-29 cells', None)
    """
    return next((label for label, lo, hi in bins if lo <= n_cells <= hi), None)


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
    return evaluate_by_density(predicted, truth, ids, thresholds, progress)[ALL]


def evaluate_by_density(
    predicted: str | os.PathLike[str],
    truth: str | os.PathLike[str],
    ids: Sequence[str],
    thresholds: Sequence[float] = IOU_THRESHOLDS,
    progress: Progress | None = None,
    bins: Sequence[tuple[str, int, int]] = DENSITY_BINS,
) -> dict[str, dict[str, MatchCounts]]:
    """As :func:`evaluate_labels`, also split by cell density: ``{group: {kind: counts}}``.

    A field's group is the bin of its number of true cells (``bins``, default
    :data:`DENSITY_BINS`); ``ALL`` holds every field, as :func:`evaluate_labels`
    returns it. Fields with no true cell image count in ``ALL`` only.
    """
    predicted, truth = Path(predicted), Path(truth)
    if not truth.is_dir():
        raise DataError(f"{truth}: folder of true label images not found")
    groups: dict[str, dict[str, MatchCounts]] = {}
    missing: dict[str, list[str]] = {k: [] for k in KINDS}
    for sample_id in track(ids, "matching with the true labels", progress=progress):
        found: dict[str, MatchCounts] = {}
        n_cells = 0
        for kind in KINDS:
            true_file = find_label_file(truth, sample_id, kind)
            if true_file is None:
                missing[kind].append(sample_id)
                continue
            pred = read_labels(label_path(predicted, sample_id, kind))
            true = read_labels(true_file, pred.shape)
            found[kind] = match_counts(true, pred, thresholds)
            if kind == "cells":
                n_cells = len(np.unique(true)) - int((true == 0).any())
        group = density_group(n_cells, bins) if "cells" in found else None
        for key in (ALL, group):
            if key is not None:
                _add(groups.setdefault(key, {}), found)
    if not groups.get(ALL):
        raise DataError(
            f"{truth}: no true label image for any of the {len(ids)} fields "
            f"(expected names like {label_path(truth, ids[0], 'cells').name})" if ids else f"{truth}: no fields"
        )
    for kind in groups[ALL]:
        if missing[kind]:
            log.warning("%d fields have no true %s: %s", len(missing[kind]), kind, summarize_ids(missing[kind]))
    order = [ALL, *(label for label, _, _ in bins)]
    return {g: {k: groups[g][k] for k in KINDS if k in groups[g]} for g in order if g in groups}


def _add(totals: dict[str, MatchCounts], found: dict[str, MatchCounts]) -> None:
    for kind, counts in found.items():
        totals[kind] = totals[kind] + counts if kind in totals else counts
