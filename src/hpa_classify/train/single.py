"""One training run, start to finish: split, fit, best checkpoint, validation probabilities."""

from __future__ import annotations

import logging
import math
import time
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import pandas as pd
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from hpa_classify.config import Config, changed_keys, save_config
from hpa_classify.data.dataset import HPADataModule
from hpa_classify.data.layout import Dataset
from hpa_classify.data.profile import profile
from hpa_classify.data.splits import train_val_split
from hpa_classify.errors import ConfigError, DataError, Interrupted, RunError
from hpa_classify.evaluate.evaluation import tune_thresholds
from hpa_classify.fileio import write_csv, write_json
from hpa_classify.inference.checkpoints import read_checkpoint
from hpa_classify.inference.distributed import is_global_zero
from hpa_classify.inference.predict import predict_probs
from hpa_classify.inference.probs import probs_frame
from hpa_classify.inference.runs import Run, load_model, open_run, read_json
from hpa_classify.models import build_model
from hpa_classify.progress import Progress
from hpa_classify.train.checkpointing import AtomicCheckpointIO
from hpa_classify.train.loggers import logger_callbacks
from hpa_classify.train.module import HPAModule
from hpa_classify.train.rundir import prepare_run_dir, write_env, write_train_prior

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


def _on_gpu(cfg: Config) -> bool:
    return torch.cuda.is_available() and cfg.train.accelerator in ("auto", "gpu", "cuda")


def _prepare_gpu(cfg: Config, model: torch.nn.Module) -> torch.nn.Module:
    """TF32 as configured, and channels-last weights set before Lightning wraps the model
    (DDP's gradient buckets take the strides the parameters have when it wraps them)."""
    if not _on_gpu(cfg):
        return model
    torch.backends.cuda.matmul.allow_tf32 = cfg.train.tf32
    torch.backends.cudnn.allow_tf32 = cfg.train.tf32
    return model.to(memory_format=torch.channels_last) if cfg.train.channels_last else model


def trainer_settings(cfg: Config) -> dict[str, Any]:
    """The Trainer arguments that decide how fast and how exactly a run trains (shared with
    the GPU benchmark, so that it measures what ``hpa train`` runs)."""
    return {
        "accelerator": cfg.train.accelerator,
        "devices": cfg.train.devices,
        "num_nodes": cfg.train.num_nodes,
        "precision": _precision(cfg),
        # where a kernel has no deterministic version (max pooling's backward on CUDA) warn, not fail
        "deterministic": "warn" if cfg.train.deterministic else False,
        "benchmark": not cfg.train.deterministic,
    }


def prepare_module(cfg: Config, model: torch.nn.Module) -> HPAModule:
    """The LightningModule of ``model``: GPU memory format and TF32 set, compiled in place
    when ``train.compile`` asks (parameter names, and so checkpoints, stay the network's)."""
    module = HPAModule(_prepare_gpu(cfg, model), cfg)
    if cfg.train.compile:
        module.model.compile(backend=cfg.train.compile_backend)
    return module


def _precision(cfg: Config) -> str:
    if cfg.train.precision != "auto":
        return cfg.train.precision
    if _on_gpu(cfg):
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


def resume_checkpoint(run_dir: Path, cfg: Config, data: Dataset) -> Path:
    """Check that ``run_dir`` is an unfinished run of ``cfg`` on ``data``; return its last checkpoint.

    Raises
    ------
    RunError
        Not a run, other data, no ``checkpoints/last.ckpt`` or an unreadable one.
    ConfigError
        The run was made with another config; the message names the keys.
    """
    run = open_run(run_dir)
    detail = changed_keys(run.cfg, cfg)
    if detail:
        raise ConfigError(
            f"{run_dir / 'config.yaml'}: --resume needs the run's own config, but {detail} "
            "differ; pass the same --config and --set as before"
        )
    recorded = (read_json(run_dir / "env.json") or {}).get("data") or {}
    current = data.fingerprint(content="files_hashed" in recorded)  # older runs: names and sizes
    keys = ("csv_sha256", "files_sha256", "n_samples")
    if recorded and any(recorded.get(k) != current.get(k) for k in keys):
        raise RunError(
            f"{run_dir}: the data differ from those the run was trained on "
            f"({recorded.get('csv')}, {recorded.get('n_samples')} samples); "
            "--resume needs the same CSV and images"
        )
    last = run_dir / "checkpoints" / "last.ckpt"
    if not last.is_file():
        raise RunError(
            f"{run_dir}: nothing to resume from (no {last}: the run stopped before its first "
            "epoch ended); start it again with --force"
        )
    try:
        read_checkpoint(last)
    except RunError as exc:
        raise RunError(f"{exc}; start the run again with --force") from None
    return last


def _note_resume(run_dir: Path, checkpoint: Path) -> None:
    env_path = run_dir / "env.json"
    env = read_json(env_path)
    env.setdefault("resumed", []).append(
        {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "from": str(checkpoint)}
    )
    write_json(env_path, env)


def _interrupted(run_dir: Path, module: HPAModule, cfg: Config) -> Interrupted:
    last = run_dir / "checkpoints" / "last.ckpt"
    epoch = len(module.history) + 1
    if last.is_file():
        return Interrupted(
            f"training stopped during epoch {epoch} of {cfg.train.epochs}; {last} holds the "
            f"run as it was after epoch {epoch - 1}, and --resume continues from there"
        )
    return Interrupted(
        f"training stopped during epoch 1, before any checkpoint was written; "
        f"start again with --force to replace {run_dir}"
    )


