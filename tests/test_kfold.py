"""K-fold training: folds, out-of-fold probabilities, thresholds, one fold at a time, merge, predict."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import KFOLD_SET, hpa
from helpers import (
    assert_summary_is,
    label_frequency,
    multihot,
    read_probs_table,
    read_thresholds_file,
    ref_macro_f1,
    ref_search,
    ref_summary,
)
from hpa_classify.config import load_config
from hpa_classify.data.layout import checked, load_dataset
from hpa_classify.errors import ConfigError, RunError
from hpa_classify.inference.predict import predict_probs
from hpa_classify.workflows.submission import predict_run
from hpa_classify.inference.probs import read_probs
from hpa_classify.inference.runs import fold_runs, load_model, open_run
from hpa_classify.train.kfold import merge_folds, train_kfold


def _train_ids(synth_root: Path) -> list[str]:
    return pd.read_csv(synth_root / "train.csv", dtype=str)["Id"].tolist()


def test_three_folds_give_oof_probabilities_and_thresholds(kfold_run: Path, synth_root: Path) -> None:
    for name in ("config.yaml", "env.json", "kfold.json", "folds.csv", "oof_probs.csv",
                 "train_prior.json", "thresholds.json", "report/summary.json", "report/report.html"):
        assert (kfold_run / name).is_file(), name
    ids = _train_ids(synth_root)
    oof_ids, probs, labels = read_probs(kfold_run / "oof_probs.csv")
    assert sorted(oof_ids) == sorted(ids) and len(set(oof_ids)) == len(ids)  # every image once
    assert labels is not None and np.isfinite(probs).all()
    assert ((probs >= 0) & (probs <= 1)).all()
    thresholds = json.loads((kfold_run / "thresholds.json").read_text())
    assert thresholds["tuned_on"] == "out-of-fold predictions" and len(thresholds["thresholds"]) == 28
    summary = json.loads((kfold_run / "report" / "summary.json").read_text())
    assert summary["n_images"] == len(ids) and summary["folds"] == 3
    assert 0.0 <= summary["macro_f1"] <= 1.0
    assert {"macro_f1_search", "macro_f1_prior", "fold_val_macro_f1"} <= summary.keys()


def test_kfold_thresholds_and_scores_are_recomputed_from_the_oof_probabilities(
    kfold_run: Path, synth_root: Path
) -> None:
    ids, probs, y = read_probs_table(kfold_run / "oof_probs.csv")
    targets = pd.read_csv(synth_root / "train.csv", dtype=str, keep_default_na=False).set_index("Id")["Target"]
    np.testing.assert_array_equal(y, multihot(targets[ids]))
    thresholds = read_thresholds_file(kfold_run / "thresholds.json")
    np.testing.assert_array_equal(thresholds, ref_search(y, probs))
    summary = json.loads((kfold_run / "report" / "summary.json").read_text())
    assert_summary_is(summary, ref_summary(y, probs, thresholds, y, probs, label_frequency(y)))
    fold_f1 = []
    for i in range(3):
        _, fold_probs, fold_y = read_probs_table(kfold_run / f"fold{i}" / "val_probs.csv")
        fold_thresholds = read_thresholds_file(kfold_run / f"fold{i}" / "thresholds.json")
        np.testing.assert_array_equal(fold_thresholds, ref_search(fold_y, fold_probs))
        fold_f1.append(ref_macro_f1(fold_y, fold_probs, fold_thresholds))
    assert summary["fold_val_macro_f1"] == ", ".join(f"{f:.4f}" for f in fold_f1)


def test_each_fold_validates_on_its_own_images(kfold_run: Path, synth_root: Path) -> None:
    folds = pd.read_csv(kfold_run / "folds.csv", dtype={"Id": str})
    assert sorted(folds["fold"].unique()) == [0, 1, 2]
    sizes = folds["fold"].value_counts()
    assert sizes.max() - sizes.min() <= 4  # stratified folds are near equal in size
    oof_ids, oof, _ = read_probs(kfold_run / "oof_probs.csv")
    row = {sample_id: k for k, sample_id in enumerate(oof_ids)}
    for i in range(3):
        val_ids, val_probs, _ = read_probs(kfold_run / f"fold{i}" / "val_probs.csv")
        assert set(val_ids) == set(folds["Id"][folds["fold"] == i])
        np.testing.assert_array_equal(oof[[row[s] for s in val_ids]], val_probs)
        split = pd.read_csv(kfold_run / f"fold{i}" / "split.csv", dtype={"Id": str})
        assert set(split["Id"][split["split"] == "val"]) == set(val_ids)


def test_external_images_join_every_training_part_only(kfold_run: Path, external_root: Path, synth_root: Path) -> None:
    info = json.loads((kfold_run / "kfold.json").read_text())["external"]
    assert (info["n_rows"], info["n_duplicates"], info["n_used"]) == (6, 2, 4)
    external_ids = pd.read_csv(external_root / "external.csv", dtype=str)["Id"].tolist()
    new_ids = set(external_ids) - set(_train_ids(synth_root))
    assert len(new_ids) == 4
    for i in range(3):
        split = pd.read_csv(kfold_run / f"fold{i}" / "split.csv", dtype={"Id": str})
        assert new_ids <= set(split["Id"][split["split"] == "train"])
        assert not new_ids & set(split["Id"][split["split"] == "val"])
    assert not new_ids & set(read_probs(kfold_run / "oof_probs.csv")[0])


def test_one_fold_at_a_time_then_merge(kfold_run: Path, synth_root: Path, external_root: Path, tmp_path: Path) -> None:
    cfg = load_config(None, KFOLD_SET)
    data = checked(load_dataset(synth_root))
    external = checked(load_dataset(external_root / "external.csv"))
    run = tmp_path / "kf3"
    result = train_kfold(cfg, data, run, folds=3, fold=0, external=external)
    assert result.trained == [0] and result.finished == [0] and result.summary is None
    assert not (run / "oof_probs.csv").exists()

    with pytest.raises(RunError, match=r"folds \[1, 2\] of 3 are not finished"):
        merge_folds(run)
    other = load_config(None, [*KFOLD_SET, "train.lr=0.01"])
    with pytest.raises(ConfigError, match="train.lr"):
        train_kfold(other, data, run, folds=3, fold=1, external=external)
    with pytest.raises(RunError, match="3-fold run"):
        train_kfold(cfg, data, run, folds=4, fold=1, external=external)
    assert not (run / "fold1").exists()

    # folds trained elsewhere (same config and data) are copied in, then merged
    for i in (1, 2):
        shutil.copytree(kfold_run / f"fold{i}", run / f"fold{i}")
    summary = merge_folds(run)
    assert summary["n_images"] == 64 and summary["folds"] == 3
    ids, merged, _ = read_probs(run / "oof_probs.csv")
    ref_ids, ref, _ = read_probs(kfold_run / "oof_probs.csv")
    assert ids == ref_ids
    fold = pd.read_csv(run / "folds.csv")["fold"].to_numpy()
    np.testing.assert_array_equal(merged[fold > 0], ref[fold > 0])


def test_predict_with_a_kfold_run_averages_its_folds(kfold_run: Path, synth_root: Path, tmp_path: Path) -> None:
    test = checked(load_dataset(synth_root / "test_labels.csv", images=synth_root / "test"))
    run = open_run(kfold_run)
    s = predict_run(run, test, tmp_path / "sub.csv", tta=1)
    assert s.n_models == 3
    _, probs, _ = read_probs(s.probabilities)
    folds = fold_runs(run)
    mean = np.mean([predict_probs(load_model(f), test, f.cfg, tta=1) for f in folds], axis=0)
    np.testing.assert_allclose(probs, mean, atol=1e-6)


def test_evaluate_a_kfold_run_on_held_out_data(kfold_run: Path, synth_root: Path, tmp_path: Path) -> None:
    from hpa_classify.evaluate.evaluation import evaluate_held_out

    test = checked(load_dataset(synth_root / "test_labels.csv", images=synth_root / "test"))
    summary = evaluate_held_out(open_run(kfold_run), test, out_dir=tmp_path / "eval", tta=1)
    assert summary["n_images"] == 16 and "out-of-fold" in summary["data"]
    assert {"macro_f1_search", "macro_f1_prior"} <= summary.keys()
    saved = json.loads((tmp_path / "eval" / "summary.json").read_text())
    _, probs, y = read_probs_table(tmp_path / "eval" / "probs.csv")
    _, oof, y_oof = read_probs_table(kfold_run / "oof_probs.csv")
    thresholds = read_thresholds_file(kfold_run / "thresholds.json")
    assert_summary_is(saved, ref_summary(y, probs, thresholds, y_oof, oof, label_frequency(y_oof)))


def test_merge_and_fold_options_on_the_command_line(kfold_run: Path, synth_root: Path, tmp_path: Path) -> None:
    result = hpa("merge", kfold_run)
    assert result.returncode == 0, result.stderr
    assert "macro_f1" in result.stdout and "fold_val_macro_f1" in result.stdout
    from typer.testing import CliRunner

    from hpa_classify.cli import app
    from hpa_classify.errors import HPAError

    bad = CliRunner().invoke(app, ["train", str(synth_root), "--fold", "1", "--out", str(tmp_path / "r")])
    assert isinstance(bad.exception, HPAError) and "--folds K" in str(bad.exception)
    assert not (tmp_path / "r").exists()


def test_resume_keeps_finished_folds(kfold_run: Path, synth_root: Path, external_root: Path) -> None:
    cfg = load_config(None, KFOLD_SET)
    data = checked(load_dataset(synth_root))
    external = checked(load_dataset(external_root / "external.csv"))
    before = (kfold_run / "fold0" / "checkpoints" / "best.ckpt").stat().st_mtime_ns
    result = train_kfold(cfg, data, kfold_run, folds=3, external=external, resume=True)
    assert result.trained == [] and result.skipped_folds == [0, 1, 2]
    assert result.summary is not None and result.summary["folds"] == 3
    assert (kfold_run / "fold0" / "checkpoints" / "best.ckpt").stat().st_mtime_ns == before
