"""The report of a run: example images with their predictions, and ``hpa report`` regenerating it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import hpa
from helpers import make_dataset
from hpa_classify.classes import CHANNELS, NUM_CLASSES
from hpa_classify.errors import RunError
from hpa_classify.evaluate.metrics import class_table
from hpa_classify.evaluate.figures import pick_examples, plot_prediction_examples
from hpa_classify.evaluate.report import write_report
from hpa_classify.evaluate.evaluation import report_run
from hpa_classify.inference.runs import open_run

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_pick_examples_ranks_by_confidence_one_per_image() -> None:
    y = np.array([[1, 1, 0], [1, 0, 0], [0, 0, 1], [0, 1, 1]])
    p = np.array([[0.9, 0.95, 0.7], [0.8, 0.1, 0.2], [0.6, 0.3, 0.05], [0.2, 0.4, 0.99]])
    preds = (p >= 0.5).astype(int)
    ex = pick_examples(y, preds, p, k=5)
    assert ex["right"] == [(3, 2, 0.99), (0, 1, 0.95), (1, 0, 0.8)]  # image 0 once, its best label
    assert ex["false_positive"] == [(0, 2, 0.7), (2, 0, 0.6)]
    assert ex["missed"] == [(2, 2, 0.05), (3, 1, 0.4)]
    usable = np.array([False, True, True, True])
    assert all(r != 0 for kind in pick_examples(y, preds, p, 5, usable).values() for r, _, _ in kind)


def test_write_report_adds_example_images(tmp_path: Path) -> None:
    n = 6
    labels = [[i % 3] for i in range(n)]
    ids = make_dataset(tmp_path / "data" / "train.csv", tmp_path / "data", n=n, size=20, labels=labels)
    files = {i: {c: tmp_path / "data" / f"{i}_{c}.png" for c in CHANNELS} for i in ids}
    rng = np.random.default_rng(0)
    y = np.zeros((n, NUM_CLASSES), int)
    for row, lab in enumerate(labels):
        y[row, lab] = 1
    probs = np.clip(0.5 * y + 0.6 * rng.random(y.shape), 0, 1)
    thr = np.full(NUM_CLASSES, 0.5)
    table = class_table(y, probs, thr)

    html = write_report(tmp_path / "with", table, {"n_images": n}, y_true=y, probs=probs,
                        thresholds=thr, ids=ids, image_files=files)
    assert (tmp_path / "with" / "figures" / "examples.png").read_bytes().startswith(PNG_MAGIC)
    assert "Most confident predictions" in html.read_text()

    write_report(tmp_path / "without", table, {"n_images": n}, y_true=y, probs=probs,
                 thresholds=thr, ids=ids, image_files={})
    assert not (tmp_path / "without" / "figures" / "examples.png").exists()
    assert plot_prediction_examples(ids, y, (probs > 0.5).astype(int), probs, {},
                                    tmp_path / "none.png") is None


def test_example_maps_are_asked_for_the_tiles_shown(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    n = 6
    labels = [[i % 3] for i in range(n)]
    ids = make_dataset(tmp_path / "data" / "train.csv", tmp_path / "data", n=n, size=20, labels=labels)
    files = {i: {c: tmp_path / "data" / f"{i}_{c}.png" for c in CHANNELS} for i in ids}
    y = np.zeros((n, NUM_CLASSES), int)
    for row, lab in enumerate(labels):
        y[row, lab] = 1
    probs = np.clip(0.5 * y + 0.6 * np.random.default_rng(1).random(y.shape), 0, 1)
    preds = (probs >= 0.5).astype(int)
    asked: list[tuple[str, int]] = []

    def cam(channel_files: list, classes: list[int]) -> list[np.ndarray]:
        asked.extend((Path(f["red"]).name.rsplit("_", 1)[0], c) for f, c in zip(channel_files, classes))
        return [np.eye(8, dtype=np.float32) for _ in classes]

    out = plot_prediction_examples(ids, y, preds, probs, files, tmp_path / "maps.png", cam=cam)
    assert out is not None and out.read_bytes().startswith(PNG_MAGIC)
    shown = {(ids[row], cls) for picked in pick_examples(y, preds, probs, 6).values() for row, cls, _ in picked}
    assert sorted(asked) == sorted(shown)  # one map per tile, each for the tile's own class

    def broken(channel_files: list, classes: list[int]) -> list[np.ndarray]:
        raise RunError("run/checkpoints/best.ckpt: not found")

    with caplog.at_level("WARNING"):
        assert plot_prediction_examples(ids, y, preds, probs, files, tmp_path / "plain.png", cam=broken) is not None
    assert "without activation maps" in caplog.text and "best.ckpt" in caplog.text


def test_train_report_shows_examples(trained_run: Path) -> None:
    figures = trained_run / "report" / "figures"
    for name in ("training_curves", "class_f1", "label_counts", "pr_curves", "examples", "example_maps"):
        assert (figures / f"{name}.png").read_bytes().startswith(PNG_MAGIC), name


def test_hpa_report_regenerates_without_retuning(trained_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    shutil.rmtree(run / "report")
    thresholds = (run / "thresholds.json").read_bytes()
    result = hpa("report", run)
    assert result.returncode == 0, result.stderr
    assert (run / "thresholds.json").read_bytes() == thresholds
    html = (run / "report" / "report.html").read_text()
    assert html.count('src="data:image/png;base64,') == 6  # the five figures and the examples' maps
    summary = json.loads((run / "report" / "summary.json").read_text())
    before = json.loads((trained_run / "report" / "summary.json").read_text())
    assert summary["macro_f1"] == before["macro_f1"]
    # per-class table and curves come from the run's own files
    assert len(pd.read_csv(run / "metrics.csv")) == 2


def test_report_needs_thresholds(trained_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained_run, run, ignore=shutil.ignore_patterns("*.ckpt", "report"))
    (run / "thresholds.json").unlink()
    with pytest.raises(RunError, match="thresholds.json.*hpa evaluate"):
        report_run(open_run(run))


def test_report_without_the_images_still_writes_the_report(trained_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained_run, run, ignore=shutil.ignore_patterns("*.ckpt", "report"))
    env = json.loads((run / "env.json").read_text())
    env["data"]["image_dir"] = str(tmp_path / "moved")
    env["data"]["csv"] = str(tmp_path / "moved.csv")
    (run / "env.json").write_text(json.dumps(env))
    report_run(open_run(run))
    assert (run / "report" / "figures" / "pr_curves.png").is_file()
    assert not (run / "report" / "figures" / "examples.png").exists()
