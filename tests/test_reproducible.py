"""Reproducibility: same seed and data on CPU, same run; what env.json records; drift warnings."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import train_in_process
from helpers import channel_array, write_image
from hpa_classify.classes import CHANNELS
from hpa_classify.config import AugmentConfig, DataConfig
from hpa_classify.data.dataset import EpochSampler, HPADataModule
from hpa_classify.data.layout import load_dataset


def test_same_seed_same_data_same_run(deterministic_setup: tuple[Path, Path], reference_run: Path,
                                      tmp_path: Path) -> None:
    root, config = deterministic_setup
    again = train_in_process(root, config, tmp_path / "again")
    columns = ["epoch", "train_loss", "train_f1", "val_loss", "val_f1", "lr"]
    first = pd.read_csv(reference_run / "metrics.csv")
    second = pd.read_csv(again / "metrics.csv")
    assert len(first) == 3
    pd.testing.assert_frame_equal(first[columns], second[columns], check_exact=True)
    assert (again / "val_probs.csv").read_bytes() == (reference_run / "val_probs.csv").read_bytes()
    assert (again / "split.csv").read_bytes() == (reference_run / "split.csv").read_bytes()
    assert json.loads((again / "thresholds.json").read_text()) == json.loads(
        (reference_run / "thresholds.json").read_text()
    )


def test_env_json_records_what_made_the_run(reference_run: Path, deterministic_setup: tuple[Path, Path]) -> None:
    root, _ = deterministic_setup
    env = json.loads((reference_run / "env.json").read_text())
    for key in ("hpa_classify", "python", "torch", "torchvision", "timm", "lightning", "numpy",
                "albumentations", "opencv", "platform", "torch_threads"):
        assert env[key], key
    assert "git_commit" in env and "git_dirty" in env
    if env["git_commit"] is not None:
        assert len(env["git_commit"]) == 40 and isinstance(env["git_dirty"], bool)
    assert env["config"]["seed"] == 7 and env["config"]["model"]["name"] == "test_efficientnet"
    data = env["data"]
    assert data["n_samples"] == 56 and len(data["csv_sha256"]) == 64 and len(data["files_sha256"]) == 64
    assert data["files_sha256"] == load_dataset(root).fingerprint()["files_sha256"]
    profile = env["data_profile"]
    assert profile["image_size"] == "32x32" and profile["n_images"] == 16
    assert set(profile["channel_mean"]) == set(CHANNELS)
    assert all(0.4 < m < 0.6 for m in profile["channel_mean"].values())  # uniform noise


def test_predict_warns_when_the_data_differ(reference_run: Path, deterministic_setup: tuple[Path, Path],
                                            tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from hpa_classify.workflows.submission import predict_run
    from hpa_classify.inference.runs import open_run

    root, _ = deterministic_setup
    run = open_run(reference_run)
    with caplog.at_level(logging.WARNING, logger="hpa_classify.inference.predict"):
        predict_run(run, load_dataset(root), tmp_path / "same.csv", tta=1)
    assert not caplog.records, "the training data themselves must not warn"

    other = tmp_path / "other"
    shutil.copytree(root, other)
    for path in (other / "train").glob("*_green.png"):
        write_image(path, (channel_array(48, 48, seed=1) // 8))  # larger, and much dimmer
    for channel in ("red", "blue", "yellow"):
        for path in (other / "train").glob(f"*_{channel}.png"):
            write_image(path, channel_array(48, 48, seed=2))
    out = tmp_path / "other.csv"
    with caplog.at_level(logging.WARNING, logger="hpa_classify.inference.predict"):
        predict_run(run, load_dataset(other), out, tta=1)
    messages = [r.getMessage() for r in caplog.records]
    assert any("images are 48x48 px, but the run was trained on 32x32 px" in m for m in messages), messages
    assert any(m.startswith("green channel: mean intensity 0.06") for m in messages), messages
    assert not any(m.startswith("red channel") for m in messages)
    assert out.is_file(), "a warning, not a failure"


def batches(dm: HPADataModule, epoch: int) -> list[torch.Tensor]:
    loader = dm.train_dataloader()
    loader.sampler.set_epoch(epoch)
    return [x for x, _ in loader]


def test_training_batches_do_not_depend_on_workers(deterministic_setup: tuple[Path, Path]) -> None:
    root, _ = deterministic_setup
    ds = load_dataset(root)
    train, val = ds.subset(range(12)), ds.subset(range(12, 16))

    def module(workers: int, seed: int = 3) -> HPADataModule:
        cfg = DataConfig(size=32, batch_size=4, num_workers=workers)
        return HPADataModule(train, val, cfg, AugmentConfig(brightness_contrast=0.3), seed=seed)

    alone = batches(module(0), epoch=1)
    assert len(alone) == 3
    for a, b in zip(alone, batches(module(2), epoch=1)):
        assert torch.equal(a, b)
    assert not torch.equal(alone[0], batches(module(0), epoch=2)[0])
    assert not torch.equal(alone[0], batches(module(0, seed=4), epoch=1)[0])


def test_epoch_sampler_is_a_function_of_seed_and_epoch() -> None:
    def order(seed: int, epoch: int) -> list[int]:
        s = EpochSampler(50, seed)
        s.set_epoch(epoch)
        return [i for _, i in s]

    assert order(0, 3) == order(0, 3)
    assert sorted(order(0, 3)) == list(range(50))
    assert order(0, 3) != order(0, 4) and order(0, 3) != order(1, 3)
    assert len({tuple(order(0, e)) for e in range(5)}) == 5
    assert np.all(np.array([e for e, _ in EpochSampler(4, 0)]) == 0)
