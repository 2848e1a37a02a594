"""Prediction: the submission is the thresholded probabilities in the sample submission's order,
TTA is the mean over the symmetries of the square, and bf16 on a GPU agrees with fp32."""

from __future__ import annotations

import json
import os
import shutil
import zlib
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from helpers import (
    KAGGLE2018_N_TEST,
    KAGGLE2018_SAMPLE_SUBMISSION,
    assert_rows_are_thresholded,
    multihot,
    read_probs_table,
    write_image,
    write_table,
)
from hpa_classify.classes import CHANNELS
from hpa_classify.data.layout import Dataset, checked, load_dataset, read_table
from hpa_classify.inference.predict import TTA_VIEWS, predict_probs
from hpa_classify.workflows.submission import predict_run
from hpa_classify.inference.runs import load_model, open_run


def copy_model(run: Path, to: Path, thresholds: np.ndarray | None = None) -> Path:
    """A run directory with ``run``'s config and best checkpoint only (no data profile to compare
    with), and ``thresholds`` written by hand as the JSON list a thresholds.json may hold."""
    (to / "checkpoints").mkdir(parents=True)
    shutil.copy(run / "config.yaml", to / "config.yaml")
    shutil.copy(run / "checkpoints" / "best.ckpt", to / "checkpoints" / "best.ckpt")
    values = thresholds if thresholds is not None else np.full(28, 0.5)
    (to / "thresholds.json").write_text(json.dumps({"method": "test", "thresholds": [float(t) for t in values]}))
    return to


# ------------------------------------------------------------------------ the submission


def test_a_probability_equal_to_its_threshold_is_a_label(
    reference_run: Path, deterministic_setup: tuple[Path, Path], tmp_path: Path
) -> None:
    data = load_dataset(deterministic_setup[0])
    first = predict_run(open_run(copy_model(reference_run, tmp_path / "a")), data, tmp_path / "a.csv",
                        tta=1)
    _, probs, _ = read_probs_table(first.probabilities)
    # each class's threshold is exactly its third-highest probability: the top three are labels
    thresholds = np.sort(probs, axis=0)[-3].astype(np.float64)
    run = open_run(copy_model(reference_run, tmp_path / "b", thresholds))
    second = predict_run(run, data, tmp_path / "b.csv", tta=1)
    _, again, _ = read_probs_table(second.probabilities)
    np.testing.assert_array_equal(again, probs)  # the same probabilities, bit for bit
    assert ((probs == thresholds).sum(axis=0) >= 1).all()
    n_fallback = assert_rows_are_thresholded(second.submission, second.probabilities, thresholds, data.ids)
    labels = multihot(pd.read_csv(second.submission, dtype=str)["Predicted"])
    assert (labels.sum(axis=0) >= 3).all()
    assert n_fallback == second.n_fallback > 0 and (labels.sum(axis=1) > 1).any()  # both kinds of row


#: Random 8 px samples that stand in for the images of any Ids.
POOL = np.random.default_rng(11).integers(0, 256, (97, 4, 8, 8), dtype=np.uint8)


def pool_index(sample_id: str) -> int:
    return zlib.crc32(sample_id.encode()) % len(POOL)


class PoolImages(Dataset):
    """A dataset without files: Id ``i`` reads ``POOL[pool_index(i)]``."""

    def read(self, index: int, size: int | None = None) -> np.ndarray:
        return POOL[pool_index(self.ids[index])]


class ThePool(Dataset):
    """The pool itself, in order."""

    def read(self, index: int, size: int | None = None) -> np.ndarray:
        return POOL[index]


@pytest.mark.realdata
@pytest.mark.skipif(not KAGGLE2018_SAMPLE_SUBMISSION.is_file(), reason=f"{KAGGLE2018_SAMPLE_SUBMISSION} not found")
def test_submission_follows_the_real_sample_submission_order(reference_run: Path, tmp_path: Path) -> None:
    order = pd.read_csv(KAGGLE2018_SAMPLE_SUBMISSION, dtype=str)["Id"].tolist()
    assert len(order) == KAGGLE2018_N_TEST and len(set(order)) == len(order)
    model_run = open_run(reference_run)
    pool = ThePool(tmp_path, tmp_path, [f"pool{k}" for k in range(len(POOL))], None)
    pool_probs = predict_probs(load_model(model_run), pool, model_run.cfg, tta=1)
    # thresholds that leave some pool images without a label and give others several
    thresholds = np.quantile(pool_probs, 0.96, axis=0)
    run = open_run(copy_model(reference_run, tmp_path / "run", thresholds))

    # all 11,702 Ids, as the package reads them from the CSV, in one process (8 px images: seconds)
    ids, _ = read_table(KAGGLE2018_SAMPLE_SUBMISSION)
    data = PoolImages(KAGGLE2018_SAMPLE_SUBMISSION, tmp_path, ids, None, files=[{}] * len(ids))
    s = predict_run(run, data, tmp_path / "submission.csv", tta=1, batch_size=2048)
    n_fallback = assert_rows_are_thresholded(s.submission, s.probabilities, thresholds, order)
    _, probs, _ = read_probs_table(s.probabilities)
    np.testing.assert_allclose(probs, pool_probs[[pool_index(i) for i in order]], atol=1e-5)
    labels = multihot(pd.read_csv(s.submission, dtype=str)["Predicted"])
    assert 0 < n_fallback < len(order) and (labels.sum(axis=1) > 1).any()

    # the real file lists its Ids sorted, so also a CSV of 300 of them shuffled, read as
    # 'hpa predict' reads it, with image files (links to the pool's) made in another order
    part = [str(i) for i in np.random.default_rng(5).permutation(order)[:300]]
    assert part != sorted(part)
    csv = write_table(tmp_path / "part.csv", part)
    for k in range(len(POOL)):
        for c, channel in enumerate(CHANNELS):
            write_image(tmp_path / "pool" / f"{k}_{channel}.png", POOL[k, c])
    folder = tmp_path / "part"
    folder.mkdir()
    for sample_id in reversed(part):
        for channel in CHANNELS:
            source = tmp_path / "pool" / f"{pool_index(sample_id)}_{channel}.png"
            os.link(source, folder / f"{sample_id}_{channel}.png")
    part_data = checked(load_dataset(csv, images=folder))
    s = predict_run(run, part_data, tmp_path / "part_submission.csv", tta=1)
    assert_rows_are_thresholded(s.submission, s.probabilities, thresholds, part)
    _, probs, _ = read_probs_table(s.probabilities)  # each Id has its own image's probabilities:
    image = np.array([pool_index(i) for i in part])  # the Ids that share an image share them
    assert max(np.ptp(probs[image == k], axis=0).max() for k in set(image)) <= 1e-6
    assert len(set(image)) < len(part)


