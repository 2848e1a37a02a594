"""Grad-CAM on a feature map of any timm convolutional network.

timm splits every network into ``forward_features`` (the last feature map,
``(B, C, h, w)`` for a convolutional backbone) and ``forward_head`` (pooling,
dropout, classifier), so the map is found the same way for every backbone the
project trains, with no layer names. Grad-CAM (Selvaraju et al. 2017) weighs
the feature map's channels by the mean gradient of a class's logit and keeps
the positive part.

The last feature map has stride 32: 4 x 4 cells for a 128 px input, too
coarse to say which part of a field holds a class. ``layer="auto"`` takes
instead the deepest stage whose map is at least :data:`MIN_SIDE` cells a side
(timm ``forward_intermediates``; the logits still come from the whole
network), which at 512 px is the last one. It lives with inference so that the
run report (``evaluate``) can draw maps of its example images; ``hpa explain``
builds its pages on it (:mod:`hpa_classify.explain`).
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
from hpa_classify.errors import ConfigError

__all__ = ["MIN_SIDE", "feature_map", "grad_cam", "maps_of_images", "stage_for", "to_input"]


def to_input(raw: np.ndarray, cfg: Config, device: torch.device) -> torch.Tensor:
    """The network's normalised input for uint8 samples ``(B, 4, S, S)`` in the project's channel order."""
    keep = [CHANNELS.index(c) for c in cfg.data.channels]
    mean, std = device_stats(tuple(cfg.data.mean), tuple(cfg.data.std), tuple(cfg.data.channels), str(device))
    return normalize(torch.from_numpy(np.ascontiguousarray(raw[:, keep])).to(device), mean, std)


def maps_of_images(
    model: nn.Module, cfg: Config, raw: np.ndarray, classes: Sequence[int], layer: str | int = "auto",
    batch: int = 16,
) -> list[np.ndarray]:
    """One Grad-CAM map per image of ``raw`` (uint8 ``(B, 4, S, S)``, at ``cfg.data.size``), for its class."""
    device = next(model.parameters()).device
    out: list[np.ndarray] = []
    for start in range(0, len(raw), batch):
        part = raw[start : start + batch]
        wanted = [[int(c)] for c in classes[start : start + batch]]
        _, maps = grad_cam(model, to_input(part, cfg, device), wanted, layer)
        out += [m[c[0]] for m, c in zip(maps, wanted, strict=True)]
    return out


def feature_map(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The network's last feature map ``(B, C, h, w)``; a clear error for a non-convolutional one."""
    feats = model.forward_features(x)  # type: ignore[operator]
    if feats.ndim != 4:
        raise ConfigError(
            f"{type(model).__name__}: forward_features gives shape {tuple(feats.shape)}, not a "
            "(B, C, h, w) feature map; class activation maps need a convolutional backbone"
        )
    return feats


#: ``layer="auto"`` picks the deepest feature map at least this many cells a side.
MIN_SIDE = 8


def stage_for(model: nn.Module, side: int, layer: str | int = "auto") -> int | None:
    """The index (into timm ``feature_info``) of the stage to explain, or None for the last map.

    ``layer``: ``"last"``, ``"auto"`` (the deepest stage whose map on a ``side`` px
    input is at least :data:`MIN_SIDE` cells; the last when that is the last
    stage, or when the network gives no intermediate maps), or a stride
    (8, 16, 32: the stage of that reduction).
    """
    info = getattr(model, "feature_info", None)
    if layer == "last" or not hasattr(model, "forward_intermediates") or not info:
        return None
    strides = [int(f["reduction"]) for f in info]
    if layer == "auto":
        fits = [i for i, r in enumerate(strides) if side // r >= MIN_SIDE]
        index = fits[-1] if fits else 0
    else:
        if int(layer) not in strides:
            raise ConfigError(f"{type(model).__name__} has feature maps of stride {strides}, not {layer}")
        index = strides.index(int(layer))
    return None if index == len(strides) - 1 else index


def grad_cam(
    model: nn.Module, x: torch.Tensor, classes: Sequence[Sequence[int]], layer: str | int = "last"
) -> tuple[np.ndarray, list[dict[int, np.ndarray]]]:
    """Probabilities ``(B, 28)`` and, per image, a Grad-CAM map for each of its ``classes``.

    Each map has the input's height and width (bilinear upsampling), values in
    [0, 1] (divided by its maximum; all zero where no channel speaks for the
    class). One forward pass for the batch, one backward pass per class asked.
    ``layer`` chooses the feature map (:func:`stage_for`; default the last).
    """
    model.eval()
    stage = stage_for(model, int(x.shape[-1]), layer)
    with torch.enable_grad():
        if stage is None:
            feats = feature_map(model, x.detach())
            last = feats
        else:
            last, inter = model.forward_intermediates(x.detach(), indices=[stage])  # type: ignore[operator]
            feats = inter[0]
        logits = model.forward_head(last).float()  # type: ignore[operator]
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
