"""Lightning DDP on the CPU (gloo, 2 processes): sharded prediction, and training on a packed cache."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import TINY_TRAIN, hpa
from hpa_classify.data.layout import load_dataset
from hpa_classify.data.pack import pack
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


def test_two_process_prediction_equals_one_process(trained_run: Path, synth_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp.csv"
    result = hpa("predict", trained_run, synth_root, "-o", out, "--tta", "2", "--devices", "2",
                 timeout=DDP_TIMEOUT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("wrote ") == 1  # rank 0 alone reports and writes
    run = open_run(trained_run)
    data = load_dataset(synth_root, prefer="test")
    expected = predict_probs(load_model(run), data, run.cfg, tta=2)
    got = pd.read_csv(tmp_path / "ddp_probs.csv")
    assert got["Id"].tolist() == data.ids  # merged back in input order
    np.testing.assert_allclose(got.iloc[:, 1:].to_numpy(np.float32), expected, atol=1e-5)


def test_two_process_training_step_on_a_pack(synth_root: Path, tmp_path: Path) -> None:
    cache = tmp_path / "pack"
    pack(load_dataset(synth_root), cache, size=64, workers=1)
    run = tmp_path / "ddp-run"
    result = hpa(
        "train", cache, *TINY_TRAIN, "--set", "train.epochs=1", "--set", "train.accelerator=cpu",
        "--set", "train.limit_train_batches=1", "--set", "evaluate.pr_figures=false",
        "--devices", "2", "--out", run, timeout=DDP_TIMEOUT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (run / "checkpoints" / "best.ckpt").is_file() and (run / "thresholds.json").is_file()
    metrics = pd.read_csv(run / "metrics.csv")
    assert metrics["epoch"].tolist() == [1] and metrics["val_f1"].notna().all()
    assert "devices: 2" in (run / "config.yaml").read_text()
    env = json.loads((run / "env.json").read_text())
    assert env["data"]["pack_size"] == 64 and env["data"]["n_samples"] == 64
