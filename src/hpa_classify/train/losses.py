"""Multilabel losses on logits: binary cross-entropy and focal loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hpa_classify.errors import ConfigError


class FocalLoss(nn.Module):
    """Binary focal loss (Lin et al., 2017) averaged over all elements.

    ``FL = -(1 - p_t)^gamma * log(p_t)``; with ``gamma = 0`` it equals BCE.

    >>> logits, y = torch.tensor([[2.0, -1.0]]), torch.tensor([[1.0, 0.0]])
    >>> bool(torch.isclose(FocalLoss(0.0)(logits, y), F.binary_cross_entropy_with_logits(logits, y)))
    True
    """

    def __init__(self, gamma: float = 2.0) -> None:
        super().__init__()
        self.gamma = gamma

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        p_t = torch.exp(-bce)
        return ((1.0 - p_t) ** self.gamma * bce).mean()


def build_loss(name: str, focal_gamma: float = 2.0) -> nn.Module:
    """The loss called ``name`` (``bce`` or ``focal``)."""
    if name == "bce":
        return nn.BCEWithLogitsLoss()
    if name == "focal":
        return FocalLoss(focal_gamma)
    raise ConfigError(f"unknown loss '{name}' (bce, focal)")
