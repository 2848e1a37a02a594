"""The default segmentation on fields drawn with known nuclei and cells."""

from __future__ import annotations

import numpy as np
import pytest

from cell_fields import draw_field
from hpa_classify.cells.metrics import iou_matrix, match_counts
from hpa_classify.cells.scale import infer_pixel_size
from hpa_classify.cells.segment import SegmentSettings, find_nuclei, segment_field
from hpa_classify.errors import HPAError


def test_finds_every_cell_of_a_drawn_field() -> None:
    image, true_nuclei, true_cells = draw_field(pixel_size=0.32, grid=3, seed=1)
    seg = segment_field(image, SegmentSettings(pixel_size=0.32))
    assert seg.nuclei.dtype == seg.cells.dtype == np.uint16
    assert seg.nuclei.shape == seg.cells.shape == image.shape[1:]
    assert seg.n_cells == 9
    assert sorted(np.unique(seg.cells).tolist()) == list(range(10))
    cell_iou = iou_matrix(true_cells, seg.cells).max(axis=1)
    nucleus_iou = iou_matrix(true_nuclei, seg.nuclei).max(axis=1)
    assert cell_iou.min() > 0.85, cell_iou
    assert nucleus_iou.min() > 0.75, nucleus_iou
    assert match_counts(true_cells, seg.cells).at(0.5) == 1.0
    assert match_counts(true_nuclei, seg.nuclei).at(0.5) == 1.0


def test_a_cell_and_its_nucleus_share_one_id() -> None:
    image, _, _ = draw_field(pixel_size=0.32, grid=3, seed=2)
    seg = segment_field(image, SegmentSettings(pixel_size=0.32))
    inside = seg.nuclei > 0
    assert (seg.cells[inside] == seg.nuclei[inside]).all()
    assert set(np.unique(seg.nuclei).tolist()) == set(np.unique(seg.cells).tolist())


@pytest.mark.parametrize("pixel_size", [0.16, 0.32, 0.64])
def test_the_same_settings_serve_every_pixel_size(pixel_size: float) -> None:
    image, _, true_cells = draw_field(pixel_size=pixel_size, grid=3, seed=3)
    seg = segment_field(image, SegmentSettings(pixel_size=pixel_size))
    assert seg.n_cells == 9
    assert match_counts(true_cells, seg.cells).at(0.5) == 1.0


def test_pixel_size_is_inferred_from_the_side() -> None:
    assert infer_pixel_size((512, 512)) == pytest.approx(0.32)
    assert infer_pixel_size((2048, 2048)) == pytest.approx(0.08)
    assert infer_pixel_size((1728, 1728)) == pytest.approx(163.84 / 1728)
    # a 512 px field drawn at 0.32 um/px is segmented alike with and without --pixel-size
    image, _, _ = draw_field(pixel_size=0.32, side_um=163.84, grid=5, seed=4)
    assert image.shape[1:] == (512, 512)
    assert segment_field(image).n_cells == segment_field(image, SegmentSettings(pixel_size=0.32)).n_cells == 25


def test_a_field_without_nuclei_has_no_cells() -> None:
    image, _, _ = draw_field(pixel_size=0.32, seed=5)
    image[2] = 0  # no DNA stain anywhere
    seg = segment_field(image, SegmentSettings(pixel_size=0.32))
    assert seg.n_cells == 0 and not seg.nuclei.any()
    assert segment_field(np.zeros((4, 64, 64), np.uint8)).n_cells == 0
    noise = np.random.default_rng(0).integers(0, 3, (4, 64, 64), dtype=np.uint8)
    assert segment_field(noise).n_cells == 0


def test_find_nuclei_alone() -> None:
    image, true_nuclei, _ = draw_field(pixel_size=0.32, seed=6)
    nuclei = find_nuclei(image, SegmentSettings(pixel_size=0.32))
    assert int(nuclei.max()) == 9
    assert match_counts(true_nuclei, nuclei).at(0.5) == 1.0


def test_bad_settings_and_shapes_are_refused() -> None:
    with pytest.raises(HPAError, match="pixel size"):
        SegmentSettings(pixel_size=0)
    with pytest.raises(HPAError, match="foreground"):
        SegmentSettings(foreground=-1)
    with pytest.raises(HPAError, match=r"\(4, H, W\)"):
        segment_field(np.zeros((3, 8, 8), np.uint8))
