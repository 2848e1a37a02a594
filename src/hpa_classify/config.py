"""Typed experiment configuration: pydantic models, YAML files, dotted overrides.

A configuration file holds only the keys it changes; everything else keeps the
defaults below. ``--set train.lr=0.001`` overrides one key from the command
line. An unknown key or a bad value is a :class:`ConfigError` naming the key.

Every number has a range (seeds 0 to 2**32-1, sizes and counts > 0, rates
finite and > 0, fractions and probabilities in [0, 1]); a boolean is not a
number. Config files are read as plain data with limits: at most
:data:`MAX_CONFIG_BYTES` and :data:`MAX_YAML_NODES` values, nested at most
:data:`MAX_YAML_DEPTH` levels, and no YAML aliases (``*name``), which could
expand a few lines into gigabytes.

>>> cfg = load_config(None, ["train.epochs=3", "model.name=resnet18"])
>>> cfg.train.epochs, cfg.model.name
(3, 'resnet18')
>>> load_config(None, ["train.epoch=3"])
Traceback (most recent call last):
...
hpa_classify.errors.ConfigError: unknown config key 'train.epoch' (did you mean 'train.epochs'?)
"""

from __future__ import annotations

import difflib
import math
import re
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from hpa_classify.classes import CHANNELS, DEFAULT_MEAN, DEFAULT_STD
from hpa_classify.errors import ConfigError, brief, shorten
from hpa_classify.fileio import write_text

PRESET_DIR = Path(__file__).parent / "configs"

#: Largest config file read, in bytes (a real one is under 2 KiB).
MAX_CONFIG_BYTES = 64 * 1024
#: Deepest nesting of mappings and lists accepted in a config file or ``--set`` value.
MAX_YAML_DEPTH = 32
#: Most values (scalars, lists, mappings) in one config file or ``--set`` value.
MAX_YAML_NODES = 10_000
#: Largest seed (NumPy and PyTorch seeds are 32-bit).
MAX_SEED = 2**32 - 1

#: Losses ``train.loss`` may name (see :mod:`hpa_classify.train.losses`).
LOSS_NAMES = ("bce", "focal", "lovasz", "soft_f1")


def loss_terms(spec: str | dict[str, float]) -> dict[str, float]:
    """The losses and weights of a ``train.loss`` value.

    A name, names joined by ``+`` (weight 1 each) or a mapping name -> weight.

    >>> loss_terms("focal+lovasz")
    {'focal': 1.0, 'lovasz': 1.0}
    >>> loss_terms({"focal": 1, "lovasz": 0.5})
    {'focal': 1.0, 'lovasz': 0.5}
    >>> loss_terms("focal+dice")
    Traceback (most recent call last):
    ...
    ValueError: unknown loss 'dice' (bce, focal, lovasz, soft_f1)
    """
    if isinstance(spec, str):
        names = [n.strip() for n in spec.split("+")]
        if any(not n for n in names):
            raise ValueError(f"{brief(spec)} has an empty term; write e.g. focal+lovasz")
        if len(set(names)) != len(names):
            raise ValueError(f"{brief(spec)} names a loss twice")
        terms = {n: 1.0 for n in names}
    elif isinstance(spec, dict):
        if not spec:
            raise ValueError("the mapping of losses to weights is empty")
        terms = {}
        for name, weight in spec.items():
            if (
                isinstance(weight, bool)
                or not isinstance(weight, (int, float))
                or not 0 < weight < math.inf
            ):
                raise ValueError(f"the weight of {brief(name)} must be a finite number > 0, got {brief(weight)}")
            terms[str(name)] = float(weight)
    else:
        raise ValueError(f"must be a loss name or a mapping of losses to weights, got {brief(spec)}")
    for name in terms:
        if name not in LOSS_NAMES:
            raise ValueError(f"unknown loss {brief(name)} ({', '.join(LOSS_NAMES)})")
    return terms


def _allows_bool(annotation: object) -> bool:
    if annotation is bool:
        return True
    return any(_allows_bool(a) for a in typing.get_args(annotation))


class _Strict(BaseModel):
    # allow_inf_nan=False: every float of every section must be finite
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_as_number(cls, v: object, info: ValidationInfo) -> object:
        # pydantic reads true as 1 for a number; YAML's yes/no/on/off make that an easy slip
        field = cls.model_fields.get(info.field_name or "")
        if field is None or _allows_bool(field.annotation):
            return v
        values = v if isinstance(v, (list, tuple)) else [v]
        if any(isinstance(x, bool) for x in values):
            raise ValueError("a boolean (true/false, yes/no, on/off) is not accepted here")
        return v


