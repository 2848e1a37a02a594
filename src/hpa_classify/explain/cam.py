"""Grad-CAM on the last feature map of any timm convolutional network.

timm splits every network into ``forward_features`` (the last feature map,
``(B, C, h, w)`` for a convolutional backbone) and ``forward_head`` (pooling,
dropout, classifier), so the map is found the same way for every backbone the
project trains, with no layer names. Grad-CAM (Selvaraju et al. 2017) weighs
the feature map's channels by the mean gradient of a class's logit and keeps
the positive part.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hpa_classify.classes import CHANNELS
from hpa_classify.config import Config
from hpa_classify.data.dataset import device_stats, normalize
from hpa_classify.data.layout import Dataset
from hpa_classify.errors import ConfigError


def load_batch(
    data: Dataset, indices: Sequence[int], cfg: Config, device: torch.device
) -> tuple[np.ndarray, torch.Tensor]:
    """The uint8 samples ``(B, 4, S, S)`` at ``indices`` and the network's normalised input."""
    raw = np.stack([data.read(i, cfg.data.size) for i in indices])
    keep = [CHANNELS.index(c) for c in cfg.data.channels]
    mean, std = device_stats(tuple(cfg.data.mean), tuple(cfg.data.std), tuple(cfg.data.channels), str(device))
    x = normalize(torch.from_numpy(np.ascontiguousarray(raw[:, keep])).to(device), mean, std)
    return raw, x


def data_inputs(data: Dataset) -> list[object]:
    """The files and folders ``data`` reads from, which no output may overwrite."""
    return [p for p in (getattr(data, "csv_path", None), getattr(data, "image_dir", None)) if p is not None]


def feature_map(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The network's last feature map ``(B, C, h, w)``; a clear error for a non-convolutional one."""
    feats = model.forward_features(x)  # type: ignore[operator]
    if feats.ndim != 4:
        raise ConfigError(
            f"{type(model).__name__}: forward_features gives shape {tuple(feats.shape)}, not a "
            "(B, C, h, w) feature map; class activation maps need a convolutional backbone"
        )
    return feats


@torch.inference_mode()
def pooled_features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The pooled features ``(B, D)`` the classifier sees (timm ``forward_head(pre_logits=True)``)."""
    return model.forward_head(model.forward_features(x), pre_logits=True).float()  # type: ignore[operator]


def grad_cam(
    model: nn.Module, x: torch.Tensor, classes: Sequence[Sequence[int]]
) -> tuple[np.ndarray, list[dict[int, np.ndarray]]]:
    """Probabilities ``(B, 28)`` and, per image, a Grad-CAM map for each of its ``classes``.

    Each map has the input's height and width (bilinear upsampling), values in
    [0, 1] (divided by its maximum; all zero where no channel speaks for the
    class). One forward pass for the batch, one backward pass per class asked.
    """
    model.eval()
    with torch.enable_grad():
        feats = feature_map(model, x.detach())
        feats.retain_grad()
        logits = model.forward_head(feats).float()  # type: ignore[operator]
        wanted = sorted({int(c) for cs in classes for c in cs})
        maps: list[dict[int, np.ndarray]] = [{} for _ in range(len(x))]
        for k, c in enumerate(wanted):
            grads = torch.autograd.grad(logits[:, c].sum(), feats, retain_graph=k < len(wanted) - 1)[0]
            weights = grads.float().mean(dim=(2, 3), keepdim=True)
            cam = F.relu((weights * feats.detach().float()).sum(dim=1, keepdim=True))
            cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
            top = cam.flatten(1).amax(dim=1).clamp_min(1e-12)[:, None, None]
            cam = (cam / top).cpu().numpy()
            for i, cs in enumerate(classes):
                if c in cs:
                    maps[i][c] = cam[i].astype(np.float32)
    return torch.sigmoid(logits.detach()).cpu().numpy(), maps
