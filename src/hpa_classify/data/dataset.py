"""Torch datasets, albumentations pipelines and the Lightning data module."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import albumentations as A
import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from hpa_classify.classes import CHANNELS, to_multihot
from hpa_classify.config import AugmentConfig, DataConfig
from hpa_classify.data.io import load_sample
from hpa_classify.data.layout import Dataset

log = logging.getLogger(__name__)


def build_augment(cfg: AugmentConfig, size: int, crop: int | None = None) -> A.Compose | None:
    """The training augmentations; all of them act on the 4 channels together.

    With ``crop`` (``data.crop``), every training image is first cut to a
    random ``crop`` x ``crop`` window of the ``size`` x ``size`` image, even
    when the other augmentations are off.
    """
    steps: list[A.BasicTransform] = []
    if crop is not None and crop < size:
        steps.append(A.RandomCrop(height=crop, width=crop))
        size = crop
    if not cfg.enabled:
        return A.Compose(steps) if steps else None
    if cfg.hflip:
        steps.append(A.HorizontalFlip(p=0.5))
    if cfg.vflip:
        steps.append(A.VerticalFlip(p=0.5))
    if cfg.rot90:
        steps.append(A.RandomRotate90(p=0.5))
    if cfg.crop_scale[0] < 1.0:
        steps.append(A.RandomResizedCrop(size=(size, size), scale=tuple(cfg.crop_scale), p=0.5))
    if cfg.brightness_contrast > 0:
        b = cfg.brightness_contrast
        steps.append(A.RandomBrightnessContrast(brightness_limit=b, contrast_limit=b, p=0.5))
    return A.Compose(steps) if steps else None


class HPADataset(torch.utils.data.Dataset):
    """One item per sample: a normalised float32 ``(C, S, S)`` tensor and its targets.

    Items are ``(image, target)`` where target is the 28-long multi-hot vector,
    or all zeros for an unlabelled set. ``channels`` names the model's inputs
    in order (default all four); ``mean`` and ``std`` are always given for the
    four channels in :data:`~hpa_classify.classes.CHANNELS` order.
    """

    def __init__(
        self,
        data: Dataset,
        size: int,
        mean: Sequence[float],
        std: Sequence[float],
        augment: A.Compose | None = None,
        channels: Sequence[str] = CHANNELS,
    ) -> None:
        self.data = data
        self.size = size
        self.augment = augment
        self.channel_index = [CHANNELS.index(c) for c in channels]
        self.mean = np.asarray(mean, np.float32)[self.channel_index].reshape(-1, 1, 1) * 255.0
        self.std = np.asarray(std, np.float32)[self.channel_index].reshape(-1, 1, 1) * 255.0
        n = len(data)
        self.targets = to_multihot(data.labels) if data.labels is not None else np.zeros((n, 28), np.float32)

    def __len__(self) -> int:
        return len(self.data)

    def read(self, index: int) -> np.ndarray:
        """The uint8 ``(4, S, S)`` sample, before augmentation."""
        return load_sample(self.data.files[index], self.size)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.read(index)
        if len(self.channel_index) != len(CHANNELS):
            image = image[self.channel_index]
        if self.augment is not None:
            hwc = np.ascontiguousarray(image.transpose(1, 2, 0))
            image = self.augment(image=hwc)["image"].transpose(2, 0, 1)
        x = (image.astype(np.float32) - self.mean) / self.std
        return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(self.targets[index])


def make_loader(
    dataset: HPADataset, batch_size: int, num_workers: int, shuffle: bool, drop_last: bool = False
) -> DataLoader:
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=num_workers,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=num_workers > 0,
        drop_last=drop_last,
    )


class HPADataModule(L.LightningDataModule):
    """Training and validation loaders for one split of a labelled dataset."""

    def __init__(
        self, train: Dataset, val: Dataset, data_cfg: DataConfig, augment_cfg: AugmentConfig
    ) -> None:
        super().__init__()
        self.cfg = data_cfg
        augment = build_augment(augment_cfg, data_cfg.size, data_cfg.crop)
        self.train_set = HPADataset(
            train, data_cfg.size, data_cfg.mean, data_cfg.std, augment, data_cfg.channels
        )
        self.val_set = HPADataset(val, data_cfg.size, data_cfg.mean, data_cfg.std, None, data_cfg.channels)

    def train_dataloader(self) -> DataLoader:
        drop = len(self.train_set) > self.cfg.batch_size
        return make_loader(self.train_set, self.cfg.batch_size, self.cfg.num_workers, True, drop)

    def val_dataloader(self) -> DataLoader:
        return make_loader(self.val_set, self.cfg.batch_size, self.cfg.num_workers, False)
