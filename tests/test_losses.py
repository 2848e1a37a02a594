"""Losses against small cases computed by hand, and the train.loss config key."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from hpa_classify.config import load_config, loss_terms
from hpa_classify.errors import ConfigError
from hpa_classify.train.losses import (
    FocalLoss,
    LovaszHingeLoss,
    SoftF1Loss,
    WeightedSum,
    build_loss,
    lovasz_grad,
    lovasz_hinge,
)

LN4 = math.log(4.0)  # sigmoid(ln 4) = 0.8


def test_bce_of_a_zero_logit_is_ln2() -> None:
    loss = build_loss("bce")(torch.tensor([[0.0]]), torch.tensor([[1.0]]))
    assert loss.item() == pytest.approx(math.log(2))


def test_focal_loss_by_hand() -> None:
    # logit 0, positive: p_t = 0.5, BCE = ln 2, weight (1 - 0.5)^2 = 0.25
    assert FocalLoss(2.0)(torch.tensor([[0.0]]), torch.tensor([[1.0]])).item() == pytest.approx(0.25 * math.log(2))
    # logit ln 4, negative: p = 0.8, p_t = 0.2, BCE = -ln 0.2, weight 0.8^2
    value = FocalLoss(2.0)(torch.tensor([[LN4]]), torch.tensor([[0.0]])).item()
    assert value == pytest.approx(0.64 * -math.log(0.2), rel=1e-5)


def test_focal_with_gamma_zero_is_bce() -> None:
    logits, y = torch.tensor([[1.5, -0.3], [0.2, 2.0]]), torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert FocalLoss(0.0)(logits, y).item() == pytest.approx(F.binary_cross_entropy_with_logits(logits, y).item())


def test_lovasz_grad_by_hand() -> None:
    # labels sorted by error [1, 0, 1]: Jaccard losses 1/2, 2/3, 1 -> increments 1/2, 1/6, 1/3
    got = lovasz_grad(torch.tensor([1.0, 0.0, 1.0]))
    assert got.tolist() == pytest.approx([0.5, 1 / 6, 1 / 3])


def test_lovasz_hinge_by_hand() -> None:
    # errors 1 - logit * sign = [0, 0.5, 0.8]; sorted [0.8 (pos), 0.5 (neg), 0 (pos)]
    # with gradient [1/2, 1/6, 1/3]: 0.8/2 + 0.5/6 + 0 = 0.48333
    logits = torch.tensor([[1.0], [-0.5], [0.2]])
    y = torch.tensor([[1.0], [0.0], [1.0]])
    assert lovasz_hinge(logits, y).item() == pytest.approx(0.4 + 0.5 / 6)


def test_lovasz_of_separated_margins_is_zero() -> None:
    logits, y = torch.tensor([[2.0], [-2.0]]), torch.tensor([[1.0], [0.0]])
    assert LovaszHingeLoss()(logits, y).item() == 0.0


def test_lovasz_averages_classes_and_handles_a_class_without_positives() -> None:
    # column 0: errors [0.5 (pos), 1.5 (neg)] -> 1.5 * 1/2 + 0.5 * 1/2 = 1.0
    # column 1 (no positive): errors [2, -2], gradient [1, 0] -> 2.0
    logits = torch.tensor([[0.5, 1.0], [0.5, -3.0]], requires_grad=True)
    y = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    loss = LovaszHingeLoss()(logits, y)
    assert loss.item() == pytest.approx(1.5)
    loss.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


def test_soft_f1_by_hand() -> None:
    # p = 0.8 for a positive and a negative: tp 0.8, fp 0.8, fn 0.2 -> F1 = 1.6 / 2.6
    logits, y = torch.tensor([[LN4], [LN4]]), torch.tensor([[1.0], [0.0]])
    assert SoftF1Loss()(logits, y).item() == pytest.approx(1 - 1.6 / 2.6, rel=1e-5)
    # p = 0.5 everywhere, classes [[1, 0], [0, 0]]: F1 0.5 and 0 -> loss 0.75
    assert SoftF1Loss()(torch.zeros(2, 2), torch.tensor([[1.0, 0.0], [0.0, 0.0]])).item() == pytest.approx(0.75)


def test_soft_f1_of_confident_right_answers_is_near_zero() -> None:
    logits = torch.tensor([[20.0, -20.0], [-20.0, 20.0]])
    assert SoftF1Loss()(logits, torch.tensor([[1.0, 0.0], [0.0, 1.0]])).item() == pytest.approx(0.0, abs=1e-6)


def test_weighted_sum_by_name() -> None:
    logits = torch.tensor([[0.5, 1.0], [0.5, -3.0]])
    y = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    combo = build_loss({"focal": 1.0, "lovasz": 0.5}, focal_gamma=2.0)
    assert isinstance(combo, WeightedSum)
    expected = FocalLoss(2.0)(logits, y) + 0.5 * LovaszHingeLoss()(logits, y)
    assert combo(logits, y).item() == pytest.approx(expected.item())
    plus = build_loss("focal+soft_f1")
    assert plus(logits, y).item() == pytest.approx((FocalLoss()(logits, y) + SoftF1Loss()(logits, y)).item())


@pytest.mark.parametrize("spec", ["bce", "focal", "lovasz", "soft_f1", "focal+lovasz", {"bce": 2.0}])
def test_every_loss_trains_a_tiny_linear_model(spec: object) -> None:
    torch.manual_seed(0)
    x = torch.randn(32, 5)
    y = (x[:, :3] > 0).float()
    layer = torch.nn.Linear(5, 3)
    loss_fn = build_loss(spec)  # type: ignore[arg-type]
    opt = torch.optim.SGD(layer.parameters(), lr=0.5)
    first = loss_fn(layer(x), y).item()
    for _ in range(30):
        opt.zero_grad()
        loss = loss_fn(layer(x), y)
        loss.backward()
        opt.step()
    assert loss.item() < first


def test_loss_key_accepts_names_sums_and_weights() -> None:
    assert load_config(None, ["train.loss=focal+lovasz"]).train.loss == "focal+lovasz"
    cfg = load_config(None, ["train.loss={focal: 1, lovasz: 0.5}"])
    assert loss_terms(cfg.train.loss) == {"focal": 1.0, "lovasz": 0.5}


@pytest.mark.parametrize("value, needle", [
    ("dice", "unknown loss 'dice'"),
    ("focal+", "empty term"),
    ("bce+bce", "twice"),
    ("{focal: 0}", "must be a finite number > 0"),
])
def test_bad_loss_is_named(value: str, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(None, [f"train.loss={value}"])
    assert "train.loss" in str(err.value) and needle in str(err.value)


def test_a_loss_mapping_override_replaces_the_preset_mapping() -> None:
    cfg = load_config("densenet121-winner2018", ["train.loss={bce: 1.0}"])
    assert cfg.train.loss == {"bce": 1.0}


def test_build_loss_unknown_name_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown loss"):
        build_loss("hinge")
