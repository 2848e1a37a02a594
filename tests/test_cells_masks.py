"""Label images on disk: written as uint16 PNG, read back with checks that name the file."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

from hpa_classify.cells.masks import (
    find_label_file,
    label_png_shape,
    match_nuclei,
    read_labels,
    relabel,
    write_labels,
)
from hpa_classify.errors import DataError


def _labels() -> np.ndarray:
    labels = np.zeros((20, 30), np.uint16)
    labels[2:8, 3:9] = 1
    labels[10:18, 12:25] = 300  # over 255: needs 16 bits
    return labels


def test_write_and_read_back(tmp_path: Path) -> None:
    path = write_labels(tmp_path / "a_cells.png", _labels())
    assert label_png_shape(path) == (20, 30)
    back = read_labels(path, (20, 30))
    assert back.dtype == np.uint16 and (back == _labels()).all()
    assert not list(tmp_path.glob(".*tmp"))  # atomic: no temporary file left


def test_other_label_formats_are_read(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "a_cells.png"), (_labels() > 0).astype(np.uint8) * 7)  # 8-bit
    tifffile.imwrite(tmp_path / "b_cells.tif", _labels().astype(np.int32))  # Cellpose-style int32
    assert read_labels(tmp_path / "a_cells.png").max() == 7
    assert (read_labels(tmp_path / "b_cells.tif", (20, 30)) == _labels()).all()
    assert find_label_file(tmp_path, "b", "cells") == tmp_path / "b_cells.tif"
    assert find_label_file(tmp_path, "c", "cells") is None


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("shape", "label image is 30x20 px, but its field is 40x20 px"),
        ("float", "must hold integers, got pixel type float32"),
        ("colour", "must have one channel"),
        ("negative", "negative label"),
        ("missing", "label image not found"),
        ("text", "must be a PNG or TIFF"),
    ],
)
def test_wrong_label_images_are_refused_naming_the_file(tmp_path: Path, kind: str, message: str) -> None:
    path = tmp_path / f"x_cells.{'tif' if kind in ('float', 'negative') else 'png'}"
    if kind == "shape":
        write_labels(path, _labels())
    elif kind == "float":
        tifffile.imwrite(path, _labels().astype(np.float32))
    elif kind == "colour":
        cv2.imwrite(str(path), np.zeros((20, 30, 3), np.uint8))
    elif kind == "negative":
        tifffile.imwrite(path, -_labels().astype(np.int16))
    elif kind == "text":
        path.write_text("not an image")
    with pytest.raises(DataError) as info:
        read_labels(path, (20, 40) if kind == "shape" else (20, 30))
    assert str(path) in str(info.value) and message in str(info.value)


def test_incomplete_files_are_not_taken_for_finished_ones(tmp_path: Path) -> None:
    path = write_labels(tmp_path / "a_cells.png", _labels())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert label_png_shape(path) is None
    cv2.imwrite(str(tmp_path / "b_cells.png"), np.zeros((4, 4), np.uint8))  # 8-bit: not ours
    assert label_png_shape(tmp_path / "b_cells.png") is None
    assert label_png_shape(tmp_path / "none.png") is None


def test_relabel_and_match_nuclei_to_cells() -> None:
    cells = np.array([[4, 4, 4, 0, 9, 9, 9, 0, 2, 2]])
    nuclei = np.array([[7, 7, 0, 0, 0, 3, 5, 5, 0, 0]])  # 5 spills out of cell 9; cell 2 has none
    assert relabel(cells).tolist() == [[2, 2, 2, 0, 3, 3, 3, 0, 1, 1]]
    new_cells, new_nuclei = match_nuclei(cells, nuclei)
    assert new_cells.tolist() == [[2, 2, 2, 0, 3, 3, 3, 0, 1, 1]]
    # cell 9 (now 3) holds one pixel of nucleus 3 and one of 5: the first largest wins, 5 is clipped
    assert new_nuclei.tolist() == [[2, 2, 0, 0, 0, 3, 0, 0, 0, 0]]
