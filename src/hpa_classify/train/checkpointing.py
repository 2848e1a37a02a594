"""Checkpoints that survive interruptions: written atomically, checked before use.

Lightning writes ``checkpoints/best.ckpt`` and ``checkpoints/last.ckpt`` through
:class:`AtomicCheckpointIO`: each goes to a temporary file beside its target,
is flushed to disk, then renamed onto it. A run killed at any moment leaves the
previous checkpoint or the new one, never half of one. ``hpa train --resume``
continues from ``last.ckpt``; :func:`hpa_classify.inference.checkpoints.read_checkpoint`
turns a damaged or unsafe file into a :class:`~hpa_classify.errors.RunError`
naming it before any work starts.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from hpa_classify.fileio import atomic_path

log = logging.getLogger(__name__)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint I/O, with local files written by temp file + fsync + rename.

    Remote paths (``s3://`` and the like) are left to Lightning's own writer.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike[str], storage_options: Any | None = None
    ) -> None:
        if "://" in str(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options for local files")
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                torch.save(checkpoint, fh)
                fh.flush()
                os.fsync(fh.fileno())
        log.debug("saved checkpoint %s", path)
