"""Every config number has a range, and hostile YAML is refused fast.

A bad value is a ConfigError naming the key and showing the value (cut
short); a config file with aliases (a "billion laughs"), deep nesting, too
many values or too many bytes is refused before it can cost time or memory.
"""

from __future__ import annotations

import math
import subprocess
import sys
import time
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from conftest import hpa
from helpers import make_dataset
from hpa_classify.config import (
    MAX_CONFIG_BYTES,
    Config,
    _known_keys,
    load_config,
    load_yaml,
    parse_override,
)
from hpa_classify.errors import ConfigError

NAN, INF = math.nan, math.inf

#: Out-of-range values of every numeric (and length-limited string) key.
BAD: dict[str, list[object]] = {
    "seed": [-1, 2**32, 1.5, True],
    "name": ["", "x" * 201],
    "data.size": [0, 31, 4097],
    "data.crop": [15, 4097],
    "data.val_fraction": [0, 1, NAN, -0.5],
    "data.batch_size": [0, -1, 65537],
    "data.num_workers": [-1, 1025, True],
    "data.channel_map": [{"green": -1}, {"green": 64}, {"red": 0, "green": 0}, {"red": 1}],
    "data.mean": [[0.1, 0.1, 0.1, NAN], [0.1, 0.1, 0.1, INF], [0.1, 0.1]],
    "data.std": [[0.1, 0.1, 0.1, 0], [0.1, 0.1, 0.1, -0.1], [0.1, 0.1, 0.1, INF]],
    "augment.crop_scale": [[0, 1], [0.5, 1.5], [NAN, 1], [0.9, 0.5]],
    "augment.brightness_contrast": [-0.1, 1.1, NAN],
    "model.name": ["", "x" * 201],
    "model.pretrained": ["", "x" * 4097],
    "model.drop_rate": [-0.1, 1.0, NAN],
    "train.epochs": [0, -1, 100_001, 2.5],
    "train.lr": [0, -1e-3, INF, NAN, True],
    "train.weight_decay": [-1e-4, INF],
    "train.warmup_epochs": [-1, INF, NAN],
    "train.focal_gamma": [-1, INF, 101],
    "train.accelerator": ["", "x" * 65],
    "train.devices": [0, -1, "-1", "0,0", "gpu", 4097, "", [0, 1], True],
    "train.num_nodes": [0, -1, 100_001],
    "train.limit_train_batches": [0, -1, 0.0, 1.5, NAN, INF, True],
    "train.loss": [{"focal": INF}, {"focal": 0}, {"focal": NAN}],
    "evaluate.fixed_threshold": [0, 1, NAN, -0.1],
    "predict.tta": [0, 9],
    "predict.batch_size": [0, 65537],
}

#: Values at or inside the edges, accepted.
GOOD: dict[str, list[object]] = {
    "seed": [0, 2**32 - 1],
    "data.size": [32, 4096],
    "data.batch_size": [1, 65536],
    "data.num_workers": [0, 1024],
    "data.mean": [[-1.0, 0.0, 1e6, 0.5]],
    "data.std": [[1e-6, 1.0, 1e6, 0.5]],
    "train.lr": [1e-9, 10.0],
    "train.warmup_epochs": [0, 0.5],
    "train.devices": [1, 4096, "auto", "2", "0,1", "0,", " 2 , 3 "],
    "train.limit_train_batches": [1, 1000, 0.01, 1.0, None],
    "train.loss": ["focal+lovasz", {"focal": 1, "lovasz": 0.5}],
    "evaluate.fixed_threshold": [0.01, 0.99],
    "predict.tta": [1, 8],
}


def tree(key: str, value: object) -> dict:
    node: dict = {}
    cur = node
    *parents, last = key.split(".")
    for part in parents:
        cur = cur.setdefault(part, {})
    cur[last] = value
    return node


def _numeric(annotation: object) -> bool:
    if annotation in (int, float):
        return True
    return any(_numeric(a) for a in typing.get_args(annotation))


