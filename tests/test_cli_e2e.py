"""End to end through the ``hpa`` command line on tiny synthetic data (and the real samples)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import KAGGLE_LAYOUT, TINY_TRAIN, hpa, needs_real_samples
from helpers import (
    assert_rows_are_thresholded,
    assert_summary_is,
    label_frequency,
    multihot,
    read_probs_table,
    read_thresholds_file,
    ref_macro_f1,
    ref_search,
    ref_summary,
)
from hpa_classify.classes import NUM_CLASSES, parse_target


def test_train_writes_a_complete_run(trained_run: Path) -> None:
    for name in ("config.yaml", "env.json", "split.csv", "metrics.csv", "val_probs.csv",
                 "thresholds.json", "train_prior.json", "checkpoints/best.ckpt",
                 "report/report.html", "report/report.md", "report/summary.json"):
        assert (trained_run / name).is_file(), name
    metrics = pd.read_csv(trained_run / "metrics.csv")
    assert metrics["epoch"].tolist() == [1, 2]
    assert metrics[["train_loss", "val_loss", "val_f1"]].notna().all().all()
    thresholds = json.loads((trained_run / "thresholds.json").read_text())
    assert len(thresholds["thresholds"]) == NUM_CLASSES
    env = json.loads((trained_run / "env.json").read_text())
    assert {"torch", "timm", "lightning", "python", "data", "config"} <= env.keys()
    assert env["data"]["n_samples"] == 64
    summary = json.loads((trained_run / "report" / "summary.json").read_text())
    assert 0.0 <= summary["macro_f1"] <= 1.0


def test_run_directory_is_not_overwritten_without_force(trained_run: Path, synth_root: Path) -> None:
    before = (trained_run / "metrics.csv").read_bytes()
    result = hpa("train", synth_root, *TINY_TRAIN, "--out", trained_run)
    assert result.returncode == 2
    assert "--force" in result.stderr
    assert (trained_run / "metrics.csv").read_bytes() == before


def train_prior_of(run: Path, data_root: Path) -> np.ndarray:
    """Class frequencies of a run's training split, from split.csv and the training CSV."""
    split = pd.read_csv(run / "split.csv", dtype={"Id": str})
    targets = pd.read_csv(data_root / "train.csv", dtype=str, keep_default_na=False).set_index("Id")["Target"]
    return label_frequency(multihot(targets[split["Id"][split["split"] == "train"]]))


# the EfficientNet run gives every image a label at 0.5, the test network leaves many without
@pytest.mark.parametrize("run_fixture, data_fixture", [("trained_run", "synth_root"),
                                                       ("reference_run", "deterministic_setup")])
def test_validation_report_scores_equal_sklearn_on_the_saved_files(
    run_fixture: str, data_fixture: str, request: pytest.FixtureRequest
) -> None:
    run = request.getfixturevalue(run_fixture)
    root = request.getfixturevalue(data_fixture)
    root = root[0] if isinstance(root, tuple) else root
    ids, probs, y = read_probs_table(run / "val_probs.csv")
    split = pd.read_csv(run / "split.csv", dtype={"Id": str})
    assert ids == split["Id"][split["split"] == "val"].tolist()
    thresholds = read_thresholds_file(run / "thresholds.json")
    np.testing.assert_array_equal(thresholds, ref_search(y, probs))  # tuned on the validation split
    summary = json.loads((run / "report" / "summary.json").read_text())
    prior = train_prior_of(run, root)
    assert_summary_is(summary, ref_summary(y, probs, thresholds, y, probs, prior))


# fold 0 of the K-fold run scores best in its first epoch, the other runs in their last
@pytest.mark.parametrize("run_fixture, part, data_fixture", [("trained_run", "", "synth_root"),
                                                             ("reference_run", "", "deterministic_setup"),
                                                             ("kfold_run", "fold0", "synth_root")])
