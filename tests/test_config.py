"""Typed configuration: defaults, presets, YAML files, overrides, save and reload."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hpa_classify.classes import DEFAULT_MEAN
from hpa_classify.config import (
    Config,
    config_to_yaml,
    list_presets,
    load_config,
    parse_override,
    read_run_config,
    resolve_config_path,
    save_config,
)
from hpa_classify.errors import ConfigError


def write_yaml(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_validate() -> None:
    cfg = load_config()
    assert cfg == Config()
    assert cfg.data.mean == DEFAULT_MEAN
    assert cfg.model.name == "tf_efficientnet_lite0"
    assert cfg.model.pretrained == "auto"
    assert Config.model_validate(cfg.model_dump()) == cfg


def test_demo_cpu_preset_loads() -> None:
    assert "demo-cpu" in list_presets()
    cfg = load_config("demo-cpu")
    assert cfg.name == "demo-cpu"
    assert cfg.model.pretrained == "bundled"
    assert cfg.data.size == 128
    assert cfg.train.precision == "32"
    assert cfg.train.accelerator == "cpu"
    # keys the preset leaves out keep their defaults
    assert cfg.train.weight_decay == Config().train.weight_decay


def test_unknown_preset_lists_presets() -> None:
    with pytest.raises(ConfigError, match="demo-cpu"):
        resolve_config_path("no-such-preset")


def test_yaml_file_overrides_only_its_keys(tmp_path: Path) -> None:
    path = write_yaml(tmp_path / "exp.yaml", "train:\n  epochs: 3\naugment:\n  crop_scale: [0.5, 1.0]\n")
    cfg = load_config(path)
    assert cfg.train.epochs == 3
    assert cfg.augment.crop_scale == (0.5, 1.0)
    assert cfg.train.lr == Config().train.lr


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("train:\n  epoch: 3\n", "train.epoch"),
        ("data:\n  sizee: 64\n", "data.sizee"),
        ("modle:\n  name: resnet18\n", "modle"),
        ("train:\n  lr: 0.1\n  bogus_key: 1\n", "train.bogus_key"),
    ],
)
def test_unknown_key_in_file_names_dotted_key(tmp_path: Path, text: str, key: str) -> None:
    path = write_yaml(tmp_path / "bad.yaml", text)
    with pytest.raises(ConfigError, match=rf"unknown config key '{key}'"):
        load_config(path)


def test_unknown_key_suggests_close_match(tmp_path: Path) -> None:
    path = write_yaml(tmp_path / "bad.yaml", "train:\n  epoch: 3\n")
    with pytest.raises(ConfigError, match=r"did you mean 'train\.epochs'"):
        load_config(path)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("train:\n  epochs: many\n", "train.epochs"),
        ("train:\n  epochs: 0\n", "train.epochs"),
        ("data:\n  size: 8\n", "data.size"),
        ("train:\n  loss: hinge\n", "train.loss"),
        ("data:\n  std: [0.1, 0.1, 0.0, 0.1]\n", "data.std"),
        ("augment:\n  crop_scale: [0.9, 0.5]\n", "augment.crop_scale"),
        ("model:\n  fourth_channel_init: purple\n", "model.fourth_channel_init"),
    ],
)
def test_wrong_value_names_key(tmp_path: Path, text: str, key: str) -> None:
    path = write_yaml(tmp_path / "bad.yaml", text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert f"'{key}" in message
    assert str(path) in message


def test_section_that_is_not_a_mapping(tmp_path: Path) -> None:
    path = write_yaml(tmp_path / "bad.yaml", "train: 5\n")
    with pytest.raises(ConfigError, match="'train' must be a mapping"):
        load_config(path)


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n"])
def test_file_that_is_not_a_mapping(tmp_path: Path, text: str) -> None:
    path = write_yaml(tmp_path / "bad.yaml", text)
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(path)


def test_invalid_yaml_names_file(tmp_path: Path) -> None:
    path = write_yaml(tmp_path / "bad.yaml", "train: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    assert load_config(write_yaml(tmp_path / "empty.yaml", "")) == Config()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("train.lr=3e-4", {"train": {"lr": 3e-4}}),
        ("train.lr=1E-3", {"train": {"lr": 1e-3}}),
        ("train.lr=0.001", {"train": {"lr": 0.001}}),
        ("train.epochs=3", {"train": {"epochs": 3}}),
        ("augment.crop_scale=[0.5, 1.0]", {"augment": {"crop_scale": [0.5, 1.0]}}),
        ("data.mean=[0.1,0.2,0.3,0.4]", {"data": {"mean": [0.1, 0.2, 0.3, 0.4]}}),
        ("augment.enabled=false", {"augment": {"enabled": False}}),
        ("model.name=efficientnet_b0", {"model": {"name": "efficientnet_b0"}}),
        ("model.pretrained=/ckpt/epoch=3.ckpt", {"model": {"pretrained": "/ckpt/epoch=3.ckpt"}}),
        ("train.limit_train_batches=null", {"train": {"limit_train_batches": None}}),
        ("name=x", {"name": "x"}),
        (" seed = 5", {"seed": 5}),
    ],
)
def test_parse_override(text: str, expected: dict) -> None:
    result = parse_override(text)
    assert result == expected
    if "lr" in text:
        assert isinstance(result["train"]["lr"], float)


@pytest.mark.parametrize("text", ["train.lr", "=3", ""])
def test_parse_override_rejects_malformed(text: str) -> None:
    with pytest.raises(ConfigError, match="override"):
        parse_override(text)


def test_overrides_apply_after_file(tmp_path: Path) -> None:
    path = write_yaml(tmp_path / "exp.yaml", "train:\n  epochs: 3\n  lr: 0.1\n")
    cfg = load_config(
        path, ["train.lr=3e-4", "augment.crop_scale=[0.5, 0.9]", "data.mean=[0.1,0.2,0.3,0.4]"]
    )
    assert cfg.train.epochs == 3
    assert cfg.train.lr == pytest.approx(3e-4)
    assert cfg.augment.crop_scale == (0.5, 0.9)
    assert cfg.data.mean == (0.1, 0.2, 0.3, 0.4)


def test_overrides_apply_on_preset() -> None:
    cfg = load_config("demo-cpu", ["data.size=64", "train.epochs=1"])
    assert (cfg.data.size, cfg.train.epochs, cfg.model.pretrained) == (64, 1, "bundled")


def test_bad_override_names_key() -> None:
    with pytest.raises(ConfigError, match=r"unknown config key 'train\.epoch'"):
        load_config(None, ["train.epoch=3"])
    with pytest.raises(ConfigError, match=r"'train\.lr'"):
        load_config(None, ["train.lr=-1"])
    with pytest.raises(ConfigError, match=r"'data\.mean"):
        load_config(None, ["data.mean=[0.1, 0.2]"])


def test_save_and_read_run_config_round_trip(tmp_path: Path) -> None:
    cfg = load_config(
        "demo-cpu",
        ["train.lr=3e-4", "augment.crop_scale=[0.6, 0.9]", "train.devices=auto", "seed=7"],
    )
    path = save_config(cfg, tmp_path / "run" / "config.yaml")
    assert path.is_file()
    again = read_run_config(path)
    assert again == cfg
    assert again.augment.crop_scale == (0.6, 0.9)
    assert again.train.devices == "auto"
    # the saved file is fully resolved: every section and key is written
    tree = yaml.safe_load(path.read_text())
    assert set(tree) == set(Config.model_fields)
    assert set(tree["train"]) == set(type(cfg.train).model_fields)
    assert config_to_yaml(again) == path.read_text()


def test_read_run_config_rejects_unknown_key(tmp_path: Path) -> None:
    path = save_config(Config(), tmp_path / "config.yaml")
    path.write_text(path.read_text() + "extra: 1\n")
    with pytest.raises(ConfigError, match="unknown config key 'extra'"):
        read_run_config(path)


def test_read_run_config_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        read_run_config(tmp_path / "nope.yaml")


def test_bad_value_in_file_is_blamed_on_file_even_with_overrides(tmp_path: Path) -> None:
    path = write_yaml(tmp_path / "bad.yaml", "train:\n  epochs: zero\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, ["train.lr=0.1"])
    assert str(info.value).startswith(f"{path}: bad value for 'train.epochs'")
    with pytest.raises(ConfigError, match=r"^override: bad value for 'train\.lr'"):
        load_config(path, ["train.lr=-1", "train.epochs=2"])


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("train.devices=[1]", "'train.devices'"),
        ("train.limit_train_batches=abc", "'train.limit_train_batches'"),
        ("data.mean=[0.1, 0.2]", "'data.mean.2'"),
    ],
)
def test_bad_value_key_has_no_type_tags(override: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, [override])
    assert f"bad value for {key}:" in str(info.value)


def test_later_override_wins() -> None:
    cfg = load_config(None, ["train.lr=0.5", "train.epochs=2", "train.lr=3e-4"])
    assert cfg.train.lr == pytest.approx(3e-4)
    assert cfg.train.epochs == 2


def test_precision_override_accepts_a_bare_number() -> None:
    from hpa_classify.config import load_config

    assert load_config(None, ["train.precision=32"]).train.precision == "32"
