"""Comparing runs: config differences, scores and deltas, curves, and ``hpa compare``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import KFOLD_SET, hpa
from hpa_classify.classes import NUM_CLASSES
from hpa_classify.workflows.compare import SCORE_COLUMNS, class_table, compare_runs, delta_column, f1_column, plot_curves, summary_table
from hpa_classify.errors import RunError


@pytest.fixture(scope="module")
def focal_run(synth_root: Path, external_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A plain run with focal loss and the external images, trained by ``hpa train``."""
    run = tmp_path_factory.mktemp("cmp") / "focal"
    args = [a for s in KFOLD_SET for a in ("--set", s)]
    result = hpa("train", synth_root, *args, "--set", "train.loss=focal", "--out", run,
                 "--external", external_root / "external.csv")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "external: 4 images added" in result.stdout and "2 rows" in result.stdout
    info = json.loads((run / "external.json").read_text())
    assert (info["n_duplicates"], info["n_used"]) == (2, 4)
    return run


def test_compare_two_runs_side_by_side(kfold_run: Path, focal_run: Path) -> None:
    frame = compare_runs([kfold_run, focal_run])
    assert frame.index.tolist() == ["kf3", "focal"]
    assert frame.loc["kf3", "train.loss"] == "bce" and frame.loc["focal", "train.loss"] == "focal"
    assert "model.name" not in frame.columns and "name" not in frame.columns  # equal keys are left out
    assert set(SCORE_COLUMNS) <= set(frame.columns)
    assert frame.loc["kf3", "folds"] == 3 and frame.loc["focal", "folds"] == 1
    assert frame.loc["kf3", "evaluated_on"] == "out-of-fold" and frame.loc["focal", "evaluated_on"] == "validation"
    summary = json.loads((focal_run / "report" / "summary.json").read_text())
    assert frame.loc["focal", "macro_f1"] == pytest.approx(summary["macro_f1"], abs=1e-4)
    assert frame.loc["kf3", "delta_macro_f1"] == 0.0
    assert frame.loc["focal", "delta_macro_f1"] == pytest.approx(
        frame.loc["focal", "macro_f1"] - frame.loc["kf3", "macro_f1"])
    for c in range(NUM_CLASSES):
        assert frame.loc["focal", delta_column(c)] == pytest.approx(
            frame.loc["focal", f1_column(c)] - frame.loc["kf3", f1_column(c)])
    metrics = pd.read_csv(focal_run / "metrics.csv")
    assert frame.loc["focal", "epochs"] == 2
    assert frame.loc["focal", "wall_s"] == pytest.approx(metrics["seconds"].sum())
    assert frame.loc["focal", "images_per_s"] == pytest.approx(metrics["images_per_s"].mean())
    folds_seconds = sum(pd.read_csv(kfold_run / f"fold{i}" / "metrics.csv")["seconds"].sum() for i in range(3))
    assert frame.loc["kf3", "wall_s"] == pytest.approx(folds_seconds)
    assert "path" not in summary_table(frame).columns
    per_class = class_table(frame)
    assert per_class.shape == (NUM_CLASSES, 2) and per_class.columns.tolist() == ["f1 kf3", "delta focal"]


def test_plot_curves_draws_every_run(kfold_run: Path, focal_run: Path, tmp_path: Path) -> None:
    png = plot_curves([kfold_run, focal_run], tmp_path / "curves.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_on_the_command_line_writes_markdown_csv_and_png(
    kfold_run: Path, focal_run: Path, tmp_path: Path
) -> None:
    out = tmp_path / "cmp"
    result = hpa("compare", kfold_run, focal_run, "-o", out)
    assert result.returncode == 0, result.stderr
    for needle in ("train.loss", "kf3", "focal", "macro_f1", "Nucleoplasm"):
        assert needle in result.stdout
    md = (out / "compare.md").read_text()
    assert "| run | train.loss | folds |" in md and "| kf3 | bce | 3 |" in md and "curves.png" in md
    table = pd.read_csv(out / "compare.csv")
    assert table["run"].tolist() == ["kf3", "focal"] and "delta_f1:Nucleoplasm" in table.columns
    assert np.isfinite(table["macro_f1"]).all()
    assert (out / "curves.png").stat().st_size > 1000


def test_compare_refuses_what_is_not_a_run(tmp_path: Path, focal_run: Path) -> None:
    with pytest.raises(RunError, match="no such run directory"):
        compare_runs([focal_run, tmp_path / "missing"])
    with pytest.raises(RunError, match="not a run directory"):
        compare_runs([focal_run, tmp_path])