def _start_run(
    run_dir: Path, cfg: Config, data: Dataset, train_set: Dataset, val_set: Dataset, force: bool
) -> None:
    """Make the run directory and write what is known before training: config, env, split, prior."""
    data_profile = profile(data, seed=cfg.seed)
    prepare_run_dir(run_dir, force)
    save_config(cfg, run_dir / "config.yaml")
    write_env(run_dir, cfg, data.fingerprint(), data_profile)
    split = pd.DataFrame(
        {"Id": train_set.ids + val_set.ids, "split": ["train"] * len(train_set) + ["val"] * len(val_set)}
    )
    write_csv(run_dir / "split.csv", split)
    write_train_prior(run_dir, train_set.labels or [])
    if data.skipped:
        write_csv(run_dir / "skipped.csv", pd.DataFrame(data.skipped, columns=["Id", "problem"]))


def _trainer(cfg: Config, run_dir: Path, n_train: int, progress_bar: bool) -> L.Trainer:
    """The Lightning Trainer of a run, with its checkpoints and ``metrics.csv`` callbacks."""
    # Saved at the very end of each epoch, after metrics.csv got the epoch's row: a
    # checkpoint then carries the whole history, and --resume starts the next epoch.
    # last.ckpt has its own callback: Lightning's save_last writes only in epochs
    # that improved the best score, which would leave --resume far behind.
    best_checkpoint = ModelCheckpoint(
        dirpath=run_dir / "checkpoints",
        filename="best",
        monitor="val_f1",
        mode="max",
        enable_version_counter=False,
        save_on_train_epoch_end=True,
    )
    last_checkpoint = ModelCheckpoint(
        dirpath=run_dir / "checkpoints",
        filename="last",
        enable_version_counter=False,
        save_on_train_epoch_end=True,
    )
    return L.Trainer(
        max_epochs=cfg.train.epochs,
        **trainer_settings(cfg),
        logger=False,
        callbacks=[best_checkpoint, last_checkpoint, MetricsCSV(run_dir / "metrics.csv"),
                   *logger_callbacks(cfg, run_dir)],
        plugins=[AtomicCheckpointIO()],
        enable_progress_bar=progress_bar,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_train_batches=cfg.train.limit_train_batches,
        default_root_dir=run_dir,
        log_every_n_steps=max(1, min(50, math.ceil(n_train / cfg.data.batch_size))),
    )


def train_run(
    cfg: Config,
    data: Dataset,
    run_dir: str | Path,
    force: bool = False,
    progress: Progress | None = None,
    resume: bool = False,
    split: tuple[Dataset, Dataset] | None = None,
) -> Run:
    """Train ``cfg`` on ``data`` (already validated) into ``run_dir``; then evaluate.

    Returns the finished :class:`~hpa_classify.inference.runs.Run`, whose directory holds
    the config, env.json, split, checkpoints, metrics.csv, validation
    probabilities, thresholds and report.

    With ``resume``, ``run_dir`` holds an unfinished run of the same config and
    data (see :func:`resume_checkpoint`); training continues from its
    ``checkpoints/last.ckpt``, written at the end of every epoch, and
    ``metrics.csv`` keeps the epochs before. On CPU the result is that of an
    uninterrupted run.

    ``split`` gives the (training, validation) samples instead of the
    stratified split of ``data`` by ``data.val_fraction``: one fold of a
    K-fold run, or a training part with external images added
    (:mod:`hpa_classify.train.kfold`, :mod:`hpa_classify.train.fit`).

    Raises
    ------
    Interrupted
        On Ctrl-C, after Lightning stopped cleanly; the message says whether
        ``--resume`` can continue the run.
    ``progress`` (a :class:`~hpa_classify.progress.Progress`) also turns on
    Lightning's own progress bar during fitting.
    """
    run_dir = Path(run_dir)
    train_set, val_set = split if split is not None else split_dataset(data, cfg)
    ckpt_path = resume_checkpoint(run_dir, cfg, data) if resume else None
    # before the model is built: a head (or a whole network) starts from random weights
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    model = build_model(
        cfg.model.name,
        cfg.model.pretrained,
        drop_rate=cfg.model.drop_rate,
        fourth_channel_init=cfg.model.fourth_channel_init,
        channels=cfg.data.channels,
        global_pool=cfg.model.global_pool,
    )
    if not is_global_zero():
        pass  # another process of a distributed run: global rank 0 writes the run directory
    elif ckpt_path is not None:
        _note_resume(run_dir, ckpt_path)
    else:
        _start_run(run_dir, cfg, data, train_set, val_set, force)

    module = prepare_module(cfg, model)
    dm = HPADataModule(train_set, val_set, cfg.data, cfg.augment, seed=cfg.seed)
    trainer = _trainer(cfg, run_dir, len(train_set), progress is not None)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*number of training batches.*")
        warnings.filterwarnings("ignore", message=".*LeafSpec.*")
        warnings.filterwarnings("ignore", message=".*Checkpoint directory .* exists and is not empty.*")
        try:
            trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path, weights_only=True)
        except SystemExit:  # Lightning exits after a clean shutdown on Ctrl-C
            if not trainer.interrupted:
                raise
        if trainer.interrupted:
            raise _interrupted(run_dir, module, cfg)
    if not trainer.is_global_zero:
        return Run(path=run_dir, cfg=cfg)

    run = Run(path=run_dir, cfg=cfg)
    best = load_model(run)
    probs = predict_probs(best, val_set, cfg, tta=cfg.predict.tta, progress=progress)
    write_csv(run.val_probs_path, probs_frame(val_set.ids, probs, val_set.labels))
    tune_thresholds(run)
    return run

