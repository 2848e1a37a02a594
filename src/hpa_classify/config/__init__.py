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

Modules: ``_models`` (the pydantic models), ``_yaml`` (the limited YAML
loader), ``_keys`` (checking, merging and validating keys), ``_load``
(presets, files, overrides, saving), ``_diff`` (flat keys, changed keys).

>>> cfg = load_config(None, ["train.epochs=3", "model.name=resnet18"])
>>> cfg.train.epochs, cfg.model.name
(3, 'resnet18')
>>> load_config(None, ["train.epoch=3"])
Traceback (most recent call last):
...
hpa_classify.errors.ConfigError: unknown config key 'train.epoch' (did you mean 'train.epochs'?)
"""

from hpa_classify.config._diff import changed_keys, flat_config
from hpa_classify.config._keys import _known_keys as _known_keys
from hpa_classify.config._load import (
    PRESET_DIR,
    config_to_yaml,
    list_presets,
    load_config,
    parse_override,
    read_run_config,
    resolve_config_path,
    save_config,
)
from hpa_classify.config._models import (
    LOSS_NAMES,
    MAX_SEED,
    AugmentConfig,
    Config,
    DataConfig,
    EvaluateConfig,
    ModelConfig,
    PredictConfig,
    TrainConfig,
    loss_terms,
)
from hpa_classify.config._yaml import MAX_CONFIG_BYTES, MAX_YAML_DEPTH, MAX_YAML_NODES, load_yaml

__all__ = [
    "LOSS_NAMES",
    "MAX_CONFIG_BYTES",
    "MAX_SEED",
    "MAX_YAML_DEPTH",
    "MAX_YAML_NODES",
    "PRESET_DIR",
    "AugmentConfig",
    "Config",
    "DataConfig",
    "EvaluateConfig",
    "ModelConfig",
    "PredictConfig",
    "TrainConfig",
    "changed_keys",
    "config_to_yaml",
    "flat_config",
    "list_presets",
    "load_config",
    "load_yaml",
    "loss_terms",
    "parse_override",
    "read_run_config",
    "resolve_config_path",
    "save_config",
]
