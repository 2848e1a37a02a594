"""Inputs for the maps and embeddings of a run: batches of a dataset, pooled features.

Grad-CAM itself (:func:`grad_cam`, :func:`stage_for`) lives in
:mod:`hpa_classify.inference.cam`, shared with the run report; it is
re-exported here.

"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from hpa_classify.config import Config
from hpa_classify.data.layout import Dataset
from hpa_classify.inference.cam import (
    MIN_SIDE,
    feature_map,
    grad_cam,
    stage_for,
    to_input,
)

__all__ = ["MIN_SIDE", "data_inputs", "feature_map", "grad_cam", "load_batch", "pooled_features", "stage_for"]


def load_batch(
    data: Dataset, indices: Sequence[int], cfg: Config, device: torch.device
) -> tuple[np.ndarray, torch.Tensor]:
    """The uint8 samples ``(B, 4, S, S)`` at ``indices`` and the network's normalised input."""
    raw = np.stack([data.read(i, cfg.data.size) for i in indices])
    return raw, to_input(raw, cfg, device)


def data_inputs(data: Dataset) -> list[object]:
    """The files and folders ``data`` reads from, which no output may overwrite."""
    return [p for p in (getattr(data, "csv_path", None), getattr(data, "image_dir", None)) if p is not None]


@torch.inference_mode()
def pooled_features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The pooled features ``(B, D)`` the classifier sees (timm ``forward_head(pre_logits=True)``)."""
    return model.forward_head(model.forward_features(x), pre_logits=True).float()  # type: ignore[operator]