# ------------------------------------------------------------------------------------- TTA

#: The views ``--tta N`` takes the first N of, written with NumPy on the last two axes.
NUMPY_VIEWS = [
    ("identity", lambda a: a),
    ("hflip", lambda a: a[..., ::-1]),
    ("vflip", lambda a: a[..., ::-1, :]),
    ("rot180", lambda a: np.rot90(a, 2, axes=(-2, -1))),
    ("transpose", lambda a: np.swapaxes(a, -1, -2)),
    ("rot90", lambda a: np.rot90(a, -1, axes=(-2, -1))),  # clockwise
    ("rot270", lambda a: np.rot90(a, 1, axes=(-2, -1))),
    ("antitranspose", lambda a: np.rot90(np.swapaxes(a, -1, -2), 2, axes=(-2, -1))),
]


def test_tta_views_are_the_eight_symmetries_of_the_square() -> None:
    square = np.arange(25).reshape(5, 5)  # no symmetry maps it onto itself
    symmetries = [np.rot90(m, k) for m in (square, square.T) for k in range(4)]
    assert len({m.tobytes() for m in symmetries}) == 8
    assert [name for name, _ in TTA_VIEWS] == [name for name, _ in NUMPY_VIEWS]
    outputs = [view(torch.from_numpy(square)).numpy() for _, view in TTA_VIEWS]
    assert len({o.tobytes() for o in outputs}) == 8
    assert {o.tobytes() for o in outputs} == {m.tobytes() for m in symmetries}
    batch = np.random.default_rng(0).random((2, 4, 6, 6)).astype(np.float32)
    for (name, view), (_, expected) in zip(TTA_VIEWS, NUMPY_VIEWS):
        np.testing.assert_array_equal(view(torch.from_numpy(square)).numpy(), expected(square), err_msg=name)
        np.testing.assert_array_equal(view(torch.from_numpy(batch)).numpy(), expected(batch), err_msg=name)


def test_predict_probs_is_the_mean_over_the_first_n_views(
    reference_run: Path, deterministic_setup: tuple[Path, Path]
) -> None:
    root = deterministic_setup[0]
    data = load_dataset(root).subset(range(6))
    run = open_run(reference_run)
    model = load_model(run)
    # the images as the model sees them: the PNGs, normalised with the run's mean and std
    raw = np.stack([np.stack([cv2.imread(str(root / "train" / f"{sample_id}_{c}.png"), cv2.IMREAD_UNCHANGED)
                              for c in CHANNELS]) for sample_id in data.ids]).astype(np.float32)
    mean = np.asarray(run.cfg.data.mean, np.float32)[:, None, None] * 255
    std = np.asarray(run.cfg.data.std, np.float32)[:, None, None] * 255
    x = (raw - mean) / std
    with torch.inference_mode():
        per_view = [torch.sigmoid(model(torch.from_numpy(np.ascontiguousarray(view(x))))).numpy()
                    for _, view in NUMPY_VIEWS]
    assert len({p.round(6).tobytes() for p in per_view}) == 8  # the model tells the views apart
    for n in range(1, 9):
        got = predict_probs(model, data, run.cfg, tta=n)
        np.testing.assert_allclose(got, np.mean(per_view[:n], axis=0), rtol=0, atol=2e-6, err_msg=f"tta={n}")


# ------------------------------------------------------------------------------------- GPU


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_bf16_channels_last_prediction_on_the_gpu_equals_fp32(trained_run: Path, synth_root: Path) -> None:
    run = open_run(trained_run)
    assert run.cfg.train.channels_last  # predict_probs on CUDA: bf16 autocast, channels_last
    data = load_dataset(synth_root, prefer="test")
    fp32 = predict_probs(load_model(run), data, run.cfg, tta=8, device=torch.device("cpu"))
    bf16 = predict_probs(load_model(run), data, run.cfg, tta=8, device=torch.device("cuda"))
    assert bf16.dtype == np.float32 and bf16.shape == fp32.shape
    np.testing.assert_allclose(bf16, fp32, rtol=0, atol=0.03)
    assert np.abs(bf16 - fp32).mean() < 0.005
