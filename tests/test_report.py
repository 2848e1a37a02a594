"""Figures and the evaluation report."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hpa_classify.classes import NUM_CLASSES
from hpa_classify.evaluate.metrics import binarize, class_table, macro_f1
from hpa_classify.evaluate.figures import plot_class_f1, plot_label_counts, plot_pr_curves, plot_training_curves
from hpa_classify.evaluate.report import write_report
from hpa_classify.evaluate.thresholds import search_thresholds

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def evaluation() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    n = 300
    y = (rng.random((n, NUM_CLASSES)) < 0.12).astype(int)
    y[:, 27] = 0  # a class with no positives
    probs = np.clip(0.3 * y + 0.7 * rng.random(y.shape), 0, 1)
    return y, probs, search_thresholds(y, probs)


def write_metrics_csv(path: Path) -> Path:
    # train and validation rows logged separately, as a Lightning CSV logger does
    pd.DataFrame(
        {
            "epoch": [0, 0, 1, 1, 2, 2],
            "train_loss": [0.6, np.nan, 0.4, np.nan, 0.3, np.nan],
            "val_loss": [np.nan, 0.55, np.nan, 0.45, np.nan, 0.47],
            "train_f1": [0.1, np.nan, 0.3, np.nan, 0.4, np.nan],
            "val_f1": [np.nan, 0.12, np.nan, 0.28, np.nan, 0.27],
        }
    ).to_csv(path, index=False)
    return path


def test_write_report_creates_html_md_and_figures(tmp_path: Path, evaluation) -> None:
    y, probs, thr = evaluation
    table = class_table(y, probs, thr)
    summary = {
        "macro_f1": macro_f1(y, binarize(probs, thr)[0]),
        "macro_f1_at_0.5": macro_f1(y, binarize(probs, 0.5)[0]),
        "baseline_macro_f1": 0.03,
        "n_images": len(y),
        "threshold_method": "search",
    }
    metrics_csv = write_metrics_csv(tmp_path / "metrics.csv")
    out = tmp_path / "report"
    html_path = write_report(out, table, summary, y_true=y, probs=probs, thresholds=thr,
                             metrics_csv=metrics_csv, title="Fold 0 <validation>")

    assert html_path == out / "report.html"
    html = html_path.read_text()
    md = (out / "report.md").read_text()
    figures = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert figures == ["class_f1.png", "label_counts.png", "pr_curves.png",
                       "training_curves.png"]
    for name in figures:
        assert (out / "figures" / name).read_bytes()[:8] == PNG_MAGIC
        assert f"figures/{name}" in md
    assert html.count("data:image/png;base64,") == 4
    assert "figures/" not in html  # self-contained
    assert "Fold 0 &lt;validation&gt;" in html
    for text in (html, md):
        assert "threshold_method" in text and "search" in text
        assert f"{summary['macro_f1']:.4f}" in text
        assert "Rods &amp; rings" in text or "Rods & rings" in text
        assert "Microtubule organizing center" in text
    assert not list(out.rglob(".*.tmp"))


def test_write_report_minimal(tmp_path: Path, evaluation) -> None:
    y, probs, thr = evaluation
    table = class_table(y, probs, thr)
    html_path = write_report(tmp_path, table, {"macro_f1": 0.5},
                             metrics_csv=tmp_path / "absent.csv")
    assert html_path.read_text().count("data:image/png;base64,") == 1
    assert [p.name for p in (tmp_path / "figures").glob("*.png")] == ["class_f1.png"]


def test_write_report_uses_table_thresholds_and_validates(tmp_path: Path, evaluation) -> None:
    y, probs, thr = evaluation
    y, probs, thr = y[:, :3], probs[:, :3], thr[:3]  # three classes keep this quick
    table = class_table(y, probs, thr, class_names=["a", "b", "c"])
    write_report(tmp_path, table, {}, y_true=y, probs=probs)
    assert (tmp_path / "figures" / "pr_curves.png").exists()
    with pytest.raises(ValueError, match="together"):
        write_report(tmp_path, table, {}, y_true=y)
    with pytest.raises(ValueError, match="lacks columns"):
        write_report(tmp_path, table.drop(columns="f1"), {})


def test_training_curves_none_for_missing_or_empty(tmp_path: Path) -> None:
    assert plot_training_curves(tmp_path / "nope.csv", tmp_path / "a.png") is None
    (tmp_path / "empty.csv").write_text("")
    assert plot_training_curves(tmp_path / "empty.csv", tmp_path / "b.png") is None
    (tmp_path / "header.csv").write_text("epoch,train_loss,val_loss\n")
    assert plot_training_curves(tmp_path / "header.csv", tmp_path / "c.png") is None
    assert not list(tmp_path.glob("*.png"))


def test_training_curves_with_partial_columns(tmp_path: Path) -> None:
    csv = tmp_path / "metrics.csv"
    pd.DataFrame({"train_loss": [0.9, 0.5, 0.4]}).to_csv(csv, index=False)
    out = plot_training_curves(csv, tmp_path / "curves.png")
    assert out is not None and out.read_bytes()[:8] == PNG_MAGIC


def test_plots_are_thread_safe(tmp_path: Path, evaluation) -> None:
    y, probs, thr = evaluation
    table = class_table(y, probs, thr)
    preds, _ = binarize(probs, thr)
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            plot_class_f1(table, tmp_path / f"f1_{i}.png")
            plot_label_counts(y, preds, tmp_path / f"counts_{i}.png")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(list(tmp_path.glob("*.png"))) == 6


def test_pr_curves_small_class_count(tmp_path: Path) -> None:
    y = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 0]])
    probs = np.array([[0.9, 0.2, 0.1], [0.3, 0.8, 0.2], [0.6, 0.1, 0.3], [0.2, 0.4, 0.5]])
    out = plot_pr_curves(y, probs, 0.5, tmp_path / "pr.png", class_names=["a", "b", "c"])
    assert out.read_bytes()[:8] == PNG_MAGIC
    with pytest.raises(ValueError, match="shape"):
        plot_pr_curves(y, probs[:, :2], 0.5, tmp_path / "bad.png")

