"""Per-cell training, prediction, the Kaggle 2021 submission and its score, end to end as a user runs them."""

from __future__ import annotations

import base64
import re
import zlib
from pathlib import Path

import anndata
import numpy as np
import pandas as pd
import pytest
from pycocotools import mask as coco_mask

from conftest import TINY_TRAIN, hpa
from helpers import SHARED_DATA
from hpa_classify.cells.masks import read_labels, write_labels
from hpa_classify.classes import CLASS_NAMES_2021
from hpa_classify.data.layout import load_dataset
from hpa_classify.data.synth import generate

# pycocotools 2.0.11 decodes through an __array__ that NumPy 2 warns about
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

FULL_SIZE = SHARED_DATA / "hpa_samples" / "hpa2021_fullres"
CELL_TRAIN = [*TINY_TRAIN, "--set", "data.size=32", "--set", "train.epochs=1"]

# the truth of the synthetic fields, in the 2021 classes, written out here (not taken from the package)
_TO_2021 = {0: 0, 1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6, 7: 7, 8: 17, 9: 17, 10: 17, 11: 8, 12: 9, 13: 9, 14: 10,
            17: 11, 18: 12, 19: 12, 20: 17, 21: 13, 22: 13, 23: 14, 24: 15, 25: 16, 26: 17}


@pytest.fixture(scope="module")
def cell_setup(tmp_path_factory: pytest.TempPathFactory, trained_run: Path) -> tuple[Path, Path, Path]:
    """``(data, cell_run, field_run)``: crowded 128 px fields with true masks, a cell run trained on them."""
    base = tmp_path_factory.mktemp("cells_predict")
    data = base / "data"
    generate(data, n_train=24, n_test=6, size=128, seed=5, min_per_class=0, version=2, masks=True, workers=2)
    run = base / "cell-run"
    result = hpa("train", data, *CELL_TRAIN, "--task", "cells", "--masks", data / "masks", "-o", run)
    assert result.returncode == 0, result.stdout + result.stderr
    return data, run, trained_run


def _decode(text: str, h: int, w: int) -> np.ndarray:
    """The competition's encoding undone with pycocotools alone."""
    counts = zlib.decompress(base64.b64decode(text))
    return coco_mask.decode({"size": [h, w], "counts": counts}).astype(bool)


def test_cell_run_is_marked_and_split_by_field(cell_setup: tuple[Path, Path, Path]) -> None:
    data, run, _ = cell_setup
    assert (run / "cells.json").is_file()
    split = pd.read_csv(run / "split.csv")
    crops = pd.read_csv(run.with_name("cell-run-crops") / "crops" / "crops.csv")
    merged = split.merge(crops, on="Id")
    assert len(merged) == len(split) == len(crops)
    assert merged.groupby("field").split.nunique().max() == 1  # no field on both sides
    truth = pd.read_csv(data / "masks" / "cell_labels.csv")
    train_ids = set(pd.read_csv(data / "train.csv").Id)
    assert len(crops) == int(truth.Id.isin(train_ids).sum())  # every true cell of every training field


