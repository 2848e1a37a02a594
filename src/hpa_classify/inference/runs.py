"""A run directory ``runs/<name>/``: what a training run wrote, and reading it back.

Layout: ``config.yaml`` (fully resolved), ``env.json`` (versions, git commit,
data fingerprint), ``split.csv``, ``checkpoints/{best,last}.ckpt``,
``metrics.csv``, ``val_probs.csv``, ``train_prior.json``, ``thresholds.json``,
``report/``. Runs are made by :mod:`hpa_classify.train`; this module opens them.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hpa_classify.config import Config, read_run_config
from hpa_classify.errors import RunError
from hpa_classify.inference.checkpoints import model_state, read_checkpoint
from hpa_classify.inference.probs import read_probs
from hpa_classify.models import build_model

log = logging.getLogger(__name__)

#: The class frequencies of a run's training images (the label-prior baseline).
TRAIN_PRIOR_FILE = "train_prior.json"
#: The folder in a run where each ``train.logger`` other than ``csv`` keeps its store.
LOGGER_DIRS = {"tensorboard": "tensorboard", "mlflow": "mlruns"}


def logger_dir(run_dir: str | Path, logger: str) -> Path | None:
    """Where the logger ``logger`` (``train.logger``) of a run keeps its curves; None for csv.

    >>> logger_dir("runs/a", "tensorboard").as_posix(), logger_dir("runs/a", "csv")
    ('runs/a/tensorboard', None)
    """
    return Path(run_dir) / LOGGER_DIRS[logger] if logger in LOGGER_DIRS else None


def logger_command(run_dir: str | Path, logger: str) -> str | None:
    """The command that opens a run's training logs in the logger's own viewer; None for csv."""
    folder = logger_dir(run_dir, logger)
    if folder is None:
        return None
    if logger == "tensorboard":
        return f"tensorboard --logdir {folder.resolve()}"
    return f"MLFLOW_ALLOW_FILE_STORE=true mlflow ui --backend-store-uri {folder.resolve().as_uri()}"


@dataclass
class Run:
    """An existing run directory and its configuration."""

    path: Path
    cfg: Config

    @property
    def checkpoint(self) -> Path:
        for name in ("best.ckpt", "last.ckpt"):
            p = self.path / "checkpoints" / name
            if p.is_file():
                return p
        if self.is_kfold:
            raise RunError(f"{self.path}: a K-fold run; its models are in {self.path}/fold*/ (see fold_runs)")
        raise RunError(f"{self.path}: no checkpoint in {self.path / 'checkpoints'} (did training finish?)")

    @property
    def thresholds_path(self) -> Path:
        return self.path / "thresholds.json"

    @property
    def val_probs_path(self) -> Path:
        return self.path / "val_probs.csv"

    @property
    def is_kfold(self) -> bool:
        """A K-fold run: ``kfold.json`` here and one normal run per fold in ``fold{i}/``."""
        return (self.path / "kfold.json").is_file()

    @property
    def oof_probs_path(self) -> Path:
        return self.path / "oof_probs.csv"

    @property
    def tuning_probs_path(self) -> Path:
        """The labelled probabilities thresholds are tuned on: out-of-fold or validation."""
        return self.oof_probs_path if self.is_kfold else self.val_probs_path

    def tuning_probs(self) -> tuple[list[str], np.ndarray, list[list[int]]]:
        """Ids, probabilities and labels of :attr:`tuning_probs_path`; a RunError if unusable."""
        path = self.tuning_probs_path
        if not path.is_file():
            hint = f"run 'hpa merge {self.path}'" if self.is_kfold else "did training finish?"
            raise RunError(f"{path}: not found ({hint})")
        ids, probs, labels = read_probs(path)
        if labels is None:
            raise RunError(f"{path}: has no Target column")
        return ids, probs, labels

    def train_prior(self) -> np.ndarray:
        """Class frequencies of the run's training images (``train_prior.json``)."""
        obj = read_json(self.path / TRAIN_PRIOR_FILE)
        return np.asarray(obj["class_frequency"], np.float64)


def fold_runs(run: Run) -> list[Run]:
    """The fold runs of a K-fold run, in fold order; ``[run]`` for a plain run.

    Raises
    ------
    RunError
        If a fold has no run directory yet (``hpa train DATA --folds K --fold i``).
    """
    if not run.is_kfold:
        return [run]
    info = read_json(run.path / "kfold.json")
    folds = int(info["folds"])
    missing = [i for i in range(folds) if not (run.path / f"fold{i}" / "config.yaml").is_file()]
    if missing:
        raise RunError(
            f"{run.path}: folds {missing} of {folds} have not been trained "
            f"(hpa train DATA --folds {folds} --fold i -o {run.path})"
        )
    return [open_run(run.path / f"fold{i}") for i in range(folds)]


def open_run(path: str | Path) -> Run:
    """Open a run directory; a clear :class:`RunError` if it is not one."""
    path = Path(path)
    if not path.is_dir():
        raise RunError(f"{path}: no such run directory")
    cfg_path = path / "config.yaml"
    if not cfg_path.is_file():
        raise RunError(f"{path}: not a run directory (no config.yaml); runs are made by 'hpa train'")
    return Run(path=path, cfg=read_run_config(cfg_path))


def load_model(run: Run, device: str | torch.device = "cpu") -> nn.Module:
    """The run's trained network (best checkpoint), in eval mode.

    Raises
    ------
    RunError
        The checkpoint is unreadable or unsafe (see
        :func:`~hpa_classify.inference.checkpoints.read_checkpoint`), or its
        parameters do not fit the network ``config.yaml`` names.
    """
    ckpt = run.checkpoint
    state = model_state(read_checkpoint(ckpt))
    m = run.cfg.model
    model = build_model(
        m.name, "none", drop_rate=m.drop_rate, channels=run.cfg.data.channels, global_pool=m.global_pool
    )
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = _wrong_shapes(model, state)
    if missing or unexpected or wrong:
        detail = "; ".join(
            part for part in (
                f"missing {len(missing)} ({', '.join(missing[:3])})" if missing else "",
                f"unexpected {len(unexpected)} ({', '.join(unexpected[:3])})" if unexpected else "",
                f"other shapes {', '.join(wrong[:3])}" if wrong else "",
            ) if part
        )
        raise RunError(
            f"{ckpt} does not fit the network {run.path / 'config.yaml'} names "
            f"({m.name}, channels {','.join(run.cfg.data.channels)}): {detail}"
        )
    model.load_state_dict(state)
    return model.to(device).eval()


def _wrong_shapes(model: nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    own = model.state_dict()
    return [k for k, v in state.items() if k in own and tuple(own[k].shape) != tuple(v.shape)]


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunError(f"{path}: not found") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise RunError(f"{path}: unreadable ({exc})") from None
