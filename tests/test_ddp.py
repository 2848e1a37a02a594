"""Lightning DDP on the CPU (gloo, 2 processes): sharded prediction, and training on a packed cache."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import TINY_TRAIN, hpa
from helpers import multihot, read_probs_table, read_thresholds_file, ref_binarize, ref_macro_f1, write_table
from hpa_classify.data.layout import load_dataset
from hpa_classify.data.pack import open_pack, pack
from hpa_classify.inference.distributed import is_global_zero, wants_distributed
from hpa_classify.inference.predict import predict_probs
from hpa_classify.inference.runs import load_model, open_run

# a distributed job that hangs must fail the test, not the CI run
DDP_TIMEOUT = 300


def test_rank_zero_is_told_from_the_launcher_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_NTASKS", "SLURM_PROCID"):
        monkeypatch.delenv(key, raising=False)
    assert is_global_zero()
    monkeypatch.setenv("LOCAL_RANK", "1")  # a process Lightning's launcher started
    assert not is_global_zero()
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("NODE_RANK", "1")  # local rank 0 of the second machine
    assert not is_global_zero()
    assert wants_distributed(2, 1) and wants_distributed(1, 2) and wants_distributed("0,1", 1)
    assert not wants_distributed(1, 1) and not wants_distributed("auto", 1)


def test_two_process_prediction_of_an_odd_sized_set_equals_one_process(
    trained_run: Path, synth_root: Path, tmp_path: Path
) -> None:
    # 15 images: rank 1 predicts 7 and pads an eighth row, which must be cut off again
    ids = pd.read_csv(synth_root / "sample_submission.csv", dtype=str)["Id"].tolist()[:15][::-1]
    csv = write_table(tmp_path / "odd.csv", ids)
    out = tmp_path / "ddp.csv"
    result = hpa("predict", trained_run, csv, "--images", synth_root / "test", "-o", out, "--tta", "2",
                 "--devices", "2", timeout=DDP_TIMEOUT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("wrote ") == 1  # rank 0 alone reports and writes
    run = open_run(trained_run)
    data = load_dataset(csv, images=synth_root / "test")
    expected = predict_probs(load_model(run), data, run.cfg, tta=2)
    got_ids, got, _ = read_probs_table(tmp_path / "ddp_probs.csv")
    assert got_ids == ids  # merged back in input order, padding dropped
    np.testing.assert_allclose(got, expected, atol=1e-5)
    sub = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert sub["Id"].tolist() == ids
    labels, _ = ref_binarize(got, read_thresholds_file(trained_run / "thresholds.json"))
    assert [multihot([t])[0].tolist() for t in sub["Predicted"]] == labels.tolist()


def test_two_process_training_on_a_pack_validates_each_image_once(synth_root: Path, tmp_path: Path) -> None:
    cache = tmp_path / "pack"
    pack(load_dataset(synth_root), cache, size=64, workers=1)
    run = tmp_path / "ddp-run"
    result = hpa(
        "train", cache, *TINY_TRAIN, "--set", "train.epochs=1", "--set", "train.accelerator=cpu",
        "--set", "train.limit_train_batches=1", "--set", "evaluate.pr_figures=false",
        "--set", "data.val_fraction=0.15",  # 9 validation images: the shards cannot be equal
        "--devices", "2", "--out", run, timeout=DDP_TIMEOUT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (run / "checkpoints" / "best.ckpt").is_file() and (run / "thresholds.json").is_file()
    metrics = pd.read_csv(run / "metrics.csv")
    assert metrics["epoch"].tolist() == [1] and metrics["val_f1"].notna().all()
    assert "devices: 2" in (run / "config.yaml").read_text()
    env = json.loads((run / "env.json").read_text())
    assert env["data"]["pack_size"] == 64 and env["data"]["n_samples"] == 64

    # val_f1 and val_loss of the two processes are those of the model on the whole
    # validation split in one process: no image repeated to even out the shards
    split = pd.read_csv(run / "split.csv", dtype={"Id": str})
    val_ids = split["Id"][split["split"] == "val"].tolist()
    assert len(val_ids) % 2 == 1, "the test needs a validation split that two processes cannot share evenly"
    data = open_pack(cache)
    position = {sample_id: i for i, sample_id in enumerate(data.ids)}
    val = data.subset([position[i] for i in val_ids])
    model = load_model(open_run(run))
    probs = predict_probs(model, val, open_run(run).cfg, tta=1).astype(np.float64)
    y = multihot(pd.read_csv(synth_root / "train.csv", dtype=str).set_index("Id").loc[val_ids, "Target"])
    assert metrics["val_f1"].iloc[0] == pytest.approx(ref_macro_f1(y, probs, 0.5), abs=1e-12)
    bce = -np.mean(y * np.log(probs) + (1 - y) * np.log1p(-probs))
    assert metrics["val_loss"].iloc[0] == pytest.approx(bce, rel=1e-4)


def test_two_process_train_metrics_equal_one_process(synth_root: Path, tmp_path: Path) -> None:
    """train_loss, train_f1 and the image count of an epoch are summed over both processes.

    With every image its own batch (batch norm then sees one image at a time), no dropout,
    no augmentation and the weights held still (a learning rate of 1e-12), an image's loss
    and prediction do not depend on which process saw it or with which others: two
    processes that each see half of the training split must report what one process
    reports for all of it. Rank 0 alone would report half the images and its own half's loss.
    """
    settings = [
        "--config", "demo-cpu", "--set", "data.size=64", "--set", "data.batch_size=1",
        "--set", "data.num_workers=0", "--set", "data.val_fraction=0.25", "--set", "train.epochs=1",
        "--set", "train.lr=1e-12", "--set", "train.weight_decay=0", "--set", "train.warmup_epochs=0",
        "--set", "model.drop_rate=0", "--set", "augment.enabled=false", "--set", "train.accelerator=cpu",
        "--set", "evaluate.pr_figures=false", "--set", "predict.tta=1",
    ]
    runs = {}
    for devices in (1, 2):
        run = tmp_path / f"run-{devices}"
        result = hpa("train", synth_root, *settings, "--devices", str(devices), "--out", run, timeout=DDP_TIMEOUT)
        assert result.returncode == 0, result.stdout + result.stderr
        runs[devices] = pd.read_csv(run / "metrics.csv").iloc[0]
    split = pd.read_csv(tmp_path / "run-2" / "split.csv", dtype={"Id": str})
    n_train = int((split["split"] == "train").sum())
    assert n_train % 2 == 0, "the test needs a training split two processes share evenly (no padded repeat)"
    assert split.equals(pd.read_csv(tmp_path / "run-1" / "split.csv", dtype={"Id": str}))
    one, two = runs[1], runs[2]
    for row in (one, two):
        assert row["images_per_s"] * row["seconds"] == pytest.approx(n_train, rel=1e-6)
    assert two["train_loss"] == pytest.approx(one["train_loss"], rel=1e-5)
    assert two["train_f1"] == pytest.approx(one["train_f1"], abs=1e-9)
    # (validation is not compared here: it uses batch norm's running statistics, which each
    # process gathers from its own half; the test above checks validation against the model)