def test_submission_decodes_to_the_cells_and_the_metric_is_recomputed(
    cell_setup: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    data, cell_run, field_run = cell_setup
    out = tmp_path / "pred"
    result = hpa("predict", field_run, cell_run, data, "--cells", "--masks", data / "masks", "-o", out)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "(combined)" in result.stdout
    sub = pd.read_csv(out / "submission.csv", keep_default_na=False)
    probs = pd.read_csv(out / "cell_probs.csv")
    assert list(sub.columns) == ["ID", "ImageWidth", "ImageHeight", "PredictionString"]
    assert sub.ID.tolist() == pd.read_csv(data / "sample_submission.csv").Id.tolist()
    for row in sub.itertuples():
        labels = read_labels(data / "masks" / f"{row.ID}_cells.png")
        tokens = row.PredictionString.split()
        triples = [tokens[k : k + 3] for k in range(0, len(tokens), 3)]
        by_mask: dict[str, list[tuple[int, float]]] = {}
        for label, conf, text in triples:
            by_mask.setdefault(text, []).append((int(label), float(conf)))
        ids = [int(k) for k in np.unique(labels) if k]
        assert len(by_mask) == len(ids)
        mine = probs[probs.ID == row.ID].set_index("cell")
        for text, scored in by_mask.items():
            mask = _decode(text, row.ImageHeight, row.ImageWidth)
            cell = int(np.unique(labels[mask])[0])
            assert (labels == cell).sum() == mask.sum() and (labels[mask] == cell).all()
            assert [c for c, _ in scored] == list(range(19))
            np.testing.assert_allclose([p for _, p in scored], mine.loc[cell, list(CLASS_NAMES_2021)].to_numpy(float),
                                       atol=1e-5)
    assert (out / "overlays").is_dir() and len(list((out / "overlays").glob("*.png"))) == len(sub)
    people = pd.read_csv(out / "cells.csv")
    assert len(people) == len(probs) and set(people.class_1) <= set(CLASS_NAMES_2021)
    page = (out / "cells.html").read_text()
    assert f"{len(probs)} cells in {len(sub)} fields" in page
    assert all(f'src="overlays/{i}.png"' in page for i in sub.ID)

    # the metric, recomputed here from cell_probs.csv: the cells are the true ones, so matching is by id
    truth = pd.read_csv(data / "masks" / "cell_labels.csv", keep_default_na=False)
    truth = truth[truth.Id.isin(sub.ID)]
    true_sets = {
        (r.Id, r.cell): ({_TO_2021[int(t)] for t in r.Target.split() if int(t) in _TO_2021} or {18})
        for r in truth.itertuples()
    }
    aps = []
    for c, name in enumerate(CLASS_NAMES_2021):
        positive = np.array([c in true_sets[(r.ID, r.cell)] for r in probs.itertuples()])
        if not positive.any():
            continue
        order = np.argsort(-probs[name].to_numpy(), kind="stable")
        hits = positive[order]
        precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
        # Open Images: at each true positive, the best precision at that recall or beyond
        best_after = np.maximum.accumulate(precision[::-1])[::-1]
        aps.append(float(best_after[hits].sum() / positive.sum()))
    scored = hpa("evaluate", out, data, "--cells", "-o", tmp_path / "ap.csv")
    assert scored.returncode == 0, scored.stdout + scored.stderr
    table = pd.read_csv(tmp_path / "ap.csv")
    printed = float(re.search(r"mAP over the \d+ classes with true cells: ([0-9.]+)", scored.stdout).group(1))
    # the submission's confidences have 6 significant digits, cell_probs.csv 6 decimals: near-ties may swap
    assert printed == pytest.approx(np.mean(aps), abs=5e-4)
    np.testing.assert_allclose(table.ap.dropna().to_numpy(), aps, atol=5e-4)


def test_one_field_run_broadcasts_its_probabilities(cell_setup: tuple[Path, Path, Path], tmp_path: Path) -> None:
    data, _, field_run = cell_setup
    out = tmp_path / "pred"
    result = hpa("predict", field_run, data, "--cells", "--masks", data / "masks", "-o", out)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "(broadcast)" in result.stdout
    probs = pd.read_csv(out / "cell_probs.csv")
    assert (probs.groupby("ID")[list(CLASS_NAMES_2021)].nunique() == 1).all().all()


def test_crops_of_every_cell_are_a_dataset(cell_setup: tuple[Path, Path, Path], tmp_path: Path) -> None:
    data, _, _ = cell_setup
    out = tmp_path / "crops"
    result = hpa("crops", data, "-o", out, "--masks", data / "masks", "--size", "24")
    assert result.returncode == 0, result.stdout + result.stderr
    table = pd.read_csv(out / "train.csv", dtype=str)
    origin = pd.read_csv(out / "crops.csv", dtype=str)
    fields = pd.read_csv(data / "train.csv", dtype=str).set_index("Id")
    truth = pd.read_csv(data / "masks" / "cell_labels.csv", dtype=str)
    assert len(table) == int(truth.Id.isin(fields.index).sum())
    assert (table.Target.to_numpy() == fields.loc[origin.field, "Target"].to_numpy()).all()
    assert (table.Id == origin.field + "-c" + origin.cell.str.zfill(5)).all()
    assert load_dataset(out).read(0).shape == (4, 24, 24)

    # per-cell embeddings in one command: the cells cut at the run's size, then embedded
    _, cell_run, _ = cell_setup
    emb = tmp_path / "emb"
    embedded = hpa("embed", cell_run, data, "--cells", "--masks", data / "masks", "-o", emb, "--no-umap")
    assert embedded.returncode == 0, embedded.stdout + embedded.stderr
    cells = anndata.read_h5ad(emb / "embedding.h5ad")
    assert cells.obs_names.tolist() == table.Id.tolist()
    assert (tmp_path / "emb-crops" / "crops.csv").is_file()


def test_bad_inputs_exit_2_naming_what(cell_setup: tuple[Path, Path, Path], tmp_path: Path) -> None:
    data, cell_run, field_run = cell_setup
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    for sample_id in pd.read_csv(data / "sample_submission.csv").Id:
        (wrong / f"{sample_id}_cells.png").write_bytes((data / "masks" / f"{sample_id}_cells.png").read_bytes())
    first = pd.read_csv(data / "sample_submission.csv").Id[0]
    write_labels(wrong / f"{first}_cells.png", np.ones((10, 10), np.uint16))
    bad = hpa("predict", field_run, data, "--cells", "--masks", wrong, "-o", tmp_path / "p")
    assert bad.returncode == 2 and f"{first}_cells.png" in bad.stderr

    two = hpa("predict", cell_run, cell_run, data, "--cells", "-o", tmp_path / "q")
    assert two.returncode == 2 and "one cell classifier at a time" in two.stderr

    folds = hpa("train", data, "--task", "cells", "--folds", "2", "-o", tmp_path / "r")
    assert folds.returncode == 2 and "--folds" in folds.stderr

    sub = tmp_path / "sub.csv"
    sub.write_text("ID,ImageWidth,ImageHeight,PredictionString\nnot-a-field,128,128,\n")
    unknown = hpa("evaluate", sub, data, "--cells")
    assert unknown.returncode == 2 and "not-a-field" in unknown.stderr

    twice = tmp_path / "twice.csv"
    twice.write_text(f"ID,ImageWidth,ImageHeight,PredictionString\n{first},128,128,\n{first},128,128,\n")
    repeated = hpa("evaluate", twice, data, "--cells")
    assert repeated.returncode == 2 and "more than once" in repeated.stderr

    large = tmp_path / "large.csv"
    large.write_text(f"ID,ImageWidth,ImageHeight,PredictionString\n{first},100000,100000,\n")
    wrong_size = hpa("evaluate", large, data, "--cells")
    assert wrong_size.returncode == 2 and "100000 x 100000" in wrong_size.stderr and "128 x 128" in wrong_size.stderr

    plain = hpa("predict", cell_run, data, "-o", tmp_path / "s.csv")
    assert plain.returncode == 2 and "--cells" in plain.stderr

    broken = tmp_path / "broken.csv"
    broken.write_text(f"ID,ImageWidth,ImageHeight,PredictionString\n{first},128,128,0 0.5 !!!\n")
    garbled = hpa("evaluate", broken, data, "--cells")
    assert garbled.returncode == 2 and "line 2" in garbled.stderr and "triple 0" in garbled.stderr


def test_quick_benchmark_table_matches_its_runs(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    result = hpa("bench", "cells", "--quick", "-o", out)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = pd.read_csv(out / "results.csv")
    assert rows.method.tolist() == ["broadcast", "cell", "combined"]
    for row in rows.itertuples():
        aps = [getattr(row, f"ap_{c}") for c in range(19) if getattr(row, f"n_true_{c}") > 0]
        assert row.map == pytest.approx(np.mean(aps))
    text = (out / "cells.md").read_text()
    for row in rows.itertuples():
        assert f"{row.map:.3f}" in text


@pytest.mark.realdata
@pytest.mark.skipif(not FULL_SIZE.is_dir(), reason=f"full-size HPA samples not found at {FULL_SIZE}")
def test_real_full_size_fields_give_a_submission_that_decodes_to_its_masks(
    trained_run: Path, tmp_path: Path
) -> None:
    out = tmp_path / "real"
    result = hpa("predict", trained_run, FULL_SIZE / "labels.csv", "--images", FULL_SIZE, "--cells", "-o", out)
    assert result.returncode == 0, result.stdout + result.stderr
    sub = pd.read_csv(out / "submission.csv", keep_default_na=False)
    sizes = pd.read_csv(FULL_SIZE / "labels.csv").set_index("Id")
    assert len(sub) == 7
    for row in sub.itertuples():
        assert (row.ImageWidth, row.ImageHeight) == tuple(sizes.loc[row.ID, ["Width", "Height"]])
        labels = read_labels(out / "masks" / f"{row.ID}_cells.png")
        tokens = row.PredictionString.split()
        masks = {tokens[k + 2] for k in range(0, len(tokens), 3)}
        n_cells = len(np.unique(labels)) - 1
        assert len(masks) == n_cells > 0 and len(tokens) == 3 * 19 * n_cells
        rebuilt = np.zeros(labels.shape, np.int32)
        for text in masks:
            mask = _decode(text, row.ImageHeight, row.ImageWidth)
            assert (rebuilt[mask] == 0).all()
            rebuilt[mask] = labels[mask].max()
        np.testing.assert_array_equal(rebuilt, labels)
    assert len(list((out / "overlays").glob("*.png"))) == 7
