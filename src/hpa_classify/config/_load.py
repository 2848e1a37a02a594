"""Loading a config: presets, files, dotted overrides; saving and reading a run's config."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from hpa_classify.config._keys import _check_keys_in, _merge, _validate
from hpa_classify.config._models import Config
from hpa_classify.config._yaml import MAX_YAML_DEPTH, _read_yaml, load_yaml
from hpa_classify.errors import ConfigError, brief
from hpa_classify.fileio import write_text

#: The presets shipped with the package, in ``hpa_classify/configs``.
PRESET_DIR = Path(__file__).parent.parent / "configs"


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
