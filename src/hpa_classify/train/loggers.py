"""Training curves in TensorBoard or MLflow as well as ``metrics.csv`` (``train.logger``).

``csv`` (the default) writes ``metrics.csv`` alone. ``tensorboard`` adds an
event file in ``RUN/tensorboard/``; ``mlflow`` adds a local MLflow store in
``RUN/mlruns/`` (a ``file:`` tracking URI: no server), one MLflow run named
after the run folder in an experiment named after the config. Both get one
point per epoch of each curve (``train/loss``, ``train/f1``, ``val/loss``,
``val/f1``, ``lr``, ``images_per_s``, ``epoch_seconds``), with the epoch as
the step, and the resolved config as hyperparameters. Only global rank 0 writes.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import Logger, MLFlowLogger, TensorBoardLogger

from hpa_classify.config import Config
from hpa_classify.inference.runs import logger_dir
from hpa_classify.train.module import HPAModule

#: Columns of ``metrics.csv`` and the curve each becomes.
CURVES = {
    "train_loss": "train/loss",
    "train_f1": "train/f1",
    "val_loss": "val/loss",
    "val_f1": "val/f1",
    "lr": "lr",
    "images_per_s": "images_per_s",
    "seconds": "epoch_seconds",
}


def make_logger(cfg: Config, run_dir: Path) -> Logger | None:
    """The Lightning logger ``cfg.train.logger`` names, storing under ``run_dir``; None for csv."""
    folder = logger_dir(run_dir, cfg.train.logger)
    if folder is None:
        return None
    if cfg.train.logger == "tensorboard":
        return TensorBoardLogger(save_dir=str(folder.parent), name=folder.name, version="",
                                 default_hp_metric=False)
    # MLflow 3 keeps the file store only on request; a folder in the run is the point here
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return MLFlowLogger(experiment_name=cfg.name, run_name=run_dir.resolve().name,
                        tracking_uri=folder.resolve().as_uri())


class EpochLogger(Callback):
    """Send each epoch's row of ``metrics.csv`` to ``logger``, and the config once."""

    def __init__(self, logger: Logger, cfg: Config) -> None:
        self.logger = logger
        self.cfg = cfg

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            self.logger.log_hyperparams(self.cfg.model_dump(mode="json"))

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not isinstance(pl_module, HPAModule) or not trainer.is_global_zero:
            return
        row = pl_module.finish_epoch()  # the row metrics.csv gets (recorded once per epoch)
        metrics = {name: float(row[key]) for key, name in CURVES.items()
                   if key in row and math.isfinite(float(row[key]))}
        self.logger.log_metrics(metrics, step=int(row["epoch"]))
        self.logger.save()

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            self.logger.finalize("success")


def logger_callbacks(cfg: Config, run_dir: Path) -> list[Callback]:
    """``[EpochLogger]`` for the logger the config names; ``[]`` for csv."""
    logger = make_logger(cfg, run_dir)
    return [] if logger is None else [EpochLogger(logger, cfg)]
