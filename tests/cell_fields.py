"""Fields drawn for the cell tests: known nuclei and cells, written in Kaggle layout if asked."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from hpa_classify.classes import CHANNELS


def draw_field(
    pixel_size: float = 0.32,
    side_um: float = 82.0,
    grid: int = 3,
    seed: int = 0,
    nucleus_um: float = 5.0,
    cell_um: float = 13.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(image, nuclei, cells)``: a ``(4, H, W)`` uint8 field with ``grid`` x ``grid`` cells.

    Nuclei are discs of radius ``nucleus_um`` on a jittered grid; each cell is
    the disc of radius ``cell_um`` around its nucleus, cut where it meets its
    neighbours (the nearest nucleus wins), so neighbouring cells touch. The
    red and yellow channels fade from the nucleus outwards (the dim seam
    between two cells is where a watershed should put their border), blue
    fills the nuclei. Lengths are in micrometres, so the same field can be
    drawn at any pixel size.
    """
    rng = np.random.default_rng(seed)
    side = round(side_um / pixel_size)
    step = side_um / grid
    centres = [
        ((i + 0.5) * step + rng.uniform(-0.1, 0.1) * step, (j + 0.5) * step + rng.uniform(-0.1, 0.1) * step)
        for i in range(grid) for j in range(grid)
    ]
    ys, xs = (np.indices((side, side)) + 0.5) * pixel_size
    dist = np.stack([np.hypot(ys - cy, xs - cx) for cy, cx in centres])
    nearest = dist.argmin(axis=0)
    d_near = dist.min(axis=0)
    cells = np.where(d_near <= cell_um, nearest + 1, 0).astype(np.uint16)
    nuclei = np.where(d_near <= nucleus_um, nearest + 1, 0).astype(np.uint16)
    fade = np.clip(1.0 - d_near / cell_um, 0.0, 1.0) * (cells > 0)
    bright = rng.uniform(0.7, 1.0, len(centres) + 1)[cells]
    noise = rng.normal(0, 3, (4, side, side))
    image = np.zeros((4, side, side), np.float64)
    image[CHANNELS.index("red")] = 40 + 120 * fade * bright
    image[CHANNELS.index("yellow")] = 30 + 100 * fade * bright
    image[CHANNELS.index("blue")] = 150 * (nuclei > 0) * bright
    image[CHANNELS.index("green")] = 60 * fade
    image[:, cells == 0] = 0
    image = np.clip(image + noise, 0, 255).astype(np.uint8)
    return image, nuclei, cells


def write_field(folder: Path, sample_id: str, image: np.ndarray) -> None:
    """Write the four channels of ``image`` as ``{Id}_{channel}.png``."""
    folder.mkdir(parents=True, exist_ok=True)
    for k, channel in enumerate(CHANNELS):
        assert cv2.imwrite(str(folder / f"{sample_id}_{channel}.png"), image[k])


def write_dataset(root: Path, fields: dict[str, np.ndarray]) -> Path:
    """A Kaggle root ``root/train.csv`` + ``root/train/`` holding ``fields`` (Id -> image)."""
    lines = ["Id,Target"] + [f"{sample_id},0" for sample_id in fields]
    root.mkdir(parents=True, exist_ok=True)
    (root / "train.csv").write_text("\n".join(lines) + "\n")
    for sample_id, image in fields.items():
        write_field(root / "train", sample_id, image)
    return root
