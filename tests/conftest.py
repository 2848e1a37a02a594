"""Shared fixtures: a tiny synthetic dataset and one small trained run, made once per session."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import KAGGLE_LAYOUT

needs_real_samples = pytest.mark.skipif(
    not KAGGLE_LAYOUT.is_dir(), reason=f"real HPA samples not found at {KAGGLE_LAYOUT}"
)

# Small and fast: 64 px, 2 epochs, EfficientNet-Lite0 with the bundled ImageNet weights.
TINY_TRAIN = [
    "--config", "demo-cpu",
    "--set", "data.size=64",
    "--set", "data.batch_size=16",
    "--set", "data.num_workers=0",
    "--set", "train.epochs=2",
    "--set", "predict.tta=2",
]


def hpa(*args: str | os.PathLike[str], cwd: Path | None = None, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    """Run the ``hpa`` command line in a subprocess, as a user would."""
    env = dict(os.environ, COLUMNS="200", NO_COLOR="1")
    return subprocess.run(
        [sys.executable, "-m", "hpa_classify.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Kaggle-layout synthetic dataset: 64 train and 16 test images at 64 px."""
    from hpa_classify.data.synth import generate

    root = tmp_path_factory.mktemp("synth") / "data"
    generate(root, n_train=64, n_test=16, size=64, seed=3, min_per_class=0, workers=2)
    return root


@pytest.fixture(scope="session")
def trained_run(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run directory trained by ``hpa train`` on :func:`synth_root`."""
    run = tmp_path_factory.mktemp("runs") / "tiny"
    result = hpa("train", synth_root, *TINY_TRAIN, "--out", run)
    assert result.returncode == 0, result.stdout + result.stderr
    return run


# Deterministic CPU runs for the interruption and reproducibility tests: a 20k-parameter
# timm test network at 32 px, 56 noise images, 3 epochs of 5 steps; augmentation and
# dropout stay on, since they are what a resumed run must draw again identically.
DETERMINISTIC_YAML = """\
name: tiny-deterministic
seed: 7
data: {size: 32, batch_size: 8, num_workers: 0}
model: {name: test_efficientnet, pretrained: none}
train: {epochs: 3, lr: 0.01, warmup_epochs: 0.5, precision: "32", accelerator: cpu, deterministic: true}
predict: {tta: 2}
evaluate: {pr_figures: false}
"""


@pytest.fixture(scope="session")
def deterministic_setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``(data_root, config_yaml)``: a tiny Kaggle-layout set and the config above."""
    from helpers import make_dataset

    root = tmp_path_factory.mktemp("det") / "data"
    labels = [[i % 6, 6 + (i * 5) % 9] for i in range(56)]
    make_dataset(root / "train.csv", root / "train", n=56, size=32, labels=labels)
    config = root.parent / "tiny.yaml"
    config.write_text(DETERMINISTIC_YAML)
    return root, config


def train_in_process(data_root: Path, config: Path, run_dir: Path) -> Path:
    """Train the deterministic config through the package (no subprocess start-up)."""
    from hpa_classify.config import load_config
    from hpa_classify.data.layout import checked, load_dataset
    from hpa_classify.train.single import train_run as train

    cfg = load_config(config)
    train(cfg, checked(load_dataset(data_root)), run_dir)
    return run_dir


@pytest.fixture(scope="session")
def reference_run(deterministic_setup: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted run of the deterministic config."""
    root, config = deterministic_setup
    return train_in_process(root, config, tmp_path_factory.mktemp("reference") / "run")


# K-fold and comparison tests: a 375k-parameter timm test network, untrained, at 64 px.
KFOLD_SET = [
    "data.size=64", "data.batch_size=16", "data.num_workers=0",
    "model.name=test_efficientnet", "model.pretrained=none",
    "train.epochs=2", "train.accelerator=cpu", "train.precision='32'",
    "predict.tta=1", "evaluate.pr_figures=false",
]


@pytest.fixture(scope="session")
def external_root(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """HPAv18-style external set: ``external.csv`` and colour JPG channels at 96 px.

    Six rows: two reuse Ids of :func:`synth_root`'s training set, four are new.
    """
    import cv2
    import numpy as np

    from hpa_classify.classes import CHANNELS
    from hpa_classify.data.layout import read_table

    kaggle_ids, _ = read_table(synth_root / "train.csv")
    root = tmp_path_factory.mktemp("external")
    BGR_PLANES = {"red": (2,), "green": (1,), "blue": (0,), "yellow": (2, 1)}  # OpenCV writes BGR
    ids = kaggle_ids[:2] + [f"{1000 + i}_{i}_A1_1" for i in range(4)]
    rng = np.random.default_rng(5)
    lines = ["Id,Target"]
    for k, sample_id in enumerate(ids):
        lines.append(f"{sample_id},{k % 28} {(k * 7 + 3) % 28}")
        for channel in CHANNELS:
            bgr = np.zeros((96, 96, 3), np.uint8)  # one stain drawn in its HPAv18 colour
            stain = rng.integers(0, 256, (96, 96), dtype=np.uint8)
            for plane in BGR_PLANES[channel]:
                bgr[..., plane] = stain
            assert cv2.imwrite(str(root / f"{sample_id}_{channel}.jpg"), bgr)
    (root / "external.csv").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="session")
def kfold_run(synth_root: Path, external_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-fold run on :func:`synth_root` with the external images, trained through the package."""
    from hpa_classify.config import load_config
    from hpa_classify.data.layout import checked, load_dataset
    from hpa_classify.train.kfold import train_kfold

    cfg = load_config(None, KFOLD_SET)
    data = checked(load_dataset(synth_root))
    external = checked(load_dataset(external_root / "external.csv"))
    run = tmp_path_factory.mktemp("kfold") / "kf3"
    train_kfold(cfg, data, run, folds=3, external=external)
    return run
