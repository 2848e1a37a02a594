"""True label images of synthetic fields: written beside the images, which stay the same bytes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from hpa_classify.cells.masks import read_labels
from hpa_classify.cells.metrics import match_counts
from hpa_classify.cells.segment import segment_field
from hpa_classify.data.io import load_sample
from hpa_classify.data.layout import load_dataset
from hpa_classify.data.synth import generate
from hpa_classify.data.synth.writer import CELL_LABELS, MASKS_DIR


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(folder.glob("*.png")):
        h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()


def test_masks_beside_unchanged_images(tmp_path: Path) -> None:
    kwargs = dict(n_train=6, n_test=3, size=96, seed=5, min_per_class=0, workers=1)
    generate(tmp_path / "plain", **kwargs)
    generate(tmp_path / "masked", masks=True, **kwargs)
    for split in ("train", "test"):
        assert _digest(tmp_path / "plain" / split) == _digest(tmp_path / "masked" / split)
    assert not (tmp_path / "plain" / MASKS_DIR).exists()
    masks = tmp_path / "masked" / MASKS_DIR
    ids = pd.read_csv(tmp_path / "masked" / "train.csv")["Id"].tolist()
    ids += pd.read_csv(tmp_path / "masked" / "test_labels.csv")["Id"].tolist()
    assert sorted(p.name for p in masks.glob("*.png")) == sorted(
        f"{i}_{k}.png" for i in ids for k in ("cells", "nuclei")
    )
    table = pd.read_csv(masks / CELL_LABELS, dtype={"Target": str}, keep_default_na=False)
    assert table.columns.tolist() == ["Id", "cell", "Target"]
    for sample_id in ids:
        cells = read_labels(masks / f"{sample_id}_cells.png", (96, 96))
        nuclei = read_labels(masks / f"{sample_id}_nuclei.png", (96, 96))
        n = int(cells.max())
        assert sorted(np.unique(cells).tolist()) == list(range(n + 1))  # ids 1..n, no gap
        inside = nuclei > 0
        assert (cells[inside] == nuclei[inside]).all()  # a nucleus lies in its own cell
        assert table[table["Id"] == sample_id]["cell"].tolist() == list(range(1, n + 1))


def test_mitotic_classes_belong_to_dividing_cells_only(tmp_path: Path) -> None:
    generate(tmp_path / "d", n_train=40, n_test=0, size=64, seed=2, min_per_class=1, workers=1, masks=True)
    table = pd.read_csv(tmp_path / "d" / MASKS_DIR / CELL_LABELS, dtype={"Target": str}, keep_default_na=False)
    image_targets = pd.read_csv(tmp_path / "d" / "train.csv", dtype={"Target": str}).set_index("Id")["Target"]
    for _, row in table.iterrows():
        shown = set(row["Target"].split())
        assert shown <= set(image_targets[row["Id"]].split())
        assert shown | {"16", "17"} >= set(image_targets[row["Id"]].split())  # only 16 and 17 may be left out
    assert any("16" in t.split() for t in table["Target"]) and any("17" in t.split() for t in table["Target"])


def test_the_segmentation_finds_the_synthetic_cells(tmp_path: Path) -> None:
    generate(tmp_path / "s", n_train=0, n_test=6, size=256, seed=1, min_per_class=0, workers=1, masks=True)
    ds = load_dataset(tmp_path / "s" / "test_labels.csv", images=tmp_path / "s" / "test")
    totals = {}
    for sample_id, files in zip(ds.ids, ds.files):
        seg = segment_field(load_sample(files))
        for kind, pred in (("nuclei", seg.nuclei), ("cells", seg.cells)):
            counts = match_counts(read_labels(tmp_path / "s" / MASKS_DIR / f"{sample_id}_{kind}.png"), pred)
            totals[kind] = totals[kind] + counts if kind in totals else counts
    assert totals["nuclei"].at(0.5) > 0.85 and totals["cells"].at(0.5) > 0.8, {k: v.summary() for k, v in totals.items()}
