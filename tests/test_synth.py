"""Tests of the synthetic HPA-like dataset generator."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from hpa_classify.classes import (
    CHANNELS,
    KAGGLE2018_CLASS_COUNTS,
    KAGGLE2018_N_IMAGES,
    NUM_CLASSES,
    parse_target,
)
from hpa_classify.analysis.preview import preview
from hpa_classify.data import synth
from hpa_classify.data.synth import _stats as stats
from hpa_classify.data.synth.image import render_field
from hpa_classify.data.synth.writer import image_rng
from hpa_classify.errors import ConfigError, DataError

# --------------------------------------------------------------------------- embedded statistics


def test_embedded_statistics_agree_with_each_other() -> None:
    sets = [parse_target(text) for text, _ in stats.LABEL_SETS]
    weights = np.array([n for _, n in stats.LABEL_SETS])
    assert weights.sum() == KAGGLE2018_N_IMAGES
    assert len(set(map(tuple, sets))) == len(sets)
    counts = np.zeros(NUM_CLASSES, int)
    co = np.zeros((NUM_CLASSES, NUM_CLASSES), int)
    per_image = np.zeros(len(stats.LABELS_PER_IMAGE), int)
    for ids, n in zip(sets, weights, strict=True):
        counts[ids] += n
        co[np.ix_(ids, ids)] += n
        per_image[len(ids) - 1] += n
    assert tuple(counts) == KAGGLE2018_CLASS_COUNTS
    assert tuple(per_image) == stats.LABELS_PER_IMAGE
    assert np.array_equal(co, np.array(stats.COOCCURRENCE))


# --------------------------------------------------------------------------- label sampling


def _multihot(sets: list[list[int]]) -> np.ndarray:
    out = np.zeros((len(sets), NUM_CLASSES), bool)
    for row, ids in enumerate(sets):
        out[row, ids] = True
    return out


def test_sample_labels_follow_real_statistics_at_alpha_1() -> None:
    n = 30_000
    hot = _multihot(synth.sample_labels(n, np.random.default_rng(0), class_alpha=1.0))
    real_freq = np.array(KAGGLE2018_CLASS_COUNTS) / KAGGLE2018_N_IMAGES
    freq = hot.mean(axis=0)
    # binomial standard error, with a floor for the rarest classes
    tolerance = 4 * np.sqrt(real_freq * (1 - real_freq) / n) + 2e-4
    assert np.all(np.abs(freq - real_freq) <= tolerance), np.round(freq - real_freq, 4)

    per_image = np.bincount(hot.sum(axis=1), minlength=6)[1:6] / n
    real_per_image = np.array(stats.LABELS_PER_IMAGE) / KAGGLE2018_N_IMAGES
    assert np.allclose(per_image, real_per_image, atol=0.015)

    # co-occurrence: P(b | a) for the well-populated classes
    co = hot.T.astype(float) @ hot.astype(float)
    real_co = np.array(stats.COOCCURRENCE, float)
    common = np.flatnonzero(real_freq > 0.02)
    cond = co[np.ix_(common, common)] / np.diag(co)[common, None]
    real_cond = real_co[np.ix_(common, common)] / np.diag(real_co)[common, None]
    assert np.abs(cond - real_cond).max() < 0.04


def test_class_alpha_flattens_the_class_distribution() -> None:
    def freq(alpha: float) -> np.ndarray:
        sets = synth.sample_labels(20_000, np.random.default_rng(1), class_alpha=alpha)
        return _multihot(sets).mean(axis=0)

    def entropy(f: np.ndarray) -> float:
        p = f / f.sum()
        return float(-(p * np.log(p + 1e-12)).sum())

    f1, f_half, f0 = freq(1.0), freq(0.5), freq(0.0)
    assert entropy(f1) < entropy(f_half) < entropy(f0)
    rods = 27
    assert f1[rods] < 0.002 < f_half[rods] < f0[rods]
    # at alpha = 0 every class is the drawn one in 1/28 of the sets
    assert f0.min() > 0.8 / NUM_CLASSES


def test_min_per_class_is_honoured() -> None:
    sets = synth.sample_labels(70, np.random.default_rng(2), class_alpha=1.0, min_per_class=2)
    assert len(sets) == 70
    counts = _multihot(sets).sum(axis=0)
    assert counts.min() >= 2
    assert all(ids == sorted(set(ids)) and ids for ids in sets)


def test_min_per_class_too_large_for_n_is_an_error() -> None:
    with pytest.raises(ConfigError, match="min_per_class"):
        synth.sample_labels(10, np.random.default_rng(0), min_per_class=3)


def test_sample_labels_is_deterministic_and_validates() -> None:
    a = synth.sample_labels(50, np.random.default_rng(7), 0.5, 1)
    b = synth.sample_labels(50, np.random.default_rng(7), 0.5, 1)
    assert a == b
    with pytest.raises(ConfigError, match="class_alpha"):
        synth.sample_labels(5, np.random.default_rng(0), class_alpha=-1)
    with pytest.raises(ConfigError):
        synth.sample_labels(-1, np.random.default_rng(0))


# --------------------------------------------------------------------------- rendering


@pytest.mark.parametrize("size", [32, 64, 200])
def test_render_shape_and_dtype(size: int) -> None:
    image = synth.render_sample([0, 16, 25], size, np.random.default_rng(size))
    assert image.shape == (4, size, size)
    assert image.dtype == np.uint8
    assert image.flags.c_contiguous


def test_render_is_deterministic() -> None:
    a = synth.render_sample([5, 21], 64, np.random.default_rng(3))
    b = synth.render_sample([5, 21], 64, np.random.default_rng(3))
    c = synth.render_sample([5, 21], 64, np.random.default_rng(4))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_render_rejects_bad_input() -> None:
    with pytest.raises(ConfigError, match="size"):
        synth.render_sample([0], 16, np.random.default_rng(0))
    with pytest.raises(ConfigError, match="28"):
        synth.render_sample([28], 64, np.random.default_rng(0))


def test_every_class_puts_signal_in_green() -> None:
    for c in range(NUM_CLASSES):
        image = synth.render_sample([c], 64, np.random.default_rng([11, c]))
        green = image[1].astype(float)
        assert green.max() - np.median(green) >= 25, c
        # the reference channels always show cells
        assert image[2].max() > 60 and image[0].max() > 40 and image[3].max() > 40, c


def _render(c: int, seed: int, size: int = 128) -> np.ndarray:
    return synth.render_sample([c], size, np.random.default_rng([seed, 500 + c]))


def _signal(plane: np.ndarray) -> np.ndarray:
    x = plane.astype(float)
    return np.clip(x - np.median(x), 0, None)


def _nucleus_mask(image: np.ndarray) -> np.ndarray:
    blue = cv2.GaussianBlur(image[2].astype(np.float32), (0, 0), 1.0)
    return blue > 0.4 * np.percentile(blue, 99.5)


def _cell_mask(image: np.ndarray) -> np.ndarray:
    total = image[0].astype(np.float32) + image[2] + image[3]
    total = cv2.GaussianBlur(total, (0, 0), 1.5)
    return total > 0.15 * np.percentile(total, 99)


def _highpass_corr(a: np.ndarray, b: np.ndarray) -> float:
    def hp(x: np.ndarray) -> np.ndarray:
        x = x.astype(np.float32)
        return (x - cv2.GaussianBlur(x, (0, 0), 2.0)).ravel()

    return float(np.corrcoef(hp(a), hp(b))[0, 1])


SEEDS = range(3)


def test_nucleoplasm_green_lies_inside_the_blue_nucleus() -> None:
    def inside(c: int) -> float:
        fractions = []
        for seed in SEEDS:
            image = _render(c, seed)
            g = _signal(image[1])
            fractions.append(g[_nucleus_mask(image)].sum() / g.sum())
        return float(np.mean(fractions))

    assert inside(0) > 0.6
    assert inside(25) < 0.2  # cytosol stays out of the nucleus


def test_nuclear_membrane_green_lies_on_the_nucleus_rim() -> None:
    def rim_ratio(c: int) -> float:
        ratios = []
        for seed in SEEDS:
            image = _render(c, seed)
            g = _signal(image[1])
            nuc = _nucleus_mask(image)
            inner = cv2.erode(nuc.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=2)
            rim = nuc & ~inner.astype(bool)
            ratios.append(g[rim].mean() / (g[inner.astype(bool)].mean() + 1e-6))
        return float(np.mean(ratios))

    assert rim_ratio(1) > 2.0
    assert rim_ratio(0) < 1.5


def test_er_green_follows_yellow_more_than_cytosol_does() -> None:
    er = np.mean([_highpass_corr(im[1], im[3]) for im in (_render(6, s) for s in SEEDS)])
    cytosol = np.mean([_highpass_corr(im[1], im[3]) for im in (_render(25, s) for s in SEEDS)])
    assert er > 0.65
    assert er > cytosol + 0.15


def test_microtubule_green_follows_red() -> None:
    mt = np.mean([_highpass_corr(im[1], im[0]) for im in (_render(14, s) for s in SEEDS)])
    cytosol = np.mean([_highpass_corr(im[1], im[0]) for im in (_render(25, s) for s in SEEDS)])
    assert mt > 0.55
    assert mt > cytosol + 0.2


def test_plasma_membrane_green_lies_at_cell_edges() -> None:
    def edge_fraction(c: int) -> float:
        fractions = []
        for seed in SEEDS:
            image = _render(c, seed)
            g = _signal(image[1])
            cells = _cell_mask(image)
            inner = cv2.erode(cells.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
            fractions.append(g[cells & ~inner].sum() / g.sum())
        return float(np.mean(fractions))

    membrane, cytosol = edge_fraction(21), edge_fraction(25)
    assert membrane > 0.4
    assert membrane > cytosol + 0.2


def test_mitotic_classes_force_dividing_cells() -> None:
    for c, kind in ((16, "daughter"), (17, "metaphase")):
        for seed in SEEDS:
            _, fld = render_field([c], 64, np.random.default_rng(seed))
            assert any(cell.kind == kind for cell in fld.cells), (c, seed)


# --------------------------------------------------------------------------- dataset on disk


def _tree(root: Path) -> dict[str, bytes]:
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root)): p.read_bytes() for p in files}


def test_generate_writes_kaggle_layout_deterministically(tmp_path: Path) -> None:
    kwargs = dict(n_train=5, n_test=3, size=40, seed=3, min_per_class=0)
    one = synth.generate(tmp_path / "one", workers=1, **kwargs)
    synth.generate(tmp_path / "two", workers=2, **kwargs)
    first, second = _tree(tmp_path / "one"), _tree(tmp_path / "two")
    assert first == second

    root = tmp_path / "one"
    expected = {"train.csv", "test_labels.csv", "sample_submission.csv", "synth.json"}
    assert expected <= set(first)
    train = pd.read_csv(root / "train.csv", dtype=str)
    test = pd.read_csv(root / "test_labels.csv", dtype=str)
    submission = pd.read_csv(root / "sample_submission.csv", dtype=str)
    assert list(train.columns) == ["Id", "Target"]
    assert list(submission.columns) == ["Id", "Predicted"]
    assert train.Id.tolist() == [f"synth-{i:06d}" for i in range(5)]
    assert test.Id.tolist() == [f"synth-t-{i:06d}" for i in range(3)]
    assert submission.Id.tolist() == test.Id.tolist()
    assert (submission.Predicted == "0").all()
    train_sets = [parse_target(t, row=i) for i, t in zip(train.Id, train.Target, strict=True)]
    test_sets = [parse_target(t, row=i) for i, t in zip(test.Id, test.Target, strict=True)]
    for split, ids in (("train", train.Id), ("test", test.Id)):
        for sample_id in ids:
            for channel in CHANNELS:
                path = root / split / f"{sample_id}_{channel}.png"
                plane = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
                assert plane is not None and plane.shape == (40, 40) and plane.dtype == np.uint8
    assert len(list((root / "train").iterdir())) == 5 * 4
    assert one.class_counts_train == _multihot(train_sets).sum(axis=0).tolist()
    assert one.class_counts_test == _multihot(test_sets).sum(axis=0).tolist()
    record = json.loads((root / "synth.json").read_text())
    assert record["complete"] is True and record["seed"] == 3 and record["size"] == 40

    # image i is the one render_sample draws from the (seed, split, i) generator
    again = synth.render_sample(train_sets[2], 40, image_rng(3, "train", 2))
    assert np.array_equal(again[1], cv2.imread(str(root / "train" / "synth-000002_green.png"), 0))


def test_generate_honours_min_per_class(tmp_path: Path) -> None:
    summary = synth.generate(
        tmp_path / "d", n_train=40, n_test=30, size=32, class_alpha=1.0, min_per_class=1, workers=1
    )
    assert min(summary.class_counts_train) >= 1
    assert min(summary.class_counts_test) >= 1


def test_generate_refuses_a_foreign_non_empty_folder(tmp_path: Path) -> None:
    target = tmp_path / "mine"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    with pytest.raises(DataError, match="mine"):
        synth.generate(target, n_train=2, n_test=1, size=32)
    (target / "synth.json").write_text('{"generator": "someone else"}')
    with pytest.raises(DataError, match="mine"):
        synth.generate(target, n_train=2, n_test=1, size=32)
    assert (target / "notes.txt").read_text() == "keep me"


def test_generate_replaces_its_own_earlier_output(tmp_path: Path) -> None:
    target = tmp_path / "d"
    synth.generate(target, n_train=4, n_test=2, size=32, min_per_class=0, workers=1)
    synth.generate(target, n_train=2, n_test=1, size=32, min_per_class=0, workers=1)
    assert len(list((target / "train").iterdir())) == 2 * 4
    assert len(list((target / "test").iterdir())) == 1 * 4
    assert len(pd.read_csv(target / "train.csv")) == 2


def test_preview_writes_a_png(tmp_path: Path) -> None:
    out = preview(tmp_path / "sheet.png", size=32, seed=1)
    assert out == tmp_path / "sheet.png"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert cv2.imread(str(out)) is not None
    assert [p.name for p in tmp_path.iterdir()] == ["sheet.png"]