def test_every_numeric_key_is_covered() -> None:
    """A new numeric key must come with its range, and with a row in BAD."""
    leaves = []
    for key in _known_keys(Config):
        model: type[BaseModel] = Config
        *parents, last = key.split(".")
        for part in parents:
            model = model.model_fields[part].annotation  # type: ignore[assignment]
        annotation = model.model_fields[last].annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)) and _numeric(annotation):
            leaves.append(key)
    assert leaves and not set(leaves) - set(BAD), sorted(set(leaves) - set(BAD))


@pytest.mark.parametrize(("key", "value"), [(k, v) for k, vs in BAD.items() for v in vs],
                         ids=lambda x: str(x)[:20])
def test_out_of_range_value_is_a_config_error_naming_key_and_value(key: str, value: object) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, base=tree(key, value))
    message = str(info.value)
    assert f"bad value for '{key}" in message, message
    assert "got " in message, message
    assert len(message) < 400, message


@pytest.mark.parametrize(("key", "value"), [(k, v) for k, vs in GOOD.items() for v in vs],
                         ids=lambda x: str(x)[:20])
def test_values_at_the_edges_are_accepted(key: str, value: object) -> None:
    cfg = load_config(None, base=tree(key, value))
    node: object = cfg
    for part in key.split("."):
        node = getattr(node, part)
    assert node is not None or value is None


def test_overrides_of_non_finite_numbers_name_key_and_value() -> None:
    for text, needle in [("train.lr=.nan", "(got nan)"), ("train.lr=inf", "(got 'inf')"),
                         ("seed=-1", "(got -1)"), ("train.limit_train_batches=0", "got 0")]:
        with pytest.raises(ConfigError, match=r"^override: bad value for '") as info:
            load_config(None, [text])
        assert needle in str(info.value), str(info.value)


def test_a_long_value_is_cut_short_in_the_message() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, ["model.name=" + "x" * 5000])
    assert len(str(info.value)) < 300 and "(5000 characters)" in str(info.value)
    with pytest.raises(ConfigError) as info:
        load_config(None, ["train." + "k" * 5000 + "=1"])
    assert len(str(info.value)) < 300 and "unknown config key" in str(info.value)
    with pytest.raises(ConfigError) as info:
        load_config(None, ["train.loss=" + "focal+" * 2000 + "dice"])
    assert len(str(info.value)) < 400


# ----------------------------------------------------------------------------- hostile YAML

BILLION_LAUGHS = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)
) + "train:\n  loss: *i\n"


def refused_fast(path: Path, *needles: str) -> str:
    start = time.perf_counter()
    with pytest.raises(ConfigError) as info:
        load_config(path)
    seconds = time.perf_counter() - start
    message = str(info.value)
    assert seconds < 1.0, f"{seconds:.2f} s"
    assert str(path) in message and len(message) < 400, message
    for needle in needles:
        assert needle in message, message
    return message


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        (BILLION_LAUGHS, ("line 2", "YAML aliases (*a) are not accepted")),
        ("train: &r {loss: *r}\n", ("YAML aliases",)),
        ("a: &x {lr: 1}\ntrain:\n  <<: *x\n", ("YAML aliases",)),
        ("train:\n  loss: " + "[" * 20_000 + "]" * 20_000 + "\n", ("line 2", "nested more than 32 levels deep")),
        ("train:\n  loss: " + "{a: " * 20_000 + "1" + "}" * 20_000 + "\n", ("larger than 64 KiB",)),
        ("train:\n  loss: " + "{a: " * 5_000 + "1" + "}" * 5_000 + "\n", ("nested more than 32 levels deep",)),
        ("train:\n  loss: [" + "1," * 20_000 + "]\n", ("more than 10,000 values",)),
        ("# " + "x" * MAX_CONFIG_BYTES + "\n", ("larger than 64 KiB",)),
        ("seed: " + "9" * 10_000 + "\n", ("a value YAML cannot read",)),
        ("name: !!python/object/apply:os.system ['true']\n", ("not valid YAML",)),
        ("train: {5: 1}\n", ("unknown config key 'train.5'",)),
        ("? [a, b]\n: 1\n", ("not valid YAML",)),
        (b"\xff\xfe".decode("latin-1") + "seed: 1\n", ("not UTF-8",)),
    ],
    ids=["billion-laughs", "recursive", "merge-key", "deep-list", "big-deep-map", "deep-map", "many-values",
         "big-file", "huge-int", "python-tag", "int-key", "list-key", "latin-1"],
)
def test_hostile_config_file_is_refused_fast(tmp_path: Path, text: str, needles: tuple[str, ...]) -> None:
    path = tmp_path / "hostile.yaml"
    path.write_bytes(text.encode("latin-1") if "not UTF-8" in needles else text.encode("utf-8"))
    refused_fast(path, *needles)


