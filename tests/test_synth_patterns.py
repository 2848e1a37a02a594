"""generate(..., pattern_masks=True) writes where each class's green pattern lies, and the same images."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from hpa_classify.data.synth import generate


def _images(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for split in ("train", "test") for p in sorted((root / split).glob("*.png"))}


def test_pattern_masks_beside_the_same_images(tmp_path: Path) -> None:
    kw = {"n_train": 6, "n_test": 2, "size": 48, "seed": 5, "min_per_class": 0, "workers": 1}
    plain, marked = tmp_path / "plain", tmp_path / "marked"
    generate(plain, **kw)
    generate(marked, pattern_masks=True, **kw)
    assert _images(plain) == _images(marked)
    assert not (plain / "masks").exists()
    rows = [line.split(",") for line in (marked / "train.csv").read_text().splitlines()[1:]]
    for sample_id, target in rows:
        for c in map(int, target.split()):
            region = cv2.imread(str(marked / "masks" / f"{sample_id}_pattern_{c}.png"), cv2.IMREAD_UNCHANGED)
            assert region is not None and region.shape == (48, 48) and region.dtype == np.uint8
            assert set(np.unique(region)) <= {0, 255}
            assert 0 < (region > 0).mean() < 1
            # the green channel is brighter inside the region than outside it
            green = cv2.imread(str(marked / "train" / f"{sample_id}_green.png"), cv2.IMREAD_UNCHANGED)
            assert green[region > 0].mean() > green[region == 0].mean()
    # one region per class an image shows, in both splits
    tables = [marked / "train.csv", marked / "test_labels.csv"]
    n_classes = sum(len(line.split(",")[1].split()) for t in tables for line in t.read_text().splitlines()[1:])
    assert len(list((marked / "masks").glob("*_pattern_*.png"))) == n_classes
