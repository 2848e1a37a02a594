"""A config as dotted keys, and the keys two configs differ in."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from hpa_classify.config._models import Config


def flat_config(cfg: Config) -> dict[str, Any]:
    """Every key of ``cfg`` as a dotted name with its value (mappings as values stay whole).

    >>> from hpa_classify.config import load_config
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


def changed_keys(was: Config, now: Config) -> str:
    """The dotted keys whose values differ between two configs, as text ('' when none).

    >>> from hpa_classify.config import load_config
    >>> a = load_config(None, [])
    >>> changed_keys(a, load_config(None, ["train.lr=0.5"]))
    'train.lr (0.001 then, 0.5 now)'
    """
    old, new = flat_config(was), flat_config(now)
    keys = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    shown = ", ".join(f"{k} ({old.get(k)!r} then, {new.get(k)!r} now)" for k in keys[:5])
    return shown + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")