def test_best_checkpoint_holds_the_epoch_with_the_best_val_f1(
    run_fixture: str, part: str, data_fixture: str, request: pytest.FixtureRequest
) -> None:
    from hpa_classify.data.layout import load_dataset
    from hpa_classify.inference.predict import predict_probs
    from hpa_classify.inference.runs import load_model, open_run

    run_dir = request.getfixturevalue(run_fixture) / part
    root = request.getfixturevalue(data_fixture)
    root = root[0] if isinstance(root, tuple) else root
    metrics = pd.read_csv(run_dir / "metrics.csv")
    best = metrics.loc[metrics["val_f1"].idxmax()]  # the first epoch of the highest score
    if part:
        assert best["epoch"] < metrics["epoch"].max(), "this case needs a run whose last epoch is not its best"
    checkpoint = torch.load(run_dir / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)
    assert checkpoint["epoch"] + 1 == best["epoch"]  # Lightning counts epochs from 0
    # and its weights score that val_f1 on the validation split (validation uses no TTA)
    split = pd.read_csv(run_dir / "split.csv", dtype={"Id": str})
    val_ids = split["Id"][split["split"] == "val"].tolist()
    data = load_dataset(root)
    val = data.subset([data.ids.index(i) for i in val_ids])
    run = open_run(run_dir)
    probs = predict_probs(load_model(run), val, run.cfg, tta=1)
    targets = pd.read_csv(root / "train.csv", dtype=str, keep_default_na=False).set_index("Id")["Target"]
    assert best["val_f1"] == pytest.approx(ref_macro_f1(multihot(targets[val_ids]), probs, 0.5), abs=1e-12)


