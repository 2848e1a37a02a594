"""Multilabel losses on logits: BCE, focal, Lovasz hinge, soft F1, and weighted sums of them.

``train.loss`` names one loss (``focal``), a sum (``focal+lovasz``) or a
mapping of losses to weights (``{focal: 1.0, lovasz: 0.5}``); see
:func:`hpa_classify.config.loss_terms`.

Every loss takes logits ``(B, C)`` and 0/1 targets ``(B, C)`` and returns a
scalar. BCE and focal loss average over all elements. Lovasz hinge and soft F1
treat each class as one binary problem over the images of the batch and
average over classes, so every class weighs the same, as in macro F1.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from hpa_classify.config import LOSS_NAMES, loss_terms
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


def lovasz_grad(gt_sorted: torch.Tensor) -> torch.Tensor:
    """Gradient of the Lovasz extension of the Jaccard loss, along dim 0.

    ``gt_sorted`` holds 0/1 labels ordered by decreasing hinge error (one
    column per independent problem). Entry ``i`` is the increase of the
    Jaccard loss ``1 - |y ∩ ŷ| / |y ∪ ŷ|`` when the ``i``-th error joins the
    predicted set (Berman et al., CVPR 2018, Algorithm 1).

    >>> lovasz_grad(torch.tensor([0.0, 1.0]))
    tensor([0.5000, 0.5000])
    >>> lovasz_grad(torch.tensor([1.0, 1.0, 0.0]))
    tensor([0.5000, 0.5000, 0.0000])
    """
    gts = gt_sorted.sum(0)
    intersection = gts - gt_sorted.cumsum(0)
    union = gts + (1.0 - gt_sorted).cumsum(0)
    jaccard = 1.0 - intersection / union
    if gt_sorted.shape[0] > 1:
        jaccard = torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]], dim=0)
    return jaccard


def lovasz_hinge(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Lovasz hinge per column of ``(N, C)`` logits: a tensor of ``C`` losses.

    The hinge errors ``1 - logit * (2y - 1)`` of each column are sorted in
    decreasing order and weighted by :func:`lovasz_grad`, a convex surrogate of
    that column's Jaccard loss (Berman et al., CVPR 2018).

    Examples
    --------
    Two images, one positive: errors are 1 - 0.5 = 0.5 (positive) and
    1 + 0.5 = 1.5 (negative); sorted [1.5, 0.5] with gradient [0.5, 0.5]:

    >>> lovasz_hinge(torch.tensor([[0.5], [0.5]]), torch.tensor([[1.0], [0.0]]))
    tensor([1.])
    """
    signs = 2.0 * target - 1.0
    errors = 1.0 - logits * signs
    errors_sorted, order = torch.sort(errors, dim=0, descending=True)
    gt_sorted = torch.gather(target, 0, order)
    return (F.relu(errors_sorted) * lovasz_grad(gt_sorted)).sum(0)


class LovaszHingeLoss(nn.Module):
    """Lovasz hinge of each class over the batch, averaged over classes.

    A class without positives in the batch still counts: its loss is the
    hinge error of its highest-scoring negative.
    """

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return lovasz_hinge(logits, target).mean()


class SoftF1Loss(nn.Module):
    """``1 -`` macro soft F1: each class's F1 over the batch with probabilities as counts.

    ``tp = Σ p·y``, ``fp = Σ p·(1-y)``, ``fn = Σ (1-p)·y``, ``F1 = 2tp / (2tp + fp + fn + eps)``.

    >>> SoftF1Loss()(torch.zeros(2, 2), torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
    tensor(0.7500)
    """

    def __init__(self, eps: float = 1e-7) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        p = torch.sigmoid(logits)
        tp = (p * target).sum(0)
        fp = (p * (1.0 - target)).sum(0)
        fn = ((1.0 - p) * target).sum(0)
        f1 = 2.0 * tp / (2.0 * tp + fp + fn + self.eps)
        return 1.0 - f1.mean()


class WeightedSum(nn.Module):
    """``Σ weight_k * loss_k`` over named losses."""

    def __init__(self, losses: Mapping[str, nn.Module], weights: Mapping[str, float]) -> None:
        super().__init__()
        self.losses = nn.ModuleDict(dict(losses))
        self.weights = dict(weights)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        total = logits.new_zeros(())
        for name, loss in self.losses.items():
            total = total + self.weights[name] * loss(logits, target)
        return total


def _single(name: str, focal_gamma: float) -> nn.Module:
    if name == "bce":
        return nn.BCEWithLogitsLoss()
    if name == "focal":
        return FocalLoss(focal_gamma)
    if name == "lovasz":
        return LovaszHingeLoss()
    if name == "soft_f1":
        return SoftF1Loss()
    raise ConfigError(f"unknown loss '{name}' ({', '.join(LOSS_NAMES)})")


def build_loss(spec: str | Mapping[str, float], focal_gamma: float = 2.0) -> nn.Module:
    """The loss ``spec`` names: one loss, ``a+b``, or a mapping of losses to weights.

    >>> build_loss("focal").__class__.__name__
    'FocalLoss'
    >>> build_loss("focal+lovasz").weights
    {'focal': 1.0, 'lovasz': 1.0}
    """
    try:
        terms = loss_terms(spec)  # type: ignore[arg-type]
    except ValueError as exc:
        raise ConfigError(f"bad value for 'train.loss': {exc}") from None
    if len(terms) == 1 and next(iter(terms.values())) == 1.0:
        return _single(next(iter(terms)), focal_gamma)
    return WeightedSum({name: _single(name, focal_gamma) for name in terms}, terms)
