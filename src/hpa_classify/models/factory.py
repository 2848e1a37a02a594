"""One factory for every backbone: any timm architecture with a 4-channel stem."""

from __future__ import annotations

import difflib
import logging
from collections.abc import Sequence

import timm
import torch
from torch import nn

from hpa_classify.classes import CHANNELS, NUM_CLASSES
from hpa_classify.errors import ConfigError
from hpa_classify.models.weights import pretrained_state_dict

log = logging.getLogger(__name__)


def grow_stem(weight: torch.Tensor, in_chans: int, init: str = "red") -> torch.Tensor:
    """Extend a pretrained RGB stem weight ``(O, 3, k, k)`` to ``in_chans`` inputs.

    The RGB filters are kept unchanged. Each extra channel starts as a copy of
    the ``init`` channel's filters (``red``: the microtubule channel, which
    looks most like the yellow ER channel), their ``mean`` or zeros.

    >>> w = torch.randn(8, 3, 3, 3)
    >>> w4 = grow_stem(w, 4, "red")
    >>> bool(torch.equal(w4[:, :3], w)), bool(torch.equal(w4[:, 3], w[:, 0]))
    (True, True)
    """
    if weight.shape[1] == in_chans:
        return weight
    if weight.shape[1] != 3 or in_chans < 3:
        raise ConfigError(f"cannot adapt a stem with {weight.shape[1]} inputs to {in_chans}")
    if init in ("red", "green", "blue"):
        extra = weight[:, CHANNELS.index(init) : CHANNELS.index(init) + 1]
    elif init == "mean":
        extra = weight.mean(dim=1, keepdim=True)
    elif init == "zero":
        extra = torch.zeros_like(weight[:, :1])
    else:
        raise ConfigError(f"unknown fourth_channel_init '{init}' (red, green, blue, mean, zero)")
    return torch.cat([weight] + [extra] * (in_chans - 3), dim=1)


def stem_for_channels(weight: torch.Tensor, channels: Sequence[str], init: str = "red") -> torch.Tensor:
    """Pick a pretrained RGB stem's filters ``(O, 3, k, k)`` for the named input ``channels``.

    Red, green and blue keep their own ImageNet filters, wherever they stand
    in ``channels``; yellow starts as :func:`grow_stem` starts a fourth
    channel (``init``). A stem that already has ``len(channels)`` inputs (a
    checkpoint of this package) is returned unchanged.

    >>> w = torch.randn(8, 3, 3, 3)
    >>> bool(torch.equal(stem_for_channels(w, ["red", "green", "blue"]), w))
    True
    >>> bool(torch.equal(stem_for_channels(w, ["red", "green", "blue", "yellow"]), grow_stem(w, 4)))
    True
    >>> stem_for_channels(w, ["green", "yellow"], "blue").shape
    torch.Size([8, 2, 3, 3])
    """
    if weight.shape[1] == len(channels) and weight.shape[1] != 3:
        return weight
    if weight.shape[1] != 3:
        raise ConfigError(f"cannot adapt a stem with {weight.shape[1]} inputs to channels {list(channels)}")
    extra = grow_stem(weight, 4, init)[:, 3:4]
    rgb = CHANNELS[:3]
    planes = [weight[:, rgb.index(c) : rgb.index(c) + 1] if c in rgb else extra for c in channels]
    return torch.cat(planes, dim=1)


def _create(name: str, **kwargs: object) -> nn.Module:
    try:
        return timm.create_model(name, pretrained=False, **kwargs)
    except RuntimeError as exc:
        if "Unknown model" not in str(exc):
            raise
        close = difflib.get_close_matches(name, timm.list_models(), n=6)
        hint = f"; similar: {', '.join(close)}" if close else ""
        raise ConfigError(f"unknown model '{name}' (any timm architecture name{hint})") from None


def build_model(
    name: str,
    pretrained: str = "none",
    in_chans: int = len(CHANNELS),
    num_classes: int = NUM_CLASSES,
    drop_rate: float = 0.0,
    fourth_channel_init: str = "red",
    channels: Sequence[str] | None = None,
    global_pool: str | None = None,
) -> nn.Module:
    """Build timm architecture ``name`` with ``in_chans`` inputs and ``num_classes`` outputs.

    Parameters
    ----------
    pretrained : str
        ``none``, ``auto``, ``timm``, ``bundled`` or a checkpoint path
        (see :mod:`hpa_classify.models.weights`). The ImageNet stem is grown to
        ``in_chans`` channels with :func:`grow_stem`; the classifier is new
        unless ``num_classes`` is 1000.
    channels : sequence of str, optional
        The input channels by name (``data.channels``); when given, it sets
        ``in_chans`` and the stem is built by :func:`stem_for_channels`.
    global_pool : str, optional
        timm's pooling before the classifier (``avg``, ``max``, ``avgmax``,
        ``catavgmax``); None keeps the architecture's default.

    Examples
    --------
    >>> m = build_model("resnet18", in_chans=4, num_classes=28)
    >>> m(torch.zeros(1, 4, 64, 64)).shape
    torch.Size([1, 28])
    """
    if channels is not None:
        in_chans = len(channels)
    extra: dict[str, object] = {} if global_pool is None else {"global_pool": global_pool}
    model = _create(name, in_chans=in_chans, num_classes=num_classes, drop_rate=drop_rate, **extra)
    model.pretrained_source = "none"  # type: ignore[assignment]
    if pretrained == "none":
        return model
    state, used = pretrained_state_dict(name, pretrained)
    cfg = model.pretrained_cfg
    first = cfg.get("first_conv")
    firsts = [first] if isinstance(first, str) else list(first or [])
    for conv in firsts:
        key = f"{conv}.weight"
        if key in state:
            if channels is not None:
                state[key] = stem_for_channels(state[key], channels, fourth_channel_init)
            else:
                state[key] = grow_stem(state[key], in_chans, fourth_channel_init)
    own = model.state_dict()
    dropped = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    for k in dropped:
        del state[k]
    result = model.load_state_dict(state, strict=False)
    classifier = cfg.get("classifier")
    heads = [classifier] if isinstance(classifier, str) else list(classifier or [])
    missing = [k for k in result.missing_keys if not any(k.startswith(h + ".") for h in heads)]
    if missing or result.unexpected_keys:
        raise ConfigError(
            f"pretrained weights ({used}) do not fit '{name}': missing {missing[:5]}, "
            f"unexpected {result.unexpected_keys[:5]}"
        )
    model.pretrained_source = used  # type: ignore[assignment]
    log.info("%s: ImageNet weights from %s, stem grown to %d channels", name, used, in_chans)
    return model
