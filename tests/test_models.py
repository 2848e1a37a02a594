"""Backbones with a 4-channel stem, and every source of pretrained weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import timm
import torch

from hpa_classify.errors import ConfigError
from hpa_classify.models import build_model
from hpa_classify.models import weights as weights_module
from hpa_classify.models.factory import grow_stem
from hpa_classify.models.weights import (
    BUNDLED_ARCH,
    bundled_file,
    bundled_state_dict,
    checkpoint_state_dict,
)

IMAGENET_EGYPTIAN_CAT = 285
IMAGENET_ESPRESSO = 967
HEAD = "classifier."
STEM = "conv_stem.weight"


@pytest.fixture(scope="module")
def bundled() -> dict[str, torch.Tensor]:
    return bundled_state_dict()


@pytest.fixture(scope="module")
def imagenet_model(bundled: dict[str, torch.Tensor]) -> torch.nn.Module:
    model = timm.create_model(BUNDLED_ARCH, pretrained=False, in_chans=3, num_classes=1000)
    model.load_state_dict(bundled, strict=True)
    return model.eval()


@pytest.fixture(scope="module")
def grown(bundled: dict[str, torch.Tensor]) -> torch.nn.Module:
    return build_model(BUNDLED_ARCH, "bundled", in_chans=4, num_classes=28).eval()


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """No hub and no cache: timm's own weights cannot be had."""
    calls: list[str] = []

    def unreachable(*args: object, **kwargs: object) -> bool:
        calls.append("hub")
        return False

    def no_cache(name: str) -> None:
        calls.append(f"cache:{name}")
        return None

    monkeypatch.setattr(weights_module, "_hub_reachable", unreachable)
    monkeypatch.setattr(weights_module, "_timm_cached_file", no_cache)
    return calls


def suffix(key: str) -> str:
    return key.rsplit(".", 1)[-1]


# ----------------------------------------------------------------------------- bundled weights


def test_bundled_weights_map_one_to_one_onto_timm(bundled: dict[str, torch.Tensor]) -> None:
    source = torch.load(bundled_file(), map_location="cpu", weights_only=True)
    target = timm.create_model(BUNDLED_ARCH, pretrained=False).state_dict()
    assert len(source) == len(target) == len(bundled) == 296
    assert list(bundled) == list(target)
    for (src_key, src), (dst_key, dst), (key, mapped) in zip(
        source.items(), target.items(), bundled.items()
    ):
        assert key == dst_key
        assert suffix(src_key) == suffix(dst_key), (src_key, dst_key)
        assert mapped.shape == dst.shape
        assert mapped.dtype == dst.dtype
        assert torch.equal(mapped, src)
    assert bundled[STEM].shape == (32, 3, 3, 3)
    assert bundled["classifier.weight"].shape == (1000, 1280)


def classify(model: torch.nn.Module, image: np.ndarray, mean: float | tuple, std: float | tuple) -> int:
    from skimage.transform import resize

    x = resize(image, (224, 224), anti_aliasing=True)  # float64 in 0-1
    x = (x - np.asarray(mean)) / np.asarray(std)
    t = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1), dtype=np.float32))[None]
    with torch.no_grad():
        return int(model(t).argmax(1).item())


@pytest.mark.parametrize(
    ("mean", "std"),
    [(0.5, 0.5), ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))],
    ids=["half", "imagenet"],
)
def test_bundled_weights_classify_imagenet_photos(
    imagenet_model: torch.nn.Module, mean: float | tuple, std: float | tuple
) -> None:
    from skimage import data

    assert classify(imagenet_model, data.chelsea(), mean, std) == IMAGENET_EGYPTIAN_CAT
    assert classify(imagenet_model, data.coffee(), mean, std) == IMAGENET_ESPRESSO


def test_bundled_build_grows_stem_and_keeps_weights(
    bundled: dict[str, torch.Tensor], grown: torch.nn.Module
) -> None:
    assert grown.pretrained_source == "bundled"
    state = grown.state_dict()
    stem = state[STEM]
    assert stem.shape == (32, 4, 3, 3)
    assert torch.equal(stem[:, :3], bundled[STEM])
    assert torch.equal(stem[:, 3], bundled[STEM][:, 0])
    compared = 0
    for key, value in bundled.items():
        if key.startswith(HEAD) or key == STEM:
            continue
        assert torch.equal(state[key], value), key
        compared += 1
    assert compared == 296 - 3
    assert state["classifier.weight"].shape == (28, 1280)
    assert not torch.equal(state["classifier.weight"], bundled["classifier.weight"][:28])


def test_bundled_build_output_shape(grown: torch.nn.Module) -> None:
    with torch.no_grad():
        out = grown(torch.randn(3, 4, 64, 64))
    assert out.shape == (3, 28)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("init", ["mean", "zero", "green"])
def test_bundled_build_fourth_channel_init(bundled: dict[str, torch.Tensor], init: str) -> None:
    model = build_model(BUNDLED_ARCH, "bundled", fourth_channel_init=init)
    stem = model.state_dict()[STEM]
    rgb = bundled[STEM]
    assert torch.equal(stem[:, :3], rgb)
    expected = {
        "mean": rgb.mean(dim=1),
        "zero": torch.zeros_like(rgb[:, 0]),
        "green": rgb[:, 1],
    }[init]
    assert torch.allclose(stem[:, 3], expected)


