"""``hpa segment`` end to end, as a user runs it; and on the real HPA samples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from cell_fields import draw_field, write_dataset
from conftest import hpa
from helpers import SHARED_DATA
from hpa_classify.cells.masks import read_labels, write_labels
from hpa_classify.cells.segment import segment_field
from hpa_classify.classes import CHANNELS
from hpa_classify.data.io import load_sample

KAGGLE_LAYOUT = SHARED_DATA / "hpa_samples" / "kaggle_layout"
FULL_SIZE = SHARED_DATA / "hpa_samples" / "hpa2021_fullres"


@pytest.fixture(scope="module")
def drawn(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``(data_root, truth_dir)``: two drawn fields of 9 and 16 cells, with their true labels."""
    base = tmp_path_factory.mktemp("cells_cli")
    truth = base / "truth"
    fields = {}
    for sample_id, grid, seed in (("a", 3, 21), ("b", 4, 22)):
        image, nuclei, cells = draw_field(pixel_size=0.32, grid=grid, seed=seed)
        fields[sample_id] = image
        write_labels(truth / f"{sample_id}_nuclei.png", nuclei)
        write_labels(truth / f"{sample_id}_cells.png", cells)
    return write_dataset(base / "data", fields), truth


def test_segment_then_evaluate(drawn: tuple[Path, Path], tmp_path: Path) -> None:
    root, truth = drawn
    out = tmp_path / "out"
    result = hpa("segment", root, "-o", out, "--pixel-size", "0.32", "--overlays", "--workers", "2", "--eval", truth)
    assert result.returncode == 0, result.stderr
    assert "2 fields segmented: 25 cells" in result.stdout
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in result.stdout.splitlines() if line.startswith("│")]
    table = {(row[0], row[1]): row[2:] for row in rows}
    # both fields (9 and 16 cells) hold fewer than 20 cells: the one density group equals the whole
    assert sorted(table) == [(g, k) for g in ("1-19 cells", "all fields") for k in ("cells", "nuclei")]
    for group in ("all fields", "1-19 cells"):
        assert table[group, "nuclei"][0] == table[group, "cells"][0] == "1.000"  # AP@0.5
        assert table[group, "cells"][2:] == ["25", "25", "25", "0", "0"]  # true, found, TP, FP, FN at 0.5
    assert len(pd.read_csv(out / "cells.csv")) == 25
    assert sorted(p.name for p in (out / "overlays").iterdir()) == ["a.png", "b.png"]
    again = hpa("segment", root, "-o", out, "--pixel-size", "0.32")
    assert again.returncode == 0 and "2 kept from an earlier run" in again.stdout


def test_other_settings_in_the_same_folder_exit_2(drawn: tuple[Path, Path], tmp_path: Path) -> None:
    root, _ = drawn
    out = tmp_path / "out"
    assert hpa("segment", root, "-o", out, "--workers", "1").returncode == 0
    result = hpa("segment", root, "-o", out, "--pixel-size", "0.5")
    assert result.returncode == 2 and "--force" in result.stderr


@pytest.mark.parametrize("problem", ["shape", "dtype", "missing"])
def test_wrong_masks_exit_2_naming_the_file(drawn: tuple[Path, Path], tmp_path: Path, problem: str) -> None:
    root, truth = drawn
    masks = tmp_path / "masks"
    masks.mkdir()
    for name in ("a_cells.png", "b_cells.png"):
        (masks / name).write_bytes((truth / name).read_bytes())
    bad = masks / "b_cells.png"
    if problem == "shape":
        write_labels(bad, np.zeros((100, 256), np.uint16))
    elif problem == "dtype":
        bad.unlink()
        bad = masks / "b_cells.tif"
        tifffile.imwrite(bad, read_labels(truth / "b_cells.png").astype(np.float32))
    else:
        bad.unlink()
    result = hpa("segment", root, "-o", tmp_path / "out", "--masks", masks, "--workers", "1")
    assert result.returncode == 2, result.stderr
    assert bad.name in result.stderr.replace("\n", "")
    assert "Traceback" not in result.stderr


def test_masks_made_elsewhere_are_measured(drawn: tuple[Path, Path], tmp_path: Path) -> None:
    root, truth = drawn
    out = tmp_path / "out"
    result = hpa("segment", root, "-o", out, "--masks", truth, "--workers", "1", "--eval", truth)
    assert result.returncode == 0, result.stderr
    assert "taken from" in result.stdout and "25 cells" in result.stdout
    assert (read_labels(out / "b_cells.png") == read_labels(truth / "b_cells.png")).all()


# ----------------------------------------------------------------------------- real samples

#: Cells counted by eye in each real field (a cell whose nucleus is at least partly in
#: the field; daughter cells with separate nuclei count as two, a lobed or double
#: nucleus in one cell as one). docs/segmentation.md has the table and the overlays.
COUNTED_BY_EYE = {
    "000a6c98": 20, "5c27f04c": 8, "837e738c": 37, "94e33c64": 17,
    "a34d8680": 17, "a7faf0b4": 10, "b6a469d8": 10, "f0ac7116": 48,
}

needs_samples = pytest.mark.skipif(not KAGGLE_LAYOUT.is_dir(), reason=f"real HPA samples not found at {KAGGLE_LAYOUT}")


@pytest.mark.realdata
@needs_samples
def test_real_kaggle_fields_find_most_cells(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = hpa("segment", KAGGLE_LAYOUT, "-o", out, "--workers", "2")
    assert result.returncode == 0, result.stderr
    found = pd.read_csv(out / "cells.csv").groupby("Id").size()
    for sample_id, count in found.items():
        eye = COUNTED_BY_EYE[sample_id[:8]]
        assert 0.8 * eye <= count <= 1.3 * eye, (sample_id, count, eye)
    assert len(found) == 8


@pytest.mark.realdata
@pytest.mark.skipif(not FULL_SIZE.is_dir(), reason=f"full-size HPA samples not found at {FULL_SIZE}")
def test_a_full_size_field_agrees_with_its_kaggle_copy() -> None:
    sample_id = "5c27f04c-bb99-11e8-b2b9-ac1f6b6435d0"
    counts = []
    for folder in (FULL_SIZE, KAGGLE_LAYOUT):
        image = load_sample({c: folder / f"{sample_id}_{c}.png" for c in CHANNELS})
        counts.append(segment_field(image).n_cells)
    assert counts[0] == counts[1] == COUNTED_BY_EYE["5c27f04c"]
