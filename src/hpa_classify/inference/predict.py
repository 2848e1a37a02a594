"""Prediction with test-time augmentation, into a Kaggle submission and a probability table."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from hpa_classify.classes import NUM_CLASSES, format_target
from hpa_classify.config import Config
from hpa_classify.data.dataset import HPADataset, make_loader, normalize, scaled_stats
from hpa_classify.data.layout import Dataset
from hpa_classify.distributed import is_global_zero, sharded, wants_distributed
from hpa_classify.errors import HPAError
from hpa_classify.fileio import write_csv
from hpa_classify.runs import Run, load_model

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
    progress: bool = True,
) -> np.ndarray:
    """Sigmoid probabilities ``(N, 28)`` averaged over the first ``tta`` views."""
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
    mean, std = scaled_stats(cfg.data.mean, cfg.data.std, cfg.data.channels)
    loader = make_loader(
        ds,
        batch_size or cfg.predict.batch_size,
        cfg.data.num_workers if num_workers is None else num_workers,
        shuffle=False,
    )
    parts: list[torch.Tensor] = []
    in_flight: deque[torch.cuda.Event] = deque()
    batches = loader
    if progress:
        from rich.progress import track

        batches = track(loader, description=f"predicting {len(ds)} images (TTA x{tta})")
    for x, _ in batches:
        x = normalize(x.to(device, non_blocking=True), mean, std)
        acc = torch.zeros(len(x), NUM_CLASSES, device=device)
        for _, view in TTA_VIEWS[:tta]:
            v = view(x)
            if use_cuda and cfg.train.channels_last:
                v = v.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_cuda):
                acc += torch.sigmoid(model(v).float())
        parts.append(acc / tta)  # kept on the device: no wait for the GPU after every batch
        if use_cuda:  # but at most two batches ahead of it
            in_flight.append(torch.cuda.Event())
            in_flight[-1].record()
            if len(in_flight) > 2:
                in_flight.popleft().synchronize()
    if not parts:
        return np.zeros((0, NUM_CLASSES), np.float32)
    return torch.cat(parts).cpu().numpy().astype(np.float32, copy=False)


def probs_frame(ids: list[str], probs: np.ndarray, labels: list[list[int]] | None = None) -> pd.DataFrame:
    """A table ``Id[, Target], p00 ... p27`` of probabilities."""
    frame = pd.DataFrame({"Id": ids})
    if labels is not None:
        frame["Target"] = [format_target(t) for t in labels]
    cols = pd.DataFrame(probs, columns=[f"p{i:02d}" for i in range(NUM_CLASSES)])
    return pd.concat([frame, cols], axis=1)


def read_probs(path: Path) -> tuple[list[str], np.ndarray, list[list[int]] | None]:
    """Read a table written from :func:`probs_frame`."""
    from hpa_classify.classes import parse_target

    frame = pd.read_csv(path, dtype={"Id": str, "Target": str}, keep_default_na=False)
    probs = frame[[f"p{i:02d}" for i in range(NUM_CLASSES)]].to_numpy(np.float32)
    labels = None
    if "Target" in frame:
        labels = [parse_target(t, row=i) for i, t in zip(frame["Id"], frame["Target"])]
    return frame["Id"].tolist(), probs, labels


def probs_path_for(submission: Path) -> Path:
    """Where the probabilities beside a submission go: ``<name>_probs.csv``."""
    return submission.with_name(submission.stem + "_probs.csv")


@dataclass
class PredictSummary:
    submission: Path
    probabilities: Path
    n_images: int
    n_fallback: int
    tta: int
    mean_labels: float
    n_models: int = 1
    thresholds_source: str = ""
    thresholds_path: Path | None = None


def data_differences(run: Run, data: Dataset) -> list[str]:
    """How ``data`` differ from the run's training data (image size, channel intensity), in words.

    Empty for a run without a recorded data profile in ``env.json``.
    """
    import json

    from hpa_classify.data.profile import differences, profile

    try:
        env = json.loads((run.path / "env.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    trained = env.get("data_profile") if isinstance(env, dict) else None
    if not trained:
        return []
    return differences(trained, profile(data, seed=run.cfg.seed), size=run.cfg.data.size)


def thresholds_path_for(submission: Path) -> Path:
    """Where an ensemble's thresholds beside a submission go: ``<name>_thresholds.json``."""
    return submission.with_name(submission.stem + "_thresholds.json")


