"""train.logger: TensorBoard and MLflow stores in the run folder, one point per epoch, linked from the report."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from hpa_classify.config import load_config
from hpa_classify.data.layout import checked, load_dataset
from hpa_classify.train.single import train_run

CURVES = {"train/loss": "train_loss", "train/f1": "train_f1", "val/loss": "val_loss", "val/f1": "val_f1", "lr": "lr"}


def _train(setup: tuple[Path, Path], run_dir: Path, logger: str) -> Path:
    root, config = setup
    cfg = load_config(config, [f"train.logger={logger}", "train.epochs=2"])
    train_run(cfg, checked(load_dataset(root)), run_dir)
    return run_dir


def _tensorboard_curves(folder: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (event_file,) = folder.glob("events.out.tfevents.*")
    acc = EventAccumulator(str(event_file))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def _mlflow_curves(store: Path) -> dict[str, list[tuple[int, float]]]:
    """Read the metric files of the one MLflow run in ``store`` (lines: timestamp value step)."""
    (run_dir,) = [p.parent for p in store.glob("*/*/meta.yaml")]
    curves = {}
    for path in (run_dir / "metrics").rglob("*"):
        if path.is_file():
            rows = [line.split() for line in path.read_text().splitlines()]
            curves[path.relative_to(run_dir / "metrics").as_posix()] = [(int(r[2]), float(r[1])) for r in rows]
    return curves


@pytest.mark.parametrize("logger", ["tensorboard", "mlflow"])
def test_logger_writes_every_epoch_and_the_report_links_it(
    logger: str, deterministic_setup: tuple[Path, Path], tmp_path: Path
) -> None:
    run = _train(deterministic_setup, tmp_path / "run", logger)
    metrics = pd.read_csv(run / "metrics.csv")
    if logger == "tensorboard":
        curves = _tensorboard_curves(run / "tensorboard")
    else:
        curves = _mlflow_curves(run / "mlruns")
        assert (run / "mlruns").is_dir()
    for tag, column in CURVES.items():
        assert [s for s, _ in curves[tag]] == [1, 2], tag  # the epoch is the step
        assert [v for _, v in curves[tag]] == pytest.approx(metrics[column].tolist(), rel=1e-5), tag
    report = (run / "report" / "report.md").read_text()
    folder = "tensorboard" if logger == "tensorboard" else "mlruns"
    assert "## Training logs" in report and f"(../{folder}/)" in report
    assert ("tensorboard --logdir" if logger == "tensorboard" else "mlflow ui --backend-store-uri file:") in report
    assert "Training logs" in (run / "report" / "report.html").read_text()


def test_csv_logger_is_the_default_and_adds_nothing(reference_run: Path) -> None:
    assert (reference_run / "metrics.csv").is_file()
    assert not (reference_run / "tensorboard").exists() and not (reference_run / "mlruns").exists()
    assert "Training logs" not in (reference_run / "report" / "report.md").read_text()
