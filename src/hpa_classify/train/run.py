"""One training run, start to finish: split, fit, best checkpoint, validation probabilities."""

from __future__ import annotations

import logging
import math
import warnings
from pathlib import Path

import lightning as L
import pandas as pd
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from hpa_classify.config import Config, save_config
from hpa_classify.data.dataset import HPADataModule
from hpa_classify.data.layout import Dataset
from hpa_classify.data.splits import train_val_split
from hpa_classify.distributed import is_global_zero
from hpa_classify.errors import DataError
from hpa_classify.classes import to_multihot
from hpa_classify.fileio import write_csv, write_json
from hpa_classify.models import build_model
from hpa_classify.runs import Run, load_model, prepare_run_dir, write_env
from hpa_classify.train.module import HPAModule

log = logging.getLogger(__name__)

METRIC_COLUMNS = ["epoch", "train_loss", "train_f1", "val_loss", "val_f1", "lr", "seconds", "images_per_s"]


class MetricsCSV(Callback):
    """Rewrite ``metrics.csv`` (atomically) after every training epoch."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not isinstance(pl_module, HPAModule):
            return
        pl_module.finish_epoch()
        if trainer.is_global_zero:
            write_csv(self.path, pd.DataFrame(pl_module.history, columns=METRIC_COLUMNS))


def _precision(cfg: Config) -> str:
    if cfg.train.precision != "auto":
        return cfg.train.precision
    if torch.cuda.is_available() and cfg.train.accelerator in ("auto", "gpu", "cuda"):
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "32"


def split_dataset(data: Dataset, cfg: Config) -> tuple[Dataset, Dataset]:
    """Multilabel-stratified train/validation split of a labelled dataset."""
    if data.labels is None:
        raise DataError(f"{data.csv_path}: training needs a 'Target' column")
    if len(data) < 4:
        raise DataError(f"{data.csv_path}: {len(data)} samples are too few to train on")
    tr, va = train_val_split(data.labels, cfg.data.val_fraction, cfg.seed)
    return data.subset(tr), data.subset(va)


def train(
    cfg: Config,
    data: Dataset,
    run_dir: str | Path,
    force: bool = False,
    progress: bool = True,
) -> Run:
    """Train ``cfg`` on ``data`` (already validated) into ``run_dir``; then evaluate.

    Returns the finished :class:`~hpa_classify.runs.Run`, whose directory holds
    the config, env.json, split, checkpoints, metrics.csv, validation
    probabilities, thresholds and report.
    """
    from hpa_classify.evaluate.run import evaluate_run
    from hpa_classify.predict import predict_probs, probs_frame

    run_dir = Path(run_dir)
    train_set, val_set = split_dataset(data, cfg)
    model = build_model(
        cfg.model.name,
        cfg.model.pretrained,
        drop_rate=cfg.model.drop_rate,
        fourth_channel_init=cfg.model.fourth_channel_init,
        channels=cfg.data.channels,
        global_pool=cfg.model.global_pool,
    )
    if is_global_zero():  # the other processes of a distributed run write nothing
        prepare_run_dir(run_dir, force)
        save_config(cfg, run_dir / "config.yaml")
        write_env(run_dir, cfg, data.fingerprint())
        split = pd.DataFrame(
            {"Id": train_set.ids + val_set.ids, "split": ["train"] * len(train_set) + ["val"] * len(val_set)}
        )
        write_csv(run_dir / "split.csv", split)
        write_json(run_dir / "train_prior.json", {"class_frequency": to_multihot(train_set.labels).mean(0).tolist(), "n_images": len(train_set)})
        if data.skipped:
            write_csv(run_dir / "skipped.csv", pd.DataFrame(data.skipped, columns=["Id", "problem"]))

    L.seed_everything(cfg.seed, workers=True, verbose=False)
    module = HPAModule(model, cfg)
    dm = HPADataModule(train_set, val_set, cfg.data, cfg.augment)
    checkpoint = ModelCheckpoint(
        dirpath=run_dir / "checkpoints",
        filename="best",
        monitor="val_f1",
        mode="max",
        save_last=True,
        enable_version_counter=False,
    )
    trainer = L.Trainer(
        max_epochs=cfg.train.epochs,
        accelerator=cfg.train.accelerator,
        devices=cfg.train.devices,
        num_nodes=cfg.train.num_nodes,
        precision=_precision(cfg),
        deterministic=cfg.train.deterministic,
        logger=False,
        callbacks=[checkpoint, MetricsCSV(run_dir / "metrics.csv")],
        enable_progress_bar=progress,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_train_batches=cfg.train.limit_train_batches,
        default_root_dir=run_dir,
        log_every_n_steps=max(1, min(50, math.ceil(len(train_set) / cfg.data.batch_size))),
    )
    if cfg.train.compile:
        module.model = torch.compile(module.model)  # type: ignore[assignment]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*number of training batches.*")
        warnings.filterwarnings("ignore", message=".*LeafSpec.*")
        trainer.fit(module, datamodule=dm)
    if not trainer.is_global_zero:
        return Run(path=run_dir, cfg=cfg)

    run = Run(path=run_dir, cfg=cfg)
    best = load_model(run)
    probs = predict_probs(best, val_set, cfg, tta=cfg.predict.tta, progress=progress)
    write_csv(run.val_probs_path, probs_frame(val_set.ids, probs, val_set.labels))
    evaluate_run(run, progress=progress)
    return run

