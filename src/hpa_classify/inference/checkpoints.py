"""Reading training checkpoints safely: tensors and plain containers only, never code.

A checkpoint is a pickle, and a pickle can name any callable to run while it
loads. Every checkpoint is therefore read with ``torch.load(weights_only=True)``,
which unpickles tensors, numbers, strings and the standard containers and
refuses everything else; a file that needs more is refused with a
:class:`~hpa_classify.errors.RunError` naming it. A run folder from someone
else can be opened without running anything from it.
"""

from __future__ import annotations

import logging
import os
import pickle
from pathlib import Path
from typing import Any

import torch

from hpa_classify.errors import RunError

log = logging.getLogger(__name__)

#: Prefixes the network's parameter names carry in a training checkpoint: the
#: LightningModule's attribute, and the wrapper ``torch.compile`` adds.
STATE_PREFIXES = ("model.", "_orig_mod.")


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a checkpoint on the CPU, tensors and plain data only.

    Raises
    ------
    RunError
        When the file is missing, damaged, not a training checkpoint, or holds
        objects other than tensors and plain containers (it is not unpickled).
    """
    path = Path(path)
    if not path.is_file():
        raise RunError(f"{path}: checkpoint not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise RunError(
            f"{path}: refused: the checkpoint holds objects other than tensors and plain data "
            f"({first}); it was not loaded, and nothing in it ran"
        ) from None
    except Exception as exc:  # torch raises many kinds on a truncated or foreign file
        raise RunError(f"{path}: unreadable checkpoint ({type(exc).__name__}); is it truncated?") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("state_dict"), dict):
        raise RunError(f"{path}: not a training checkpoint (no state_dict)")
    return obj


def model_state(checkpoint: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The network's parameters of a training checkpoint, names as the bare network has them.

    Drops the LightningModule's ``model.`` prefix and the ``_orig_mod.`` of a
    compiled network, so checkpoints of compiled and plain training load alike.

    >>> state = {"model._orig_mod.fc.weight": 1, "model.fc.bias": 2, "loss.pos_weight": 3}
    >>> sorted(model_state({"state_dict": state}))
    ['fc.bias', 'fc.weight']
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in checkpoint["state_dict"].items():
        if not key.startswith(STATE_PREFIXES[0]):
            continue
        name = key[len(STATE_PREFIXES[0]) :]
        while any(name.startswith(p) for p in STATE_PREFIXES[1:]):
            name = name.split(".", 1)[1]
        out[name] = value
    return out
