"""Segmenting a dataset: files, cells.csv, warnings, resuming, label images brought along."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cell_fields import draw_field, write_dataset
from hpa_classify.cells.batch import RECORD_NAME, segment_dataset
from hpa_classify.cells.masks import read_labels, write_labels
from hpa_classify.cells.measure import CELL_COLUMNS
from hpa_classify.cells.segment import SegmentSettings
from hpa_classify.data.layout import load_dataset
from hpa_classify.errors import DataError, HPAError, RunError
from hpa_classify.progress import NULL_TASK

SETTINGS = SegmentSettings(pixel_size=0.32)


@pytest.fixture()
def two_fields(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """A Kaggle root with a field of 9 cells (``f9``) and one without any DNA stain (``dark``)."""
    image, nuclei, cells = draw_field(pixel_size=0.32, grid=3, seed=11)
    dark = image.copy()
    dark[2] = 0
    root = write_dataset(tmp_path / "data", {"f9": image, "dark": dark})
    return root, {"nuclei": nuclei, "cells": cells}


def test_labels_table_and_warning(two_fields, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root, _ = two_fields
    out = tmp_path / "seg"
    seen = []

    class Recorder:
        def __call__(self, description, total):
            seen.append((description, total))
            return NULL_TASK

    with caplog.at_level(logging.WARNING):
        summary = segment_dataset(load_dataset(root), out, SETTINGS, overlays=True, workers=1, progress=Recorder())
    assert (summary.n_fields, summary.n_cells, summary.n_resumed, summary.empty) == (2, 9, 0, ["dark"])
    assert seen == [("segmenting 2 fields", 2)]
    assert "dark: no nuclei found, so no cells" in caplog.text
    for sample_id in ("f9", "dark"):
        for kind in ("nuclei", "cells"):
            assert read_labels(out / f"{sample_id}_{kind}.png", (256, 256)).dtype == np.uint16
        assert (out / "overlays" / f"{sample_id}.png").is_file()
    assert not read_labels(out / "dark_cells.png").any()
    table = pd.read_csv(out / "cells.csv")
    assert table.columns.tolist() == list(CELL_COLUMNS)
    assert table["Id"].tolist() == ["f9"] * 9 and table["cell"].tolist() == list(range(1, 10))
    cells = read_labels(out / "f9_cells.png")
    first = table.iloc[0]
    ys, xs = np.nonzero(cells == 1)
    assert first["area"] == ys.size and first["centroid_y"] == pytest.approx(ys.mean(), abs=0.01)
    assert (first["bbox_y0"], first["bbox_x1"]) == (ys.min(), xs.max() + 1)
    assert table["touches_border"].any() and not table["touches_border"].all()
    assert (table["nucleus_area"] > 0).all() and (table["mean_blue"] > 0).all()
    assert (table["pixel_size"] == 0.32).all()


def test_resumes_and_redoes_only_what_is_missing(two_fields, tmp_path: Path) -> None:
    root, _ = two_fields
    out = tmp_path / "seg"
    ds = load_dataset(root)
    segment_dataset(ds, out, SETTINGS, workers=1)
    stamp = (out / "dark_cells.png").stat().st_mtime_ns
    before = (out / "cells.csv").read_text()
    (out / "f9_cells.png").write_bytes((out / "f9_cells.png").read_bytes()[:100])  # cut short
    again = segment_dataset(ds, out, SETTINGS, workers=1)
    assert again.n_resumed == 1  # dark kept, f9 made again
    assert (out / "dark_cells.png").stat().st_mtime_ns == stamp
    assert (out / "cells.csv").read_text() == before
    assert segment_dataset(ds, out, SETTINGS, workers=2).n_resumed == 2


def test_other_settings_need_force(two_fields, tmp_path: Path) -> None:
    root, _ = two_fields
    out = tmp_path / "seg"
    ds = load_dataset(root)
    segment_dataset(ds, out, SETTINGS, workers=1)
    other = SegmentSettings(pixel_size=0.32, foreground=0.5)
    with pytest.raises(RunError, match="--force"):
        segment_dataset(ds, out, other, workers=1)
    redone = segment_dataset(ds, out, other, workers=1, force=True)
    assert redone.n_resumed == 0 and '"foreground": 0.5' in (out / RECORD_NAME).read_text()


def test_label_images_made_elsewhere(two_fields, tmp_path: Path) -> None:
    root, truth = two_fields
    masks = tmp_path / "masks"
    shuffled = np.where(truth["cells"] > 0, truth["cells"] * 10 + 5, 0)  # other ids than 1..n
    write_labels(masks / "f9_cells.png", shuffled)
    write_labels(masks / "f9_nuclei.png", truth["nuclei"])
    write_labels(masks / "dark_cells.png", np.zeros((256, 256), np.uint16))  # no nuclei file: found
    out = tmp_path / "seg"
    summary = segment_dataset(load_dataset(root), out, SETTINGS, masks=masks, workers=1)
    assert (summary.n_cells, summary.empty) == (9, ["dark"])
    cells, nuclei = read_labels(out / "f9_cells.png"), read_labels(out / "f9_nuclei.png")
    assert sorted(np.unique(cells).tolist()) == list(range(10))
    assert ((cells > 0) == (truth["cells"] > 0)).all()
    inside = nuclei > 0
    assert (cells[inside] == nuclei[inside]).all() and ((nuclei > 0) == (truth["nuclei"] > 0)).all()
    (masks / "dark_cells.png").unlink()
    with pytest.raises(DataError, match="dark_cells.png: label image not found"):
        segment_dataset(load_dataset(root), tmp_path / "seg2", SETTINGS, masks=masks, workers=1)


def test_never_writes_over_inputs_or_files_it_did_not_make(two_fields, tmp_path: Path) -> None:
    root, truth = two_fields
    ds = load_dataset(root)
    before = sorted(p.name for p in (root / "train").iterdir())
    with pytest.raises(HPAError, match="is or holds the input"):
        segment_dataset(ds, root / "train", SETTINGS, workers=1)  # the image folder
    with pytest.raises(HPAError, match="is or holds the input"):
        segment_dataset(ds, root, SETTINGS, workers=1)  # holds the CSV
    assert sorted(p.name for p in (root / "train").iterdir()) == before
    masks = tmp_path / "masks"
    write_labels(masks / "f9_cells.png", truth["cells"])
    write_labels(masks / "dark_cells.png", np.zeros((256, 256), np.uint16))
    with pytest.raises(HPAError, match="is or holds the input"):
        segment_dataset(ds, masks, SETTINGS, masks=masks, workers=1)
    with pytest.raises(HPAError, match="is or holds the input"):
        segment_dataset(ds, masks, SETTINGS, workers=1, reads=[masks])  # e.g. the --eval folder
    stamp = (masks / "f9_cells.png").read_bytes()
    for force in (False, True):  # label images not made here are never replaced
        with pytest.raises(RunError, match="not made by hpa segment"):
            segment_dataset(ds, masks, SETTINGS, workers=1, force=force)
    assert (masks / "f9_cells.png").read_bytes() == stamp
