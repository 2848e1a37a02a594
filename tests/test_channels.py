"""``data.channels``: a subset of the four channels, honoured by config, dataset and model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import make_dataset
from hpa_classify.config import load_config
from hpa_classify.data.dataset import HPADataset
from hpa_classify.data.layout import load_dataset
from hpa_classify.errors import ConfigError
from hpa_classify.models import build_model
from hpa_classify.models.factory import grow_stem, stem_for_channels


def test_default_is_all_four_channels() -> None:
    assert load_config(None).data.channels == ("red", "green", "blue", "yellow")
    assert load_config(None, ["data.channels=[red, green, blue]"]).data.channels == ("red", "green", "blue")


@pytest.mark.parametrize(
    ("value", "message"),
    [("[]", "at least one"), ("[red, red]", "at most once"), ("[red, purple]", "data.channels"), ("red", "tuple")],
)
def test_bad_channels_name_the_key(value: str, message: str) -> None:
    with pytest.raises(ConfigError, match="data.channels") as err:
        load_config(None, [f"data.channels={value}"])
    assert message in str(err.value)


def test_dataset_keeps_the_named_channels_in_order(tmp_path: Path) -> None:
    make_dataset(tmp_path / "train.csv", tmp_path, n=2, size=8)
    data = load_dataset(tmp_path / "train.csv")
    mean, std = (0.1, 0.2, 0.3, 0.4), (0.5, 0.6, 0.7, 0.8)
    four = HPADataset(data, 8, mean, std)
    rgb = HPADataset(data, 8, mean, std, channels=("red", "green", "blue"))
    gy = HPADataset(data, 8, mean, std, channels=("yellow", "green"))
    x4, x3, x2 = four[1][0], rgb[1][0], gy[1][0]
    assert x4.shape == (4, 8, 8) and x3.shape == (3, 8, 8) and x2.shape == (2, 8, 8)
    assert torch.equal(x3, x4[:3])
    assert torch.equal(x2, x4[[3, 1]])


def test_stem_keeps_imagenet_filters_by_name() -> None:
    w = torch.randn(8, 3, 3, 3)
    assert torch.equal(stem_for_channels(w, ["red", "green", "blue", "yellow"], "mean"), grow_stem(w, 4, "mean"))
    picked = stem_for_channels(w, ["blue", "yellow"], "green")
    assert torch.equal(picked[:, 0], w[:, 2]) and torch.equal(picked[:, 1], w[:, 1])
    four = grow_stem(w, 4)
    assert stem_for_channels(four, ["red", "green", "blue", "yellow"]) is four
    with pytest.raises(ConfigError):
        stem_for_channels(four, ["red", "green"])


def test_rgb_model_takes_the_bundled_rgb_stem_unchanged() -> None:
    four = build_model("tf_efficientnet_lite0", "bundled")
    rgb = build_model("tf_efficientnet_lite0", "bundled", channels=("red", "green", "blue"))
    w4, w3 = four.conv_stem.weight, rgb.conv_stem.weight
    assert w3.shape[1] == 3 and torch.equal(w3, w4[:, :3])
    assert rgb(torch.zeros(1, 3, 64, 64)).shape == (1, 28)
    assert np.isfinite(rgb(torch.zeros(1, 3, 64, 64)).detach().numpy()).all()
