"""The LightningModule: a plain ``nn.Module`` network plus loss, optimiser and metrics."""

from __future__ import annotations

import math
import time
import warnings

import lightning as L
import numpy as np
import torch
from torch import nn

from hpa_classify.classes import NUM_CLASSES
from hpa_classify.config import Config
from hpa_classify.evaluate.metrics import f1_from_counts, thresholded_macro_f1
from hpa_classify.seeding import STEP, stream_seed
from hpa_classify.train.losses import build_loss

#: The threshold of ``train_f1`` and ``val_f1`` (``macro_f1_at_0.5`` of a report).
EPOCH_F1_THRESHOLD = 0.5


def binarize_batch(probs: torch.Tensor, threshold: float = EPOCH_F1_THRESHOLD) -> torch.Tensor:
    """:func:`hpa_classify.evaluate.metrics.binarize` in torch, on the batch's device.

    A label is predicted where ``probs >= threshold``; a row with none gets its
    highest-probability class (the first one among equals). Training counts
    its predictions with this on the device, without waiting for the GPU.

    >>> binarize_batch(torch.tensor([[0.5, 0.2], [0.1, 0.3]])).tolist()
    [[True, False], [False, True]]
    """
    pred = probs >= threshold
    top = torch.nn.functional.one_hot(probs.argmax(dim=1), probs.shape[1]).bool()
    return pred | (top & ~pred.any(dim=1, keepdim=True))