class DataConfig(_Strict):
    """How samples are read and batched."""

    size: int = Field(512, ge=32, le=4096, description="side of the square model input, px")
    crop: int | None = Field(
        None,
        ge=16,
        le=4096,
        description="train on random crops of this side from the image resized to data.size; "
        "validate and predict on the whole image (none: no crop)",
    )
    val_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    batch_size: int = Field(32, ge=1, le=65536)
    num_workers: int = Field(2, ge=0, le=1024)
    mean: tuple[float, float, float, float] = DEFAULT_MEAN
    std: tuple[float, float, float, float] = DEFAULT_STD
    skip_invalid: bool = False
    channels: tuple[Literal["red", "green", "blue", "yellow"], ...] = Field(
        CHANNELS,  # type: ignore[arg-type]
        description="channels fed to the model, by name; e.g. [red, green, blue] drops yellow",
    )

    @field_validator("channels")
    @classmethod
    def _distinct_channels(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("at least one channel is needed")
        if len(set(v)) != len(v):
            raise ValueError(f"each channel at most once, got {list(v)}")
        return v

    @field_validator("crop")
    @classmethod
    def _crop_fits(cls, v: int | None, info: ValidationInfo) -> int | None:
        size = info.data.get("size")
        if v is not None and size is not None and v > size:
            raise ValueError(f"crop {v} is larger than data.size {size}")
        return v

    @field_validator("std")
    @classmethod
    def _positive_std(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if any(s <= 0 for s in v):
            raise ValueError("every std must be > 0")
        return v


class AugmentConfig(_Strict):
    """Training-time augmentations (albumentations), all on 4 channels."""

    enabled: bool = True
    hflip: bool = True
    vflip: bool = True
    rot90: bool = True
    crop_scale: tuple[float, float] = (0.7, 1.0)
    brightness_contrast: float = Field(0.15, ge=0.0, le=1.0)

    @field_validator("crop_scale")
    @classmethod
    def _scale_range(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not 0.0 < v[0] <= v[1] <= 1.0:
            raise ValueError("crop_scale must satisfy 0 < low <= high <= 1")
        return v


class ModelConfig(_Strict):
    """Backbone and where its pretrained weights come from."""

    name: str = Field("tf_efficientnet_lite0", min_length=1, max_length=200)
    pretrained: str = Field(
        "auto",
        min_length=1,
        max_length=4096,
        description="none | auto | timm | bundled | path to a checkpoint",
    )
    drop_rate: float = Field(0.2, ge=0.0, lt=1.0)
    fourth_channel_init: Literal["red", "green", "blue", "mean", "zero"] = "red"
    global_pool: Literal["avg", "max", "avgmax", "catavgmax"] | None = Field(
        None,
        description="timm global pooling; catavgmax concatenates average and max pooling "
        "(none: the architecture's default)",
    )


class TrainConfig(_Strict):
    """Optimisation and hardware."""

    epochs: int = Field(10, ge=1, le=100_000)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    warmup_epochs: float = Field(1.0, ge=0, le=100_000)
    scheduler: Literal["cosine", "onecycle", "none"] = "cosine"
    loss: str | dict[str, float] = Field(
        "bce",
        description="bce | focal | lovasz | soft_f1, a sum like focal+lovasz, or {focal: 1.0, lovasz: 0.5}",
    )
    focal_gamma: float = Field(2.0, ge=0, le=100)
    precision: Literal["auto", "32", "bf16-mixed", "16-mixed"] = "auto"
    accelerator: str = Field("auto", min_length=1, max_length=64)
    devices: int | str = Field(
        1, description="devices per machine: a count >= 1, 'auto', or device indices like '0,1'"
    )
    num_nodes: int = Field(
        1, ge=1, le=100_000, description="machines of a distributed run (torchrun or SLURM start the processes)"
    )
    channels_last: bool = True
    compile: bool = False
    deterministic: bool = False
    limit_train_batches: float | int | None = Field(
        None, description="batches per epoch: a count >= 1 (int) or a fraction in (0, 1] (float)"
    )

    @field_validator("devices")
    @classmethod
    def _device_spec(cls, v: int | str) -> int | str:
        if isinstance(v, int):
            if not 1 <= v <= 4096:
                raise ValueError(f"a device count must be 1-4096 ('auto' for all devices), got {v}")
            return v
        text = v.strip()
        if text == "auto" or (text.isdigit() and 1 <= int(text) <= 4096):
            return text
        if _DEVICE_LIST.fullmatch(text):
            indices = [int(i) for i in text.split(",") if i.strip()]
            if len(set(indices)) == len(indices) and all(i < 4096 for i in indices):
                return text
        raise ValueError(f"expected a count >= 1, 'auto' or device indices like '0,1', got {brief(v)}")

    @field_validator("limit_train_batches")
    @classmethod
    def _batch_limit(cls, v: float | int | None) -> float | int | None:
        if isinstance(v, int) and v < 1:
            raise ValueError(f"a count of batches must be >= 1, got {v}")
        if isinstance(v, float) and not 0.0 < v <= 1.0:
            raise ValueError(f"a fraction of the batches must be in (0, 1], got {v} (write an int for a count)")
        return v

    @field_validator("precision", mode="before")
    @classmethod
    def _precision_as_text(cls, v: object) -> object:
        # `--set train.precision=32` reads 32 as a number; the key takes it as "32".
        return str(v) if isinstance(v, int) and not isinstance(v, bool) else v

    @field_validator("loss")
    @classmethod
    def _known_losses(cls, v: str | dict[str, float]) -> str | dict[str, float]:
        loss_terms(v)
        return v


# "0,1", "0," (Lightning's one-device list), " 2 , 3 "
_DEVICE_LIST = re.compile(r"\d+(\s*,\s*\d+)*\s*,?")


class EvaluateConfig(_Strict):
    """How probabilities become labels."""

    threshold_method: Literal["search", "prior", "fixed"] = "search"
    fixed_threshold: float = Field(0.5, gt=0.0, lt=1.0)
    pr_figures: bool = Field(
        True,
        description="figures drawn from labels and probabilities in reports: per-class precision-recall, "
        "label counts and example images (slow on a CPU); the class-F1 and training-curve figures stay",
    )


class PredictConfig(_Strict):
    tta: int = Field(4, ge=1, le=8)
    batch_size: int = Field(64, ge=1, le=65536)


class Config(_Strict):
    """A whole experiment."""

    name: str = Field("experiment", min_length=1, max_length=200)
    seed: int = Field(0, ge=0, le=MAX_SEED)
    data: DataConfig = DataConfig()
    augment: AugmentConfig = AugmentConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    predict: PredictConfig = PredictConfig()


def _known_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys: list[str] = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        keys.append(key)
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            keys.extend(_known_keys(ann, key + "."))
    return keys


def _unknown_key_error(key: str) -> ConfigError:
    close = difflib.get_close_matches(key, _known_keys(Config), n=1) if len(key) <= 100 else []
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    shown = f"'{key}'" if len(key) <= 80 else brief(key)
    return ConfigError(f"unknown config key {shown}{hint}")


def _check_keys(tree: dict[Any, Any], model: type[BaseModel], prefix: str = "") -> None:
    for key, value in tree.items():
        field = model.model_fields.get(key) if isinstance(key, str) else None
        if field is None:
            raise _unknown_key_error(f"{prefix}{key}")
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            if not isinstance(value, dict):
                raise ConfigError(f"config key '{prefix}{key}' must be a mapping, got {brief(value)}")
            _check_keys(value, ann, prefix + key + ".")


def _section(model: type[BaseModel] | None, key: str) -> type[BaseModel] | None:
    field = model.model_fields.get(key) if model is not None else None
    ann = field.annotation if field is not None else None
    return ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None


def _check_keys_in(tree: dict[str, Any], path: Path) -> None:
    """:func:`_check_keys` for the keys of one file; the error names the file."""
    try:
        _check_keys(tree, Config)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _merge(
    base: dict[str, Any], update: dict[str, Any], model: type[BaseModel] | None = None
) -> dict[str, Any]:
    """``update`` over ``base``: config sections merge key by key, other values replace.

    A mapping that is a value (``train.loss: {focal: 1, lovasz: 1}``) replaces
    the one below it as a whole, so an override never mixes two loss recipes.
    """
    model = model or Config
    out = dict(base)
    for key, value in update.items():
        section = _section(model, key)
        if section is not None and isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value, section)
        else:
            out[key] = value
    return out


def parse_override(text: str) -> dict[str, Any]:
    """Turn ``"a.b=value"`` into ``{"a": {"b": value}}``, the value read as YAML.

    >>> parse_override("train.lr=3e-4")
    {'train': {'lr': 0.0003}}
    >>> parse_override("augment.crop_scale=[0.5, 1.0]")
    {'augment': {'crop_scale': [0.5, 1.0]}}
    """
    if "=" not in text:
        raise ConfigError(f"override {brief(text)} must look like key=value, e.g. train.lr=0.001")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override {brief(text)} has no key")
    if key.count(".") > MAX_YAML_DEPTH:
        raise ConfigError(f"override key {brief(key)} is nested too deeply")
    try:
        value = load_yaml(raw, f"override {brief(key)}") if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    # YAML reads 3e-4 as a string; numbers like that should be floats.
    if isinstance(value, str):
        try:
            value = float(value) if any(c in value for c in ".eE") else value
        except ValueError:
            pass
    node: dict[str, Any] = {}
    cur = node
    parts = key.split(".")
    for part in parts[:-1]:
        cur = cur.setdefault(part, {})
    cur[parts[-1]] = value
    return node


def resolve_config_path(name_or_path: str | Path) -> Path:
    """A path to a YAML file, or the name of a preset shipped with the package."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    name = str(name_or_path)
    if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):  # a preset is a name, never a path
        preset = PRESET_DIR / f"{name}.yaml"
        if preset.is_file():
            return preset
    presets = ", ".join(list_presets()) or "none"
    raise ConfigError(f"config {brief(name)} is neither a file nor a preset (presets: {presets})")


def list_presets() -> list[str]:
    """Names of the presets shipped in ``hpa_classify/configs``."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


class _LimitedLoader(yaml.SafeLoader):
    """PyYAML's safe loader (plain data only) that refuses aliases, deep nesting and many nodes.

    An alias repeats a node by reference; nine levels of nine aliases make a
    few hundred bytes expand into a billion values when walked. Composition
    is recursive: a 20,000-deep ``[[[...]]]`` would end in RecursionError.
    And the pure-Python loader builds some 30,000 values a second, so their
    number is capped as well.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._nodes = 0

    def compose_node(self, parent: Any, index: Any) -> Any:  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise _YAMLLimit(
                f"line {event.start_mark.line + 1}: YAML aliases (*{brief(event.anchor, 40)[1:-1]}) are not "
                "accepted in config files; write the value out"
            )
        self._depth += 1
        self._nodes += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                mark = self.peek_event().start_mark
                raise _YAMLLimit(f"line {mark.line + 1}: nested more than {MAX_YAML_DEPTH} levels deep")
            if self._nodes > MAX_YAML_NODES:
                mark = self.peek_event().start_mark
                raise _YAMLLimit(f"line {mark.line + 1}: more than {MAX_YAML_NODES:,} values; not a config file")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class _YAMLLimit(Exception):
    """A YAML text broke a limit of :class:`_LimitedLoader`."""


def load_yaml(text: str, source: str = "YAML") -> Any:
    """Plain data from YAML text, with the limits of a config file.

    Only YAML's standard types are built (no Python objects); aliases, nesting
    deeper than :data:`MAX_YAML_DEPTH`, more than :data:`MAX_YAML_NODES` values
    and integers of thousands of digits are a :class:`ConfigError` naming
    ``source``. Other syntax errors are
    ``yaml.YAMLError``.

    >>> load_yaml("train: {lr: 0.1}")
    {'train': {'lr': 0.1}}
    >>> load_yaml("a: &x [1]\\nb: *x", "exp.yaml")
    Traceback (most recent call last):
    ...
    hpa_classify.errors.ConfigError: exp.yaml: line 2: YAML aliases (*x) are not accepted in config files; write the value out
    """
    loader = _LimitedLoader(text)
    try:
        return loader.get_single_data()
    except _YAMLLimit as exc:
        raise ConfigError(f"{source}: {exc}") from None
    except (ValueError, RecursionError) as exc:  # int() of a 5000-digit number, and the like
        raise ConfigError(f"{source}: a value YAML cannot read ({shorten(str(exc), 80)})") from None
    finally:
        loader.dispose()


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES // 1024} KiB; not a config file")
    try:
        tree = load_yaml(raw.decode("utf-8-sig"), str(path))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {shorten(str(exc), 600)}") from None
    if tree is None:
        return {}
    if not isinstance(tree, dict):
        raise ConfigError(f"{path}: must hold a mapping of config keys, got {type(tree).__name__}")
    return tree


def _error_key(loc: tuple[int | str, ...]) -> str:
    """The dotted config key of a pydantic error location, without union type tags."""
    known = set(_known_keys(Config))
    parts = [str(p) for p in loc]
    prefixes = [i for i in range(1, len(parts) + 1) if ".".join(parts[:i]) in known]
    n = prefixes[-1] if prefixes else len(parts)
    while n < len(parts) and isinstance(loc[n], int):
        n += 1
    return ".".join(parts[:n])


def _is_set_in(tree: dict[str, Any], key: str) -> bool:
    node: Any = tree
    for part in key.split("."):
        if not isinstance(node, dict):
            return True  # an override set a value above this key
        if part not in node:
            return False
        node = node[part]
    return True


def _validate(
    tree: dict[str, Any], origin: str, overrides: dict[str, Any] | None = None
) -> Config:
    _check_keys(tree, Config)
    try:
        return Config.model_validate(tree)
    except ValidationError as exc:
        errors = exc.errors()
        key = _error_key(errors[0]["loc"])
        # of a union's errors (one per type it allows), the one that got furthest in
        err = max((e for e in errors if _error_key(e["loc"]) == key), key=lambda e: len(e["loc"]))
        where = "override" if overrides and _is_set_in(overrides, key) else origin
        msg = err["msg"].removeprefix("Value error, ")
        got = "" if "got " in msg else f" (got {brief(err.get('input'))})"
        raise ConfigError(f"{where}: bad value for '{key}': {shorten(msg)}{got}") from None


def load_config(
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    base: dict[str, Any] | None = None,
) -> Config:
    """Defaults, then ``base``, then the file at ``path`` (or preset), then overrides."""
    tree: dict[str, Any] = dict(base or {})
    origin = "config"
    if path is not None:
        resolved = resolve_config_path(path)
        origin = str(resolved)
        file_tree = _read_yaml(resolved)
        _check_keys_in(file_tree, resolved)
        tree = _merge(tree, file_tree)
    override_tree: dict[str, Any] = {}
    for text in overrides or []:
        override_tree = _merge(override_tree, parse_override(text))
    return _validate(_merge(tree, override_tree), origin, override_tree)


def flat_config(cfg: Config) -> dict[str, Any]:
    """Every key of ``cfg`` as a dotted name with its value (mappings as values stay whole).

    >>> flat = flat_config(load_config(None, ["train.loss=focal+lovasz"]))
    >>> flat["train.loss"], flat["model.name"]
    ('focal+lovasz', 'tf_efficientnet_lite0')
    """

    def walk(node: BaseModel, prefix: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in type(node).model_fields:
            value = getattr(node, name)
            if isinstance(value, BaseModel):
                out.update(walk(value, f"{prefix}{name}."))
            else:
                out[f"{prefix}{name}"] = value
        return out

    flat = walk(cfg, "")
    return {k: list(v) if isinstance(v, tuple) else v for k, v in flat.items()}


def config_to_yaml(cfg: Config) -> str:
    """The fully resolved configuration as YAML."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)


def save_config(cfg: Config, path: str | Path) -> Path:
    """Write the fully resolved configuration atomically."""
    return write_text(path, config_to_yaml(cfg))


def read_run_config(path: str | Path) -> Config:
    """Load a ``config.yaml`` written by :func:`save_config`."""
    path = Path(path)
    tree = _read_yaml(path)
    _check_keys_in(tree, path)
    return _validate(tree, str(path))


def changed_keys(was: Config, now: Config) -> str:
    """The dotted keys whose values differ between two configs, as text ('' when none).

    >>> a = load_config(None, [])
    >>> changed_keys(a, load_config(None, ["train.lr=0.5"]))
    'train.lr (0.001 then, 0.5 now)'
    """
    old, new = flat_config(was), flat_config(now)
    keys = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    shown = ", ".join(f"{k} ({old.get(k)!r} then, {new.get(k)!r} now)" for k in keys[:5])
    return shown + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")