def predict_run(
    run: Run | Sequence[Run],
    data: Dataset,
    out: Path,
    tta: int | None = None,
    batch_size: int | None = None,
    progress: bool = True,
    weights: Sequence[float] | None = None,
    backend: str = "torch",
    devices: int | str = 1,
    num_nodes: int = 1,
) -> PredictSummary | None:
    """Predict ``data`` with a run's best model and thresholds; write the submission atomically.

    ``backend`` ``onnx`` predicts with onnxruntime (:mod:`hpa_classify.export`).
    ``devices`` x ``num_nodes`` above 1 shards ``data`` over that many
    processes (:func:`hpa_classify.distributed.sharded`); global rank 0 writes
    the files and returns the summary, the other ranks return None.

    A K-fold run predicts with the mean of its folds' models; several runs
    with the weighted mean of all their models, thresholded as
    :func:`hpa_classify.ensemble.ensemble_thresholds` explains (those
    thresholds are written beside the submission as ``<name>_thresholds.json``).
    """
    from hpa_classify.ensemble import ensemble_probs, ensemble_thresholds, members
    from hpa_classify.evaluate.metrics import binarize
    from hpa_classify.evaluate.thresholds import save_thresholds

    runs = [run] if isinstance(run, Run) else list(run)
    chosen = ensemble_thresholds(runs, weights)
    thresholds = chosen.thresholds
    n_models = len(members(runs, weights))
    for difference in data_differences(runs[0], data):
        log.warning("%s; predictions may be less accurate than the run's evaluation says", difference)
    def predict_part(part: Dataset) -> np.ndarray:
        return ensemble_probs(
            runs, part, weights, tta=tta, batch_size=batch_size,
            progress=progress and is_global_zero(), backend=backend,
        )

    if wants_distributed(devices, num_nodes):
        if backend != "torch":
            raise HPAError("--devices shards PyTorch prediction; --backend onnx runs in one process")
        sharded_probs = sharded(predict_part, data, devices, num_nodes, runs[0].cfg.train.accelerator)
        if sharded_probs is None:
            return None
        probs = sharded_probs
    else:
        probs = predict_part(data)
    tta = tta or runs[0].cfg.predict.tta
    preds, n_fallback = binarize(probs, thresholds, at_least_one=True)
    sub = pd.DataFrame(
        {"Id": data.ids, "Predicted": [format_target(np.flatnonzero(r)) for r in preds]}
    )
    probs_out = probs_path_for(out)
    write_csv(probs_out, probs_frame(data.ids, probs))
    write_csv(out, sub)
    thr_path = None
    if len(runs) > 1:
        extra = {**chosen.as_extra(), "runs": [str(r.path) for r in runs],
                 "weights": _weights_or_equal(weights, len(runs))}
        thr_path = save_thresholds(thresholds_path_for(out), thresholds, chosen.method, extra)
    return PredictSummary(
        submission=out,
        probabilities=probs_out,
        n_images=len(data),
        n_fallback=n_fallback,
        tta=tta,
        mean_labels=float(preds.sum(1).mean()) if len(preds) else 0.0,
        n_models=n_models,
        thresholds_source=chosen.source,
        thresholds_path=thr_path,
    )


def _weights_or_equal(weights: Sequence[float] | None, n: int) -> list[float]:
    return [1.0] * n if weights is None else [float(w) for w in weights]