class HPAModule(L.LightningModule):
    """Trains ``model`` on multi-hot targets; logs loss and macro F1 (at 0.5) per epoch.

    Both F1 scores are the package's one macro F1
    (:func:`hpa_classify.evaluate.metrics.thresholded_macro_f1`): probabilities
    at or above 0.5, with the top-1 fallback. ``val_f1`` is the report's
    ``macro_f1_at_0.5`` of the epoch's model on the validation split without
    TTA; in a distributed run every validation image counts once.

    ``history`` (the rows of ``metrics.csv``) travels in every checkpoint, so a
    resumed run keeps the epochs before the interruption. Before each training
    step the global torch generator is seeded from (seed, step): dropout draws
    the same masks in an uninterrupted and a resumed run.
    """

    def __init__(self, model: nn.Module, cfg: Config) -> None:
        super().__init__()
        self.model = model
        self.cfg = cfg
        self.loss_fn = build_loss(cfg.train.loss, cfg.train.focal_gamma)
        self.history: list[dict[str, float]] = []
        self._reset_train()
        self._val_probs: list[torch.Tensor] = []
        self._val_targets: list[torch.Tensor] = []
        self._val_loss: list[torch.Tensor] = []
        self.last_val: dict[str, float] = {}

    # -- helpers ------------------------------------------------------------------------
    def _reset_train(self) -> None:
        self._train_loss_sum = 0.0
        self._train_n = 0
        self._train_counts = torch.zeros(3, NUM_CLASSES)
        self._epoch_start = time.perf_counter()

    def _use_channels_last(self) -> bool:
        return self.cfg.train.channels_last and self.device.type == "cuda"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._use_channels_last():
            x = x.contiguous(memory_format=torch.channels_last)
        return self.model(x)

    # -- checkpoints ----------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["hpa_history"] = [dict(row) for row in self.history]

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.history = [dict(row) for row in checkpoint.get("hpa_history", [])]

    # -- training -----------------------------------------------------------------------
    def on_train_batch_start(self, batch: object, batch_idx: int) -> None:
        # each process of a distributed run draws its own dropout masks
        rank = (self.global_rank,) if self.trainer.world_size > 1 else ()
        torch.manual_seed(stream_seed(self.cfg.seed, STEP, self.global_step, *rank))

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        loss = self.loss_fn(logits.float(), y)
        # reduced on the device and read once per epoch: a per-step value on the progress bar
        # would wait for the GPU after every step
        self.log("train_loss", loss.detach(), prog_bar=True, on_step=False, on_epoch=True)
        with torch.no_grad():
            pred = binarize_batch(torch.sigmoid(logits.float())).float()
            counts = torch.stack([(pred * y).sum(0), y.sum(0), pred.sum(0)])  # tp, true, predicted
            # summed on the device: reading them back every step would wait for the GPU
            self._train_counts = self._train_counts.to(counts.device) + counts
            self._train_loss_sum = self._train_loss_sum + loss.detach().float() * len(x)
        self._train_n += len(x)
        return loss

    def on_train_epoch_start(self) -> None:
        self._reset_train()

    def finish_epoch(self) -> dict[str, float]:
        """Record and return this epoch's row of ``metrics.csv`` (after validation ran).

        Called twice for one epoch (as when a run resumes from a checkpoint made
        at that epoch's end), it keeps the row it recorded first.
        """
        if self.history and self.history[-1]["epoch"] == self.current_epoch + 1:
            return self.history[-1]
        seconds = time.perf_counter() - self._epoch_start
        counts, loss_sum, n = self._epoch_totals()
        tp, n_true, n_pred = counts
        row = {
            "epoch": self.current_epoch + 1,
            "train_loss": loss_sum / max(n, 1),
            "train_f1": float(f1_from_counts(tp, n_true, n_pred).mean()),
            "val_loss": self.last_val.get("val_loss", math.nan),
            "val_f1": self.last_val.get("val_f1", math.nan),
            "lr": float(self.optimizers().param_groups[0]["lr"]),
            "seconds": seconds,
            "images_per_s": n / seconds if seconds > 0 else math.nan,
        }
        self.history.append(row)
        return row

    def _epoch_totals(self) -> tuple[np.ndarray, float, int]:
        """This epoch's training counts, loss sum and images, summed over every process."""
        device = self._train_counts.device
        packed = torch.cat([
            self._train_counts.reshape(-1).double(),
            torch.as_tensor([float(self._train_loss_sum), float(self._train_n)], dtype=torch.float64, device=device),
        ])
        if self.trainer.world_size > 1:
            packed = self.trainer.strategy.reduce(packed.to(self.device), reduce_op="sum")
        packed = packed.cpu().numpy()
        counts = packed[: self._train_counts.numel()].reshape(self._train_counts.shape)
        return counts, float(packed[-2]), int(round(packed[-1]))

    # -- validation ---------------------------------------------------------------------
    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        logits = self(x).float()
        # kept on the device: read back once, at the end of the epoch
        self._val_loss.append(self.loss_fn(logits, y).detach() * len(x))
        self._val_probs.append(torch.sigmoid(logits))
        self._val_targets.append(y)

    def _gather_rows(self, t: torch.Tensor) -> torch.Tensor:
        """Every process's rows of ``t`` (their counts may differ by one), rank after rank."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*all_gather is deprecated.*")
            sizes = self.all_gather(torch.tensor([len(t)], device=self.device)).reshape(-1).tolist()
            padded = t.new_zeros((max(sizes), *t.shape[1:]))
            padded[: len(t)] = t
            gathered = self.all_gather(padded.to(self.device)).cpu()
        return torch.cat([gathered[rank, :n] for rank, n in enumerate(sizes)])

    def on_validation_epoch_end(self) -> None:
        if not self._val_probs:
            return
        probs = torch.cat(self._val_probs).cpu()
        y = torch.cat(self._val_targets).cpu()
        loss_sum = torch.stack(self._val_loss).sum().reshape(1).cpu()
        if self.trainer.world_size > 1:
            # each process saw its shard (HPADataModule shards without repeats): score the
            # whole validation set on every process, so that all agree on val_f1 and on
            # which checkpoint is best
            probs, y, loss_sum = (self._gather_rows(t) for t in (probs, y, loss_sum))
        if torch.isfinite(probs).all():
            val_f1, _ = thresholded_macro_f1(y.numpy(), probs.numpy(), EPOCH_F1_THRESHOLD)
        else:  # a diverged model: no score, and never the best checkpoint
            val_f1 = math.nan
        val_loss = float(loss_sum.sum()) / len(y)
        self.last_val = {"val_loss": val_loss, "val_f1": val_f1}
        # the same on every process already; sync_dist keeps Lightning from asking for it
        self.log("val_f1", val_f1, prog_bar=True, sync_dist=True)
        self.log("val_loss", val_loss, prog_bar=True, sync_dist=True)
        self._val_probs.clear()
        self._val_targets.clear()
        self._val_loss.clear()

    # -- optimisation -------------------------------------------------------------------
    def configure_optimizers(self):  # type: ignore[override]
        t = self.cfg.train
        opt = torch.optim.AdamW(self.model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
        if t.scheduler == "none":
            return opt
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        if t.scheduler == "onecycle":
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=t.lr, total_steps=total)
        else:
            steps_per_epoch = max(total // max(self.trainer.max_epochs or 1, 1), 1)
            warmup = int(t.warmup_epochs * steps_per_epoch)
            sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(warmup, total))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def warmup_cosine(warmup: int, total: int, floor: float = 0.01):
    """LR multiplier per step: linear warm-up over ``warmup`` steps, then cosine to ``floor``.

    >>> f = warmup_cosine(10, 110)
    >>> round(f(0), 2), f(10), round(f(110), 2)
    (0.1, 1.0, 0.01)
    """

    def factor(step: int) -> float:
        if warmup > 0 and step < warmup:
            return (step + 1) / warmup
        progress = min((step - warmup) / max(total - warmup, 1), 1.0)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor
