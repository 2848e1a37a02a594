"""The served model: a run's network(s) and thresholds, loaded once, and the decision rule.

Probabilities are those of ``hpa predict``: the run's models (one, or one per
fold of a K-fold run, weighted as :func:`hpa_classify.inference.members.members`
says), each averaged over the first ``tta`` views of
:data:`~hpa_classify.inference.predict.TTA_VIEWS`; labels are the classes at or
above their thresholds, the most probable class when none is
(:func:`hpa_classify.evaluate.metrics.binarize`, as in
:func:`hpa_classify.workflows.submission.predict_run`).
"""

from __future__ import annotations

import logging
import platform
import threading
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import numpy as np
import torch
from torch import nn

from hpa_classify import __version__
from hpa_classify.classes import CLASS_NAMES, format_target
from hpa_classify.data.dataset import device_stats, normalize
from hpa_classify.ensemble import ensemble_thresholds
from hpa_classify.errors import HPAError, RunError
from hpa_classify.evaluate.metrics import binarize
from hpa_classify.inference.members import members
from hpa_classify.inference.onnx import BACKENDS, load_predictor
from hpa_classify.inference.predict import TTA_VIEWS, autocast_dtype, default_device, predict_batch
from hpa_classify.inference.runs import Run

log = logging.getLogger(__name__)


@dataclass
class ServedModel:
    """A run's models, thresholds and input format, ready to predict uint8 batches.

    Use :func:`load_served_model` to make one.
    """

    run: Run
    networks: list[tuple[nn.Module, float]]
    thresholds: np.ndarray
    threshold_source: str
    tta: int
    backend: str
    device: torch.device

    def __post_init__(self) -> None:
        cfg = self.run.cfg
        self.size = cfg.data.size
        self.channels = tuple(cfg.data.channels)
        self._mean, self._std = device_stats(
            tuple(cfg.data.mean), tuple(cfg.data.std), tuple(cfg.data.channels), str(self.device))
        self._dtype = autocast_dtype(cfg.train.precision, self.device) if self.backend == "torch" else None
        self._lock = threading.Lock()  # one batch at a time on the network

    @torch.inference_mode()
    def predict(self, images: np.ndarray) -> np.ndarray:
        """Sigmoid probabilities ``(N, 28)`` of uint8 images ``(N, C, size, size)``."""
        with self._lock:
            x = normalize(torch.from_numpy(images).to(self.device), self._mean, self._std)
            total = torch.zeros(len(x), len(CLASS_NAMES), dtype=torch.float64, device=self.device)
            for network, weight in self.networks:
                total += weight * predict_batch(network, x, self.tta, dtype=self._dtype).double()
            return total.cpu().numpy().astype(np.float32)

    def decide(self, probs: np.ndarray) -> dict[str, Any]:
        """One image's result: per-class probability, threshold and decision; the labels.

        >>> m = object.__new__(ServedModel); m.thresholds = np.full(28, 0.5)
        >>> p = np.zeros(28, np.float32); p[3] = 0.2
        >>> r = m.decide(p); r["labels"], r["target"], r["fallback"]
        ([3], '3', True)
        """
        preds, n_fallback = binarize(probs[None, :], self.thresholds, at_least_one=True)
        labels = [int(c) for c in np.flatnonzero(preds[0])]
        classes = [
            {"id": c, "name": name, "probability": float(probs[c]),
             "threshold": float(self.thresholds[c]), "predicted": bool(preds[0, c])}
            for c, name in enumerate(CLASS_NAMES)
        ]
        return {"labels": labels, "target": format_target(labels), "fallback": bool(n_fallback),
                "classes": classes}

    def info(self) -> dict[str, Any]:
        """What ``GET /v1/model`` tells: run, classes, thresholds, input, versions."""
        cfg = self.run.cfg
        return {
            "run": self.run.path.name,
            "model": cfg.model.name,
            "n_models": len(self.networks),
            "backend": self.backend,
            "device": str(self.device),
            "input": {"size": self.size, "channels": list(self.channels), "tta": self.tta},
            "classes": [
                {"id": c, "name": name, "threshold": float(self.thresholds[c])}
                for c, name in enumerate(CLASS_NAMES)
            ],
            "thresholds": {"method": cfg.evaluate.threshold_method, "source": self.threshold_source},
            "versions": versions(self.backend),
        }


def versions(backend: str) -> dict[str, str]:
    """Versions of Python, hpa-classify and the libraries that predict and serve."""
    names = ["torch", "timm", "fastapi", "uvicorn"] + (["onnxruntime"] if backend == "onnx" else [])
    found = {"python": platform.python_version(), "hpa-classify": __version__}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def load_served_model(
    run: Run, backend: str = "torch", tta: int | None = None, device: str | torch.device | None = None
) -> ServedModel:
    """Load a run's model(s) and thresholds once, for serving.

    Parameters
    ----------
    run : Run
        A run directory (a K-fold run serves the mean of its folds).
    backend : {"torch", "onnx"}
        PyTorch, or the ONNX export in onnxruntime (exported into the run first when
        missing, as ``hpa predict --backend onnx`` does).
    tta : int, optional
        Test-time augmentation views (1-8); default the run's ``predict.tta``.
    device : str or torch.device, optional
        Default: CUDA when available.

    Raises
    ------
    HPAError
        An unknown backend or a TTA outside 1-8.
    RunError
        The run has no thresholds or no usable checkpoint, or its folds differ in input.
    """
    if backend not in BACKENDS:
        raise HPAError(f"--backend must be {' or '.join(BACKENDS)}, got '{backend}'")
    views = tta or run.cfg.predict.tta
    if not 1 <= views <= len(TTA_VIEWS):
        raise HPAError(f"--tta must be 1-{len(TTA_VIEWS)}, got {views}")
    device = torch.device(device) if device is not None else default_device()
    chosen = ensemble_thresholds([run])
    networks = []
    for member in members([run]):
        data = member.run.cfg.data
        if (data.size, tuple(data.channels)) != (run.cfg.data.size, tuple(run.cfg.data.channels)):
            raise RunError(f"{member.run.path}: input differs from {run.path} (data.size or data.channels)")
        networks.append((load_predictor(member.run, device, backend), member.weight))
    log.info("serving %s: %d model(s), %s on %s, TTA x%d; thresholds %s",
             run.path, len(networks), backend, device, views, chosen.source)
    tuned_on = "out-of-fold predictions" if run.is_kfold else "the validation split"
    return ServedModel(run, networks, chosen.thresholds, f"tuned on {tuned_on}", views, backend, device)
