"""Probabilities of a network on a dataset, averaged over test-time augmentation views."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from hpa_classify.classes import NUM_CLASSES
from hpa_classify.config import Config
from hpa_classify.data.dataset import HPADataset, device_stats, loader_workers, make_loader, normalize
from hpa_classify.data.layout import Dataset
from hpa_classify.progress import Progress, track

log = logging.getLogger(__name__)

#: The 8 symmetries of the square, in the order ``--tta N`` takes them.
TTA_VIEWS: tuple[tuple[str, Callable[[torch.Tensor], torch.Tensor]], ...] = (
    ("identity", lambda x: x),
    ("hflip", lambda x: x.flip(-1)),
    ("vflip", lambda x: x.flip(-2)),
    ("rot180", lambda x: x.flip(-1, -2)),
    ("transpose", lambda x: x.transpose(-1, -2)),
    ("rot90", lambda x: x.transpose(-1, -2).flip(-1)),
    ("rot270", lambda x: x.transpose(-1, -2).flip(-2)),
    ("antitranspose", lambda x: x.transpose(-1, -2).flip(-1, -2)),
)


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@torch.inference_mode()
def predict_probs(
    model: nn.Module,
    data: Dataset,
    cfg: Config,
    tta: int = 1,
    batch_size: int | None = None,
    num_workers: int | None = None,
    device: torch.device | None = None,
    progress: Progress | None = None,
) -> np.ndarray:
    """Sigmoid probabilities ``(N, 28)`` averaged over the first ``tta`` views of :data:`TTA_VIEWS`."""
    if not 1 <= tta <= len(TTA_VIEWS):
        raise ValueError(f"tta must be 1-{len(TTA_VIEWS)}, got {tta}")
    device = device or default_device()
    model = model.to(device).eval()
    use_cuda = device.type == "cuda"
    if use_cuda and cfg.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    ds = HPADataset(
        data, cfg.data.size, cfg.data.mean, cfg.data.std, None, cfg.data.channels, normalize=False
    )
    mean, std = device_stats(tuple(cfg.data.mean), tuple(cfg.data.std), tuple(cfg.data.channels), str(device))
    loader = make_loader(
        ds,
        batch_size or cfg.predict.batch_size,
        loader_workers(cfg.data.num_workers if num_workers is None else num_workers),
        shuffle=False,
    )
    dtype = autocast_dtype(cfg.train.precision, device)
    parts: list[torch.Tensor] = []
    in_flight: deque[torch.cuda.Event] = deque()
    batches = track(loader, f"predicting {len(ds)} images (TTA x{tta})", progress=progress)
    for x, _ in batches:
        x = normalize(x.to(device, non_blocking=True), mean, std)
        # kept on the device: no wait for the GPU after every batch
        parts.append(predict_batch(model, x, tta, channels_last=use_cuda and cfg.train.channels_last, dtype=dtype))
        if use_cuda:  # but at most two batches ahead of it
            in_flight.append(torch.cuda.Event())
            in_flight[-1].record()
            if len(in_flight) > 2:
                in_flight.popleft().synchronize()
    if not parts:
        return np.zeros((0, NUM_CLASSES), np.float32)
    return torch.cat(parts).cpu().numpy().astype(np.float32, copy=False)


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast type prediction runs in, following ``train.precision`` (None: float32).

    ``auto`` is bfloat16 on a GPU that has it (float16 on one that has not)
    and float32 on the CPU, as in training.

    >>> autocast_dtype("auto", torch.device("cpu")), autocast_dtype("16-mixed", torch.device("cuda"))
    (None, torch.float16)
    """
    if precision == "32":
        return None
    if precision == "bf16-mixed":
        return torch.bfloat16
    if precision == "16-mixed":
        return torch.float16
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def predict_batch(
    model: nn.Module,
    x: torch.Tensor,
    tta: int = 1,
    channels_last: bool = False,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Sigmoid probabilities of one normalised batch ``x``, the mean over the first ``tta`` views.

    Runs under autocast to ``dtype`` when given (see :func:`autocast_dtype`);
    the result stays on ``x``'s device.
    """
    acc = torch.zeros(len(x), NUM_CLASSES, device=x.device)
    for _, view in TTA_VIEWS[:tta]:
        v = view(x)
        if channels_last:
            v = v.contiguous(memory_format=torch.channels_last)
        with torch.autocast(x.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            acc += torch.sigmoid(model(v).float())
    return acc / tta
