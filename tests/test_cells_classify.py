"""Cell crops, per-cell scores and their combination; the crop set and its split by field."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from hpa_classify.cells.classify import cell_scores, combine
from hpa_classify.cells.crops import cell_boxes, cell_crops
from hpa_classify.cells.cropset import crop_id, write_cropset
from hpa_classify.cells.judge import read_truth
from hpa_classify.cells.masks import write_labels
from hpa_classify.classes import NEGATIVE_2021, TO_2021, format_target
from hpa_classify.config import load_config
from hpa_classify.data.layout import load_dataset
from hpa_classify.errors import DataError, LabelError
from hpa_classify.workflows.cells import split_by_field


def _field() -> tuple[np.ndarray, np.ndarray]:
    """A 40 x 50 field: cell 1 a rectangle at the top border, cell 2 touching it, cell 4 (no 3) inside."""
    image = np.zeros((4, 40, 50), np.uint8)
    cells = np.zeros((40, 50), np.uint16)
    cells[0:10, 5:25] = 1
    cells[10:20, 5:25] = 2
    cells[25:35, 30:40] = 4
    for c in range(4):
        image[c] = (c + 1) * 10 + cells * 20
    return image, cells


def test_boxes_are_squares_around_each_cell() -> None:
    _, cells = _field()
    ids, boxes = cell_boxes(cells, margin=0.0)
    assert ids.tolist() == [1, 2, 4]
    # cell 1: rows 0-9, columns 5-24: a 20 px square centred on the box, reaching above the image
    assert boxes.tolist() == [[-5, 5, 20], [5, 5, 20], [25, 30, 10]]


def test_masked_crop_holds_only_its_own_cell() -> None:
    image, cells = _field()
    ids, crops = cell_crops(image, cells, size=20, margin=0.0)
    assert crops.shape == (3, 4, 20, 20)
    # cell 2 at native size: its rectangle fills rows 5-14 of the square, everything else is zero
    expect = np.zeros((4, 20, 20), np.uint8)
    for c in range(4):
        expect[c, 5:15, :] = (c + 1) * 10 + 2 * 20
    np.testing.assert_array_equal(crops[1], expect)
    # cell 1 at the top border: the part above the image is zero padding
    assert crops[0][:, :5].max() == 0 and (crops[0][:, 5:15] > 0).all()


def test_unmasked_crop_keeps_the_neighbours() -> None:
    image, cells = _field()
    _, crops = cell_crops(image, cells, size=20, margin=0.0, masked=False)
    assert crops[1][0, 15:20].max() == 10  # background of the red channel below cell 2
    assert crops[1][0, 0:5].max() == 10 + 20  # cell 1 above it


def test_crops_are_resized_to_the_asked_size() -> None:
    image, cells = _field()
    _, crops = cell_crops(image, cells, size=8)
    assert crops.shape == (3, 4, 8, 8)
    with pytest.raises(ValueError, match="differ in size"):
        cell_crops(image[:, :10], cells, size=8)


def test_combination_is_the_weighted_geometric_mean() -> None:
    rng = np.random.default_rng(0)
    field, cell = rng.uniform(0.01, 1, (5, 19)), rng.uniform(0.01, 1, (5, 19))
    for w in (0.0, 0.3, 1.0):
        out = combine(field, cell, w)
        locations = [c for c in range(19) if c != NEGATIVE_2021]
        np.testing.assert_allclose(out[:, locations], field[:, locations] ** (1 - w) * cell[:, locations] ** w)
        np.testing.assert_allclose(out[:, NEGATIVE_2021], cell[:, NEGATIVE_2021])  # the cell's own
    with pytest.raises(ValueError, match="0-1"):
        combine(field, cell, 1.5)


def test_cell_scores_map_28_classes_to_19_and_broadcast_by_field() -> None:
    field = np.full((2, 28), 0.01)
    field[0, 12], field[0, 13] = 0.3, 0.7  # actin and focal adhesions: 2021 actin takes the larger
    field[1, 8] = 0.6  # peroxisomes: vesicles in 2021
    cell = np.full((3, 28), 0.01)
    cell[2, 8] = 0.9
    out = cell_scores(field, [0, 1, 1], cell, weight=0.5)
    assert sorted(out) == ["broadcast", "cell", "combined"]
    assert out["broadcast"][:, TO_2021[13]].round(6).tolist() == [0.7, 0.01, 0.01]
    assert out["broadcast"][:, TO_2021[8]].round(6).tolist() == [0.01, 0.6, 0.6]
    assert out["combined"][2, TO_2021[8]] == pytest.approx((0.6 * 0.9) ** 0.5)
    assert list(cell_scores(field, [0, 1, 1], None)) == ["broadcast"]
    with pytest.raises(ValueError, match="field model, a cell model"):
        cell_scores(None, [0], None)
    with pytest.raises(ValueError, match="2 cell probabilities for 3 cells"):
        cell_scores(None, [0, 1, 1], cell[:2])


def _labelled_fields(root: Path, n: int) -> None:
    """``n`` fields of 3 cells each in Kaggle layout, labels in ``root/masks``."""
    image, cells = _field()
    (root / "train").mkdir(parents=True)
    ids = [f"f{i}" for i in range(n)]
    for sample_id in ids:
        for c, name in enumerate(("red", "green", "blue", "yellow")):
            cv2.imwrite(str(root / "train" / f"{sample_id}_{name}.png"), image[c])
        write_labels(root / "masks" / f"{sample_id}_cells.png", cells)
    targets = [format_target([i % 3, 25]) for i in range(n)]
    pd.DataFrame({"Id": ids, "Target": targets}).to_csv(root / "train.csv", index=False)


def test_crop_set_is_labelled_by_field_and_split_by_field(tmp_path: Path) -> None:
    root = tmp_path / "fields"
    _labelled_fields(root, 10)
    data = load_dataset(root)
    crops = write_cropset(data, root / "masks", tmp_path / "crops", size=16)
    assert len(crops) == 30
    assert crops.ids[:3] == [crop_id("f0", 1), crop_id("f0", 2), crop_id("f0", 4)]
    assert crops.labels[:3] == [[0, 25]] * 3 and crops.labels[3] == [1, 25]
    assert crops.read(0).shape == (4, 16, 16)
    origin = pd.read_csv(tmp_path / "crops" / "crops.csv")
    assert origin.field.tolist()[:4] == ["f0", "f0", "f0", "f1"] and origin.cell.tolist()[:3] == [1, 2, 4]
    # a second call with the same settings reuses the crops as they are
    stamp = (tmp_path / "crops" / "train" / "f0-c00001_red.png").stat().st_mtime_ns
    write_cropset(data, root / "masks", tmp_path / "crops", size=16)
    assert (tmp_path / "crops" / "train" / "f0-c00001_red.png").stat().st_mtime_ns == stamp

    negative = load_dataset(root)
    negative.labels[0] = []  # a 2021 Negative field: no label to give its cells
    assert len(write_cropset(negative, root / "masks", tmp_path / "crops-neg", size=16)) == 27

    cfg = load_config("demo-cpu", ["data.val_fraction=0.3"])
    train, val = split_by_field(data, crops, tmp_path / "crops", cfg)
    fields_of = lambda ds: {i.rsplit("-c", 1)[0] for i in ds.ids}  # noqa: E731
    assert fields_of(train).isdisjoint(fields_of(val))
    assert len(train) + len(val) == 30 and len(val) % 3 == 0 and len(val) > 0


def test_truth_tables_are_checked_row_by_row(tmp_path: Path) -> None:
    write_labels(tmp_path / "f_cells.png", np.array([[1, 2]], np.uint16))
    (tmp_path / "cell_labels.csv").write_text("Id,cell,Target\nf,1,0 25\nf,2,\n")
    folder, truth = read_truth(tmp_path)
    assert folder == tmp_path and truth == {"f": {1: [0, 16], 2: [NEGATIVE_2021]}}
    (tmp_path / "cell_labels.csv").write_text("Id,cell,Target\nf,1,0\nf,1,25\n")
    with pytest.raises(DataError, match="line 3.*cell 1 of this field has a row already"):
        read_truth(tmp_path)
    (tmp_path / "cell_labels.csv").write_text("Id,cell,Target\nf,x,0\n")
    with pytest.raises(DataError, match="line 2.*not an integer"):
        read_truth(tmp_path)
    (tmp_path / "cell_labels.csv").write_text("Id,cell,Label\nf,1,7|18\n")
    with pytest.raises(LabelError, match="line 2"):
        read_truth(tmp_path)
    with pytest.raises(DataError, match="no cell_labels.csv"):
        read_truth(tmp_path / "nowhere")