def test_bundled_three_channel_1000_classes_loads_everything(bundled: dict[str, torch.Tensor]) -> None:
    model = build_model(BUNDLED_ARCH, "bundled", in_chans=3, num_classes=1000)
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in bundled.items())


# ----------------------------------------------------------------------------- grow_stem


def test_grow_stem_variants() -> None:
    w = torch.randn(8, 3, 5, 5)
    red = grow_stem(w, 4, "red")
    assert red.shape == (8, 4, 5, 5)
    assert torch.equal(red[:, :3], w) and torch.equal(red[:, 3], w[:, 0])
    blue = grow_stem(w, 4, "blue")
    assert torch.equal(blue[:, 3], w[:, 2])
    mean = grow_stem(w, 4, "mean")
    assert torch.equal(mean[:, :3], w)
    assert torch.allclose(mean[:, 3], w.mean(dim=1))
    zero = grow_stem(w, 4, "zero")
    assert torch.equal(zero[:, :3], w) and not zero[:, 3].any()
    five = grow_stem(w, 5, "red")
    assert five.shape == (8, 5, 5, 5)
    assert torch.equal(five[:, 4], w[:, 0])
    assert grow_stem(w, 3) is w


def test_grow_stem_errors() -> None:
    with pytest.raises(ConfigError, match="fourth_channel_init"):
        grow_stem(torch.randn(2, 3, 3, 3), 4, "purple")
    with pytest.raises(ConfigError, match="cannot adapt"):
        grow_stem(torch.randn(2, 1, 3, 3), 4)
    with pytest.raises(ConfigError, match="cannot adapt"):
        grow_stem(torch.randn(2, 3, 3, 3), 2)


# ----------------------------------------------------------------------------- other sources


def test_resnet18_without_pretrained() -> None:
    model = build_model("resnet18", "none")
    assert model.pretrained_source == "none"
    assert model.conv1.weight.shape[1] == 4
    with torch.no_grad():
        assert model(torch.zeros(2, 4, 32, 32)).shape == (2, 28)


def test_unknown_model_name() -> None:
    with pytest.raises(ConfigError, match="unknown model 'resnet_nope'"):
        build_model("resnet_nope")


def test_bundled_only_fits_its_architecture() -> None:
    with pytest.raises(ConfigError, match=BUNDLED_ARCH):
        build_model("resnet18", "bundled")


def test_unknown_pretrained_source(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not one of"):
        build_model("resnet18", "imagenet")
    with pytest.raises(ConfigError, match="not one of"):
        build_model("resnet18", str(tmp_path / "missing.pth"))


def resnet18_imagenet_like() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return timm.create_model("resnet18", pretrained=False, in_chans=3, num_classes=1000).state_dict()


@pytest.mark.parametrize("wrap", ["plain", "lightning", "model"])
def test_checkpoint_path_loads_and_grows_stem(tmp_path: Path, wrap: str) -> None:
    state = resnet18_imagenet_like()
    if wrap == "lightning":
        obj = {"state_dict": {"model." + k: v for k, v in state.items()}, "epoch": 3}
    elif wrap == "model":
        obj = {"model": state}
    else:
        obj = state
    path = tmp_path / "resnet18.pth"
    torch.save(obj, path)
    model = build_model("resnet18", str(path), in_chans=4, num_classes=28)
    assert model.pretrained_source == str(path)
    loaded = model.state_dict()
    assert torch.equal(loaded["conv1.weight"][:, :3], state["conv1.weight"])
    assert torch.equal(loaded["conv1.weight"][:, 3], state["conv1.weight"][:, 0])
    for key, value in state.items():
        if key.startswith("fc.") or key == "conv1.weight":
            continue
        assert torch.equal(loaded[key], value), key
    assert loaded["fc.weight"].shape == (28, 512)


def test_checkpoint_of_other_architecture(tmp_path: Path) -> None:
    path = tmp_path / "r18.pth"
    torch.save(resnet18_imagenet_like(), path)
    with pytest.raises(ConfigError, match="do not fit 'resnet34'"):
        build_model("resnet34", str(path))


def test_checkpoint_that_is_not_a_state_dict(tmp_path: Path) -> None:
    path = tmp_path / "junk.pth"
    path.write_bytes(b"not a torch file")
    with pytest.raises(ConfigError, match="cannot load weights"):
        checkpoint_state_dict(path)
    torch.save({"a": 1}, path)
    with pytest.raises(ConfigError, match="state dict of tensors"):
        checkpoint_state_dict(path)


def test_timm_source_offline_fails_without_waiting_for_the_network(offline: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        build_model("resnet18", "timm")
    message = str(info.value)
    assert "timm could not provide ImageNet weights for 'resnet18'" in message
    assert "bundled" in message
    assert offline == ["cache:resnet18", "hub"]


def test_auto_source_offline(offline: list[str]) -> None:
    with pytest.raises(ConfigError, match="no ImageNet weights for 'resnet18'"):
        build_model("resnet18", "auto")
    model = build_model(BUNDLED_ARCH, "auto")
    assert model.pretrained_source == "bundled"
    assert model.state_dict()[STEM].shape[1] == 4
