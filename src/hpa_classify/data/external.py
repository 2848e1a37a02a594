"""External training images (HPAv18 style) joined to a Kaggle training set.

The external set is a second ``Id,Target`` CSV with its own image folder;
channels may be PNG or JPG (HPAv18 downloads are colour JPGs: each channel
is read from its own colour plane, red from R, green from G, blue from B and
yellow from the mean of R and G, by :func:`hpa_classify.data.io.to_uint8`).
An external row whose Id is also a Kaggle Id is left out: the Kaggle row is
kept, and the count is reported. External images only ever join the
*training* part of a split, so validation and out-of-fold scores stay on
Kaggle images and compare with runs made without external data.

Examples
--------
>>> from pathlib import Path
>>> kaggle = Dataset(Path("train.csv"), Path("train"), ["a", "b"], [[0], [1]])
>>> ext = Dataset(Path("v18.csv"), Path("v18"), ["b", "c"], [[2], [3]])
>>> kept, info = drop_duplicates(kaggle, ext)
>>> kept.ids, info.n_duplicates
(['c'], 1)
>>> joined = CombinedDataset([kaggle, kept])
>>> joined.ids, joined.labels
(['a', 'b', 'c'], [[0], [1], [3]])
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hpa_classify.data.layout import Dataset
from hpa_classify.errors import DataError

log = logging.getLogger(__name__)


@dataclass
class ExternalSummary:
    """What joining an external set did: rows read, duplicates left out, rows used."""

    csv: str
    image_dir: str
    n_rows: int
    n_duplicates: int
    n_used: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class CombinedDataset(Dataset):
    """Samples of several datasets in order; each sample is read by the dataset it came from.

    ``csv_path`` and ``image_dir`` are those of the first part (the Kaggle
    set); parts may be plain, packed or combined datasets.
    """

    def __init__(self, parts: Sequence[Dataset]) -> None:
        if not parts:
            raise ValueError("CombinedDataset needs at least one dataset")
        if any(p.labels is None for p in parts) and any(p.labels is not None for p in parts):
            raise DataError("cannot combine labelled and unlabelled datasets")
        ids: list[str] = []
        labels: list[list[int]] | None = None if parts[0].labels is None else []
        files: list[dict[str, Path]] = []
        sources: list[tuple[Dataset, int]] = []
        for part in parts:
            ids.extend(part.ids)
            if labels is not None and part.labels is not None:
                labels.extend(part.labels)
            has_files = len(part.files) == len(part)
            files.extend(part.files if has_files else [{} for _ in range(len(part))])
            sources.extend((part, i) for i in range(len(part)))
        super().__init__(
            csv_path=parts[0].csv_path, image_dir=parts[0].image_dir, ids=ids, labels=labels, files=files
        )
        self.sources = sources

    def read(self, index: int, size: int | None = None) -> np.ndarray:
        part, i = self.sources[index]
        return part.read(i, size)

    def subset(self, index: Iterable[int]) -> CombinedDataset:
        idx = list(index)
        out = CombinedDataset.__new__(CombinedDataset)
        Dataset.__init__(
            out,
            csv_path=self.csv_path,
            image_dir=self.image_dir,
            ids=[self.ids[i] for i in idx],
            labels=[self.labels[i] for i in idx] if self.labels is not None else None,
            files=[self.files[i] for i in idx],
        )
        out.sources = [self.sources[i] for i in idx]
        return out


def drop_duplicates(kaggle: Dataset, external: Dataset) -> tuple[Dataset, ExternalSummary]:
    """The external samples whose Ids are not Kaggle Ids, and a summary of what was left out.

    Raises
    ------
    DataError
        If the external set has no labels, or every external row duplicates a
        Kaggle Id.
    """
    if external.labels is None:
        raise DataError(f"{external.csv_path}: external data need a 'Target' column")
    known = set(kaggle.ids)
    keep = [i for i, sample_id in enumerate(external.ids) if sample_id not in known]
    n_dup = len(external) - len(keep)
    if not keep:
        raise DataError(
            f"{external.csv_path}: all {len(external)} external Ids are already Kaggle Ids "
            f"in {kaggle.csv_path}; nothing to add"
        )
    if n_dup:
        log.warning(
            "%s: %d external Ids are also Kaggle Ids; kept the Kaggle rows", external.csv_path, n_dup
        )
    summary = ExternalSummary(
        csv=str(external.csv_path),
        image_dir=str(external.image_dir),
        n_rows=len(external),
        n_duplicates=n_dup,
        n_used=len(keep),
    )
    return external.subset(keep), summary


def add_external(train: Dataset, external: Dataset | None) -> Dataset:
    """``train`` followed by ``external`` (already free of duplicates), or ``train`` alone."""
    if external is None or len(external) == 0:
        return train
    return CombinedDataset([train, external])
