"""Probability tables: ``Id[, Target], p00 ... p27``, written and read back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from hpa_classify.classes import NUM_CLASSES, format_target, parse_target


def probs_frame(ids: list[str], probs: np.ndarray, labels: list[list[int]] | None = None) -> pd.DataFrame:
    """A table ``Id[, Target], p00 ... p27`` of probabilities."""
    frame = pd.DataFrame({"Id": ids})
    if labels is not None:
        frame["Target"] = [format_target(t) for t in labels]
    cols = pd.DataFrame(probs, columns=[f"p{i:02d}" for i in range(NUM_CLASSES)])
    return pd.concat([frame, cols], axis=1)


def read_probs(path: Path) -> tuple[list[str], np.ndarray, list[list[int]] | None]:
    """Read a table written from :func:`probs_frame`.

    An empty Target is an image without classes (a 2021 Negative, see
    :func:`hpa_classify.data.table.read_table`), read back as ``[]``.
    """
    frame = pd.read_csv(path, dtype={"Id": str, "Target": str}, keep_default_na=False)
    probs = frame[[f"p{i:02d}" for i in range(NUM_CLASSES)]].to_numpy(np.float32)
    labels = None
    if "Target" in frame:
        labels = [parse_target(t, row=i) if t.strip() else [] for i, t in zip(frame["Id"], frame["Target"])]
    return frame["Id"].tolist(), probs, labels
