"""The limited YAML loader of config files: plain data only, no aliases, bounded size and depth."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from hpa_classify.errors import ConfigError, brief, shorten

#: Largest config file read, in bytes (a real one is under 2 KiB).
MAX_CONFIG_BYTES = 64 * 1024
#: Deepest nesting of mappings and lists accepted in a config file or ``--set`` value.
MAX_YAML_DEPTH = 32
#: Most values (scalars, lists, mappings) in one config file or ``--set`` value.
MAX_YAML_NODES = 10_000


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