def test_deep_override_is_refused() -> None:
    with pytest.raises(ConfigError, match="nested more than 32 levels deep"):
        parse_override("train.loss=" + "[" * 20_000 + "]" * 20_000)
    with pytest.raises(ConfigError, match="nested too deeply"):
        parse_override("." * 20_000 + "=1")


def test_plain_yaml_still_loads() -> None:
    assert load_yaml("a: &anchor-without-alias 1\nb: [1, 2]\nc: {d: e}\n") == {"a": 1, "b": [1, 2], "c": {"d": "e"}}


# ----------------------------------------------------------------------------- through the CLI


def test_cli_refuses_a_billion_laughs_config(tmp_path: Path) -> None:
    root = tmp_path / "data"
    make_dataset(root / "train.csv", root / "train", n=4, size=16)
    laughs = tmp_path / "laughs.yaml"
    laughs.write_text(BILLION_LAUGHS)
    before = laughs.read_bytes()
    run = tmp_path / "run"
    result: subprocess.CompletedProcess[str] = hpa("train", root, "--config", laughs, "--out", run)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    assert str(laughs) in result.stderr and "YAML aliases (*a) are not accepted" in result.stderr
    assert not run.exists() and laughs.read_bytes() == before


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (("--set", "train.lr=nan"), ("bad value for 'train.lr'", "finite")),
        (("--set", "seed=-5"), ("bad value for 'seed'", "(got -5)")),
        (("--devices", "0"), ("bad value for 'train.devices'",)),
        (("--set", "train.limit_train_batches=1.5"), ("train.limit_train_batches", "(0, 1]")),
        (("--set", "train.loss=" + "[" * 5000), ("nested more than 32 levels deep",)),
    ],
    ids=["nan-lr", "negative-seed", "zero-devices", "fraction", "deep"],
)
def test_cli_in_process_refuses_bad_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str], args: tuple[str, ...],
                                          needles: tuple[str, ...]) -> None:
    from hpa_classify import cli
    from hpa_classify.cli.app import err_console

    monkeypatch.setattr(err_console, "_width", 1000)
    run = tmp_path / "run"
    monkeypatch.setattr(sys, "argv", ["hpa", "train", str(tmp_path / "no-data"), "--out", str(run), *args])
    with pytest.raises(SystemExit) as info:
        cli.main()
    err = capsys.readouterr().err
    assert info.value.code == 2, err
    assert "Traceback" not in err and len(err) < 500, err
    for needle in needles:
        assert needle in err, err
    assert not run.exists()


def test_a_preset_is_a_name_not_a_path(tmp_path: Path) -> None:
    import os

    from hpa_classify.config import PRESET_DIR

    outside = tmp_path / "outside.yaml"
    outside.write_text("seed: 3\n")
    name = os.path.relpath(outside.with_suffix(""), PRESET_DIR)  # ../../.../outside, as a "preset"
    assert (PRESET_DIR / f"{name}.yaml").resolve() == outside.resolve()
    with pytest.raises(ConfigError, match="is neither a file nor a preset"):
        load_config(name)
    assert load_config("demo-cpu").name  # presets by name still load