def test_evaluate_on_held_out_labelled_data(trained_run: Path, synth_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval"
    result = hpa("evaluate", trained_run, synth_root / "test_labels.csv",
                 "--images", synth_root / "test", "--out", out, "--tta", "1")
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_images"] == 16
    assert (out / "report.html").is_file()
    # every score, from the probabilities and labels it saved and the run's thresholds
    ids, probs, y = read_probs_table(out / "probs.csv")
    assert ids == pd.read_csv(synth_root / "test_labels.csv", dtype=str)["Id"].tolist()
    np.testing.assert_array_equal(y, multihot(pd.read_csv(synth_root / "test_labels.csv", dtype=str,
                                                          keep_default_na=False)["Target"]))
    _, val_probs, y_val = read_probs_table(trained_run / "val_probs.csv")
    thresholds = read_thresholds_file(trained_run / "thresholds.json")
    prior = train_prior_of(trained_run, synth_root)
    assert_summary_is(summary, ref_summary(y, probs, thresholds, y_val, val_probs, prior))


def test_predict_writes_a_kaggle_submission(trained_run: Path, synth_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "sub" / "submission.csv"
    result = hpa("predict", trained_run, synth_root, "-o", out, "--tta", "8")
    assert result.returncode == 0, result.stderr
    sub = pd.read_csv(out, dtype=str, keep_default_na=False)
    for sample_id, predicted in zip(sub["Id"], sub["Predicted"]):
        assert parse_target(predicted, row=sample_id)  # at least one valid label each
    probs = pd.read_csv(out.with_name("submission_probs.csv"))
    assert probs.shape == (16, 1 + NUM_CLASSES)
    assert ((probs.iloc[:, 1:] >= 0) & (probs.iloc[:, 1:] <= 1)).all().all()
    expected_ids = pd.read_csv(synth_root / "sample_submission.csv", dtype=str)["Id"].tolist()
    thresholds = read_thresholds_file(trained_run / "thresholds.json")
    n_fallback = assert_rows_are_thresholded(out, out.with_name("submission_probs.csv"), thresholds,
                                             expected_ids)
    assert f"{n_fallback} images took the top-1 fallback" in result.stdout


def test_validate_reports_a_clean_dataset(synth_root: Path) -> None:
    result = hpa("validate", synth_root, "--deep")
    assert result.returncode == 0, result.stderr
    assert "64 samples" in result.stdout and "all samples valid" in result.stdout


@needs_real_samples
@pytest.mark.realdata
def test_real_samples_validate_and_predict(trained_run: Path, tmp_path: Path) -> None:
    result = hpa("validate", KAGGLE_LAYOUT / "train.csv", "--deep")
    assert result.returncode == 0, result.stderr
    assert "8 samples" in result.stdout and "512x512: 8" in result.stdout
    out = tmp_path / "real_submission.csv"
    result = hpa("predict", trained_run, KAGGLE_LAYOUT / "train.csv", "-o", out, "--tta", "2")
    assert result.returncode == 0, result.stderr
    sub = pd.read_csv(out, dtype=str, keep_default_na=False)
    ids = pd.read_csv(KAGGLE_LAYOUT / "train.csv", dtype=str)["Id"].tolist()
    assert sub["Id"].tolist() == ids and len(sub) == 8
    assert all(parse_target(p) for p in sub["Predicted"])


# --------------------------------------------------------------------------- bad input


def _copy(synth_root: Path, tmp_path: Path) -> Path:
    root = tmp_path / "data"
    shutil.copytree(synth_root, root)
    return root


def _first_id(root: Path) -> str:
    return (root / "train.csv").read_text().splitlines()[1].split(",")[0]


def _assert_clean_failure(result, run_dir: Path, *needles: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr
    assert not run_dir.exists(), "nothing may be written on bad input"


def test_missing_channel_is_named(synth_root: Path, tmp_path: Path) -> None:
    root = _copy(synth_root, tmp_path)
    bad = _first_id(root)
    (root / "train" / f"{bad}_yellow.png").unlink()
    run = tmp_path / "run"
    _assert_clean_failure(hpa("train", root, *TINY_TRAIN, "--out", run), run, bad, "missing yellow")


def test_corrupt_png_is_named(synth_root: Path, tmp_path: Path) -> None:
    root = _copy(synth_root, tmp_path)
    bad = _first_id(root)
    png = root / "train" / f"{bad}_green.png"
    png.write_bytes(png.read_bytes()[:-40])
    run = tmp_path / "run"
    _assert_clean_failure(hpa("train", root, *TINY_TRAIN, "--out", run), run, bad, "truncated")


def test_bad_target_is_named(synth_root: Path, tmp_path: Path) -> None:
    root = _copy(synth_root, tmp_path)
    lines = (root / "train.csv").read_text().splitlines()
    bad = lines[3].split(",")[0]
    lines[3] = f"{bad},0 31"
    (root / "train.csv").write_text("\n".join(lines) + "\n")
    run = tmp_path / "run"
    _assert_clean_failure(hpa("train", root, *TINY_TRAIN, "--out", run), run, bad, "out of range")


def test_duplicate_id_is_named(synth_root: Path, tmp_path: Path) -> None:
    root = _copy(synth_root, tmp_path)
    lines = (root / "train.csv").read_text().splitlines()
    dup = lines[2]
    (root / "train.csv").write_text("\n".join(lines + [dup]) + "\n")
    run = tmp_path / "run"
    _assert_clean_failure(hpa("train", root, *TINY_TRAIN, "--out", run), run, dup.split(",")[0], "duplicate")


def test_predict_with_invalid_data_writes_nothing(trained_run: Path, synth_root: Path, tmp_path: Path) -> None:
    root = _copy(synth_root, tmp_path)
    sample_sub = (root / "sample_submission.csv").read_text().splitlines()
    bad = sample_sub[1].split(",")[0]
    (root / "test" / f"{bad}_blue.png").write_bytes(b"")
    out = tmp_path / "submission.csv"
    result = hpa("predict", trained_run, root, "-o", out)
    _assert_clean_failure(result, out, bad, "empty file")
    assert not out.with_name("submission_probs.csv").exists()


def test_skip_invalid_trains_without_the_bad_sample(synth_root: Path, tmp_path: Path) -> None:
    root = _copy(synth_root, tmp_path)
    bad = _first_id(root)
    (root / "train" / f"{bad}_red.png").unlink()
    run = tmp_path / "run"
    result = hpa("train", root, *TINY_TRAIN, "--set", "train.epochs=1", "--out", run, "--skip-invalid")
    assert result.returncode == 0, result.stderr
    skipped = pd.read_csv(run / "skipped.csv")
    assert skipped["Id"].tolist() == [bad]
    assert bad not in pd.read_csv(run / "split.csv")["Id"].tolist()


def test_not_a_run_directory(tmp_path: Path, synth_root: Path) -> None:
    result = hpa("predict", tmp_path, synth_root, "-o", tmp_path / "s.csv")
    assert result.returncode == 2
    assert "not a run directory" in result.stderr


def test_unknown_config_key_is_named(synth_root: Path, tmp_path: Path) -> None:
    result = hpa("train", synth_root, "--set", "train.epoch=3", "--out", tmp_path / "r")
    assert result.returncode == 2
    assert "train.epoch" in result.stderr and "train.epochs" in result.stderr
