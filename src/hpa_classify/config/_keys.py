"""Config keys: unknown keys named (with the closest known one), sections merged, values
validated with errors that name the key and where it was set."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from hpa_classify.config._models import Config
from hpa_classify.errors import ConfigError, brief, shorten


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
