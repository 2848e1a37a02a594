"""Ensembles: members and weights, thresholds tuned on shared held-out Ids or the fallback."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import hpa
from helpers import assert_rows_are_thresholded, read_probs_table, read_thresholds_file, ref_search
from hpa_classify.config import load_config, save_config
from hpa_classify.ensemble import ensemble_thresholds
from hpa_classify.inference.members import members, parse_weights
from hpa_classify.errors import HPAError
from hpa_classify.evaluate.thresholds import load_thresholds, save_thresholds, search_thresholds
from hpa_classify.fileio import write_csv, write_json
from hpa_classify.workflows.submission import predict_run
from hpa_classify.inference.probs import probs_frame, read_probs
from hpa_classify.inference.runs import open_run


def _fake_run(path: Path, ids: list[str], probs: np.ndarray, labels: list[list[int]], thr: float) -> Path:
    """A run directory with only what thresholds need: config, val_probs, prior, thresholds."""
    path.mkdir(parents=True)
    save_config(load_config(None), path / "config.yaml")
    write_csv(path / "val_probs.csv", probs_frame(ids, probs, labels))
    write_json(path / "train_prior.json", {"class_frequency": [0.1] * 28, "n_images": 10})
    save_thresholds(path / "thresholds.json", np.full(28, thr), "search")
    return path


def _probs(n: int, seed: int) -> tuple[np.ndarray, list[list[int]]]:
    rng = np.random.default_rng(seed)
    labels = [[i % 28, (i * 3 + 1) % 28] for i in range(n)]
    return rng.random((n, 28)).astype(np.float32), labels


def test_runs_sharing_held_out_ids_get_thresholds_tuned_on_the_mean(tmp_path: Path) -> None:
    ids = [f"s{i}" for i in range(40)]
    pa, labels = _probs(40, 1)
    pb, _ = _probs(40, 2)
    a = _fake_run(tmp_path / "a", ids, pa, labels, 0.3)
    # b holds the same images in another order, and a few of its own
    order = list(range(39, -1, -1))
    pc, lc = _probs(5, 3)
    b = _fake_run(tmp_path / "b", [ids[i] for i in order] + [f"x{i}" for i in range(5)],
                  np.concatenate([pb[order], pc]), [labels[i] for i in order] + lc, 0.7)
    got = ensemble_thresholds([open_run(a), open_run(b)], [3.0, 1.0])
    from hpa_classify.classes import to_multihot

    expected = search_thresholds(to_multihot(labels), (0.75 * pa + 0.25 * pb).astype(np.float32))
    np.testing.assert_allclose(got.thresholds, expected)
    assert "40 shared images" in got.source and got.n_images == 40


def test_runs_without_shared_ids_fall_back_to_the_mean_of_their_thresholds(tmp_path: Path) -> None:
    pa, la = _probs(20, 1)
    a = _fake_run(tmp_path / "a", [f"a{i}" for i in range(20)], pa, la, 0.2)
    b = _fake_run(tmp_path / "b", [f"b{i}" for i in range(20)], pa, la, 0.6)
    got = ensemble_thresholds([open_run(a), open_run(b)], [1.0, 3.0])
    np.testing.assert_allclose(got.thresholds, np.full(28, 0.25 * 0.2 + 0.75 * 0.6))
    assert "own thresholds" in got.source


def test_one_run_keeps_its_saved_thresholds(tmp_path: Path) -> None:
    pa, la = _probs(10, 1)
    a = _fake_run(tmp_path / "a", [f"a{i}" for i in range(10)], pa, la, 0.35)
    got = ensemble_thresholds([open_run(a)])
    np.testing.assert_allclose(got.thresholds, np.full(28, 0.35))


def test_weights_are_parsed_and_checked() -> None:
    assert parse_weights("0.6, 0.4", 2) == [0.6, 0.4]
    for bad in ("a,b", "1,-1", "0,0", "1,2,3"):
        with pytest.raises(HPAError, match="--weights"):
            parse_weights(bad, 2)


def test_kfold_runs_expand_to_weighted_folds(kfold_run: Path) -> None:
    run = open_run(kfold_run)
    got = members([run, run], [2.0, 1.0])
    assert len(got) == 6
    assert [round(m.weight, 6) for m in got] == [round(2 / 9, 6)] * 3 + [round(1 / 9, 6)] * 3


def test_ensemble_of_a_run_with_itself_predicts_and_thresholds_as_the_run(
    kfold_run: Path, synth_root: Path, tmp_path: Path
) -> None:
    from hpa_classify.data.layout import checked, load_dataset

    test = checked(load_dataset(synth_root, prefer="test"))
    run = open_run(kfold_run)
    one = predict_run(run, test, tmp_path / "one.csv", tta=1)
    two = predict_run([run, run], test, tmp_path / "two.csv", tta=1, weights=[2.0, 1.0])
    np.testing.assert_allclose(read_probs(two.probabilities)[1], read_probs(one.probabilities)[1], atol=1e-6)
    assert two.n_models == 6 and two.thresholds_path is not None
    saved = json.loads(two.thresholds_path.read_text())
    assert "shared images" in saved["tuned_on"] and saved["weights"] == [2.0, 1.0]
    np.testing.assert_allclose(load_thresholds(two.thresholds_path), load_thresholds(run.thresholds_path))
    assert pd.read_csv(two.submission)["Id"].tolist() == test.ids


def test_predict_several_runs_on_the_command_line(kfold_run: Path, synth_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "ens.csv"
    result = hpa("predict", kfold_run, kfold_run / "fold0", synth_root, "-o", out,
                 "--weights", "3,1", "--tta", "1")
    assert result.returncode == 0, result.stderr
    assert "mean of 4 models" in result.stdout
    assert out.is_file() and (tmp_path / "ens_thresholds.json").is_file()


def test_a_3_to_1_ensemble_of_two_different_runs(
    kfold_run: Path, trained_run: Path, synth_root: Path, tmp_path: Path
) -> None:
    from hpa_classify.data.layout import checked, load_dataset

    test = checked(load_dataset(synth_root, prefer="test"))
    a, b = open_run(kfold_run), open_run(trained_run)  # 3 test networks and an EfficientNet
    alone_a = predict_run(a, test, tmp_path / "a.csv", tta=1)
    alone_b = predict_run(b, test, tmp_path / "b.csv", tta=1)
    both = predict_run([a, b], test, tmp_path / "ab.csv", tta=1, weights=[3.0, 1.0])
    _, pa, _ = read_probs_table(alone_a.probabilities)
    _, pb, _ = read_probs_table(alone_b.probabilities)
    _, p, _ = read_probs_table(both.probabilities)
    assert np.abs(pa - pb).mean() > 0.05  # two different models
    np.testing.assert_allclose(p, 0.75 * pa + 0.25 * pb, rtol=0, atol=1e-6)

    # thresholds: searched on the same mix of the held-out probabilities of the images both
    # runs held out (b's validation images are in a's out-of-fold predictions)
    ids_a, oof, y_a = read_probs_table(kfold_run / "oof_probs.csv")
    ids_b, val, y_b = read_probs_table(trained_run / "val_probs.csv")
    row_a = {sample_id: k for k, sample_id in enumerate(ids_a)}
    rows = [row_a[i] for i in ids_b]
    np.testing.assert_array_equal(y_a[rows], y_b)
    mix = (0.75 * oof[rows].astype(np.float64) + 0.25 * val).astype(np.float32)  # probabilities are float32
    thresholds = read_thresholds_file(tmp_path / "ab_thresholds.json")
    np.testing.assert_array_equal(thresholds, ref_search(y_b, mix))
    assert_rows_are_thresholded(both.submission, both.probabilities, thresholds, test.ids)
