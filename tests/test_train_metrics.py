"""train_f1 and val_f1 in metrics.csv are the package's one macro F1: at or above 0.5, top-1 fallback."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import f1_score
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from helpers import N_CLASSES, ref_binarize, ref_macro_f1
from hpa_classify.config import load_config
from hpa_classify.evaluate.metrics import binarize
from hpa_classify.train.module import HPAModule, binarize_batch
from hpa_classify.train.single import MetricsCSV


class LogitsAreInputs(nn.Module):
    """A 'network' whose logits are its inputs, so a test chooses every probability."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))  # something for the optimiser; it changes nothing

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.0 * self.w


def logits_and_labels(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits from {-3, -1, 0, 1, 3}: a logit of 0 is a probability of exactly 0.5. A third of
    the rows are all negative, so they take the top-1 fallback."""
    rng = np.random.default_rng(seed)
    logits = rng.choice([-3.0, -1.0, 0.0, 1.0, 3.0], size=(n, N_CLASSES))
    logits[::3] = rng.choice([-3.0, -1.0], size=(len(logits[::3]), N_CLASSES))
    labels = (rng.random((n, N_CLASSES)) < 0.3).astype(np.float32)
    return torch.tensor(logits, dtype=torch.float32), torch.from_numpy(labels)


def test_batch_binarisation_is_the_package_rule() -> None:
    logits, _ = logits_and_labels(60, seed=1)
    probs = torch.sigmoid(logits)
    assert (probs == 0.5).any() and (probs.max(dim=1).values < 0.5).any()
    got = binarize_batch(probs).numpy().astype(int)
    np.testing.assert_array_equal(got, binarize(probs.numpy(), 0.5)[0])
    # a probability at the threshold is a label; a row with none takes its top class
    np.testing.assert_array_equal(got, ref_binarize(logits.numpy(), 0.0)[0])


def test_train_and_val_f1_equal_sklearn_at_half_with_the_fallback(tmp_path: Path) -> None:
    x_train, y_train = logits_and_labels(45, seed=2)
    x_val, y_val = logits_and_labels(31, seed=3)
    cfg = load_config(None, ["train.accelerator=cpu", "train.precision='32'", "train.epochs=1"])
    module = HPAModule(LogitsAreInputs(), cfg)
    trainer = L.Trainer(
        max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
        callbacks=[MetricsCSV(tmp_path / "metrics.csv")],
    )
    trainer.fit(
        module,
        train_dataloaders=DataLoader(TensorDataset(x_train, y_train), batch_size=8),
        val_dataloaders=DataLoader(TensorDataset(x_val, y_val), batch_size=8),
    )
    row = pd.read_csv(tmp_path / "metrics.csv").iloc[0]
    # probabilities >= 0.5 are logits >= 0 (and the top probability is the top logit)
    assert row["train_f1"] == pytest.approx(ref_macro_f1(y_train.numpy(), x_train.numpy(), 0.0), abs=1e-12)
    assert row["val_f1"] == pytest.approx(ref_macro_f1(y_val.numpy(), x_val.numpy(), 0.0), abs=1e-12)
    # and the F1 of '> 0.5' without the fallback, as before, is another number
    strict = (x_val.numpy() > 0).astype(int)
    assert row["val_f1"] != f1_score(y_val.numpy(), strict, average="macro", zero_division=0)


def test_a_diverged_model_scores_nan_and_is_never_the_best(tmp_path: Path) -> None:
    x_val, y_val = logits_and_labels(8, seed=4)
    x_val[3, 5] = float("nan")
    cfg = load_config(None, ["train.accelerator=cpu", "train.precision='32'", "train.epochs=1"])
    module = HPAModule(LogitsAreInputs(), cfg)
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.validate(module, DataLoader(TensorDataset(x_val, y_val), batch_size=8), verbose=False)
    assert np.isnan(module.last_val["val_f1"])
