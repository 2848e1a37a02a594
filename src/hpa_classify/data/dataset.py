"""Torch datasets, albumentations pipelines and the Lightning data module."""

from __future__ import annotations

import functools
import logging
import os
import shutil
from collections.abc import Sequence, Sized

import albumentations as A
import cv2
import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from hpa_classify.classes import CHANNELS, NUM_CLASSES, to_multihot
from hpa_classify.config import AugmentConfig, DataConfig
from hpa_classify.data.layout import Dataset
from hpa_classify.data.workers import init_loader_worker
from hpa_classify.errors import ConfigError, DataError
from hpa_classify.seeding import AUGMENT, SHUFFLE, generators, stream_seed

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


def augment_chw(augment: A.Compose, image: np.ndarray) -> np.ndarray:
    """Apply albumentations (which work on ``(H, W, C)``) to a ``(C, H, W)`` uint8 image.

    OpenCV's ``merge``/``split`` interleave and de-interleave the planes about
    20 times faster than a NumPy transpose copy (0.1 ms against 2.4 ms at
    512 px, 4 channels), which made the transposes cost more than the
    augmentations themselves.
    """
    if len(image) == 1:
        out = augment(image=np.ascontiguousarray(image[0][:, :, None]))["image"]
        return np.ascontiguousarray(out.reshape(out.shape[0], out.shape[1], 1).transpose(2, 0, 1))
    out = augment(image=cv2.merge([np.ascontiguousarray(p) for p in image]))["image"]
    return np.stack(cv2.split(out))


def scaled_stats(
    mean: Sequence[float], std: Sequence[float], channels: Sequence[str] = CHANNELS
) -> tuple[np.ndarray, np.ndarray]:
    """``mean`` and ``std`` (given for the four channels, 0-1 scale) of ``channels``, x 255, shaped (C, 1, 1)."""
    idx = [CHANNELS.index(c) for c in channels]
    m = np.asarray(mean, np.float32)[idx].reshape(-1, 1, 1) * 255.0
    s = np.asarray(std, np.float32)[idx].reshape(-1, 1, 1) * 255.0
    return m, s


@functools.lru_cache(maxsize=32)
def device_stats(
    mean: tuple[float, ...], std: tuple[float, ...], channels: tuple[str, ...], device: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`scaled_stats` as float32 tensors on ``device``, made once per device and reused,
    so that normalising a batch copies nothing from the host (no wait for the GPU).

    >>> a = device_stats((0.1,) * 4, (0.2,) * 4, ("red", "green"), "cpu")
    >>> a is device_stats((0.1,) * 4, (0.2,) * 4, ("red", "green"), "cpu"), tuple(a[0].shape)
    (True, (2, 1, 1))
    """
    m, s = scaled_stats(mean, std, channels)
    return torch.as_tensor(m, device=device), torch.as_tensor(s, device=device)


def normalize(x: torch.Tensor, mean: np.ndarray | torch.Tensor, std: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 ``(..., C, H, W)`` to float32 ``(x - mean) / std``, on ``x``'s device.

    ``mean`` and ``std`` are in 0-255 units, shaped ``(C, 1, 1)`` (see
    :func:`scaled_stats`). Data loaders hand uint8 batches over (a quarter of
    the bytes to copy, pin and move) and the model's side normalises them.

    >>> normalize(torch.full((1, 2, 1, 1), 255, dtype=torch.uint8),
    ...           np.zeros((2, 1, 1)), np.full((2, 1, 1), 255.0)).flatten().tolist()
    [1.0, 1.0]
    """
    m = torch.as_tensor(mean, dtype=torch.float32, device=x.device)  # no copy for device_stats' tensors
    s = torch.as_tensor(std, dtype=torch.float32, device=x.device)
    return x.float().sub_(m).div_(s)


def loader_workers(setting: int | str, processes: int = 1, validation: bool = False) -> int:
    """Data-loading processes for one training (or prediction) process.

    ``auto`` shares this machine's cores among the ``processes`` that run on
    it (a DDP run on 4 GPUs starts 4), and gives validation half as many;
    a number is taken as it is.

    >>> loader_workers(3), loader_workers("auto", processes=10**6)
    (3, 0)
    """
    if setting != "auto":
        return int(setting)
    per_process = (os.cpu_count() or 1) // max(processes, 1)
    return per_process // 2 if validation else per_process


def check_shared_memory(batch_bytes: int, workers: int, prefetch: int = 2, path: str = "/dev/shm") -> None:
    """Refuse loaders whose batches in flight would not fit in shared memory (``/dev/shm``).

    Worker processes hand batches over through shared memory; a container's
    default of 64 MiB is soon full, and the loader then dies with a bus error.
    Nothing is checked where ``path`` does not exist.
    """
    if workers <= 0 or not os.path.isdir(path):
        return
    need = batch_bytes * workers * prefetch
    free = shutil.disk_usage(path).free
    if need > free:
        raise ConfigError(
            f"{path} has {free / 2**20:.0f} MiB free, and {workers} loader workers with "
            f"{batch_bytes / 2**20:.0f} MiB batches need about {need / 2**20:.0f} MiB: lower data.num_workers "
            "or data.batch_size, or give the container more shared memory (docker run --shm-size=8g)"
        )


class EpochSampler(torch.utils.data.Sampler):
    """The training order: a shuffle of ``n`` samples that depends only on (seed, epoch).

    Yields ``(epoch, index)`` keys rather than bare indices, so that
    :class:`HPADataset` draws each item's augmentation from the stream of
    (seed, epoch, index). A run is then the same whatever the number of
    workers, and a run resumed at an epoch boundary sees what an uninterrupted
    run saw. Lightning calls :meth:`set_epoch` before every epoch (and passes
    it on when it wraps this sampler for distributed training).

    >>> s = EpochSampler(4, seed=0)
    >>> sorted(i for _, i in s)
    [0, 1, 2, 3]
    >>> s.set_epoch(3)
    >>> {e for e, _ in s}
    {3}
    """

    def __init__(self, n: int, seed: int = 0) -> None:
        self.n = n
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self):  # type: ignore[override]
        epoch = self.epoch
        g = torch.Generator().manual_seed(stream_seed(self.seed, SHUFFLE, epoch))
        for i in torch.randperm(self.n, generator=g).tolist():
            yield (epoch, i)


class ShardSampler(torch.utils.data.DistributedSampler):
    """Process ``rank`` of ``world`` reads samples ``rank, rank + world, ...``: each sample once.

    The validation sampler of a distributed run. Lightning's default
    (torch's ``DistributedSampler``) repeats samples so that every process
    gets as many; the repeats would count twice in the validation loss and
    F1. Here the processes' shares differ by at most one sample, which
    validation allows (only the first step synchronises, so every process
    needs one sample). Being a ``DistributedSampler``, Lightning keeps it as
    it is.

    >>> [list(ShardSampler(range(5), world, rank)) for world, rank in ((2, 0), (2, 1))]
    [[0, 2, 4], [1, 3]]
    """

    def __init__(self, dataset: Sized, world: int, rank: int) -> None:
        super().__init__(dataset, num_replicas=world, rank=rank, shuffle=False)  # type: ignore[arg-type]
        self.num_samples = len(range(rank, len(dataset), world))
        self.total_size = len(dataset)

    def __iter__(self):  # type: ignore[override]
        return iter(range(self.rank, self.total_size, self.num_replicas))


class HPADataset(torch.utils.data.Dataset):
    """One item per sample: a normalised float32 ``(C, S, S)`` tensor and its targets.

    Items are ``(image, target)`` where target is the NUM_CLASSES-long multi-hot vector,
    or all zeros for an unlabelled set. ``channels`` names the model's inputs
    in order (default all four); ``mean`` and ``std`` are always given for the
    four channels in :data:`~hpa_classify.classes.CHANNELS` order. With
    ``normalize=False`` an item is the uint8 image instead, for batches that
    :func:`normalize` turns to float on the model's device.

    An item is asked for by index, or by an ``(epoch, index)`` key from
    :class:`EpochSampler`; with a key, the augmentation is drawn from the
    stream of (``seed``, epoch, index), so it does not depend on which worker
    made the item or on what came before.
    """

    def __init__(
        self,
        data: Dataset,
        size: int,
        mean: Sequence[float],
        std: Sequence[float],
        augment: A.Compose | None = None,
        channels: Sequence[str] = CHANNELS,
        seed: int = 0,
        normalize: bool = True,
    ) -> None:
        self.data = data
        self.normalize = normalize
        self.seed = seed
        self.size = size
        self.augment = augment
        self.channel_index = [CHANNELS.index(c) for c in channels]
        self.mean = np.asarray(mean, np.float32)[self.channel_index].reshape(-1, 1, 1) * 255.0
        self.std = np.asarray(std, np.float32)[self.channel_index].reshape(-1, 1, 1) * 255.0
        n = len(data)
        self.targets = to_multihot(data.labels) if data.labels is not None else np.zeros((n, NUM_CLASSES), np.float32)

    def __len__(self) -> int:
        return len(self.data)

    def read(self, index: int) -> np.ndarray:
        """The uint8 ``(4, S, S)`` sample, before augmentation (image files or a packed cache)."""
        return self.data.read(index, self.size)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(key, tuple):
            epoch, index = key
            if self.augment is not None:
                self.augment.set_random_state(*generators(self.seed, AUGMENT, epoch, index))
        else:
            index = key
        image = self.read(index)
        if len(self.channel_index) != len(CHANNELS):
            image = image[self.channel_index]
        if self.augment is not None:
            image = augment_chw(self.augment, image)
        x = torch.from_numpy(np.ascontiguousarray(image))
        if self.normalize:
            x = normalize(x, self.mean, self.std)
        return x, torch.from_numpy(self.targets[index])


def make_loader(
    dataset: HPADataset,
    batch_size: int,
    num_workers: int,
    shuffle: bool,
    drop_last: bool = False,
    sampler: torch.utils.data.Sampler | None = None,
) -> DataLoader:
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle if sampler is None else False,
        sampler=sampler,
        num_workers=num_workers,
        worker_init_fn=init_loader_worker,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=num_workers > 0,
        drop_last=drop_last,
    )


class HPADataModule(L.LightningDataModule):
    """Training and validation loaders for one split of a labelled dataset.

    The loaders' batches are uint8 (a quarter of the bytes of float32 to
    copy between processes, pin and move); :meth:`on_after_batch_transfer`
    normalises them once they are on the model's device.
    """

    def __init__(
        self,
        train: Dataset,
        val: Dataset,
        data_cfg: DataConfig,
        augment_cfg: AugmentConfig,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.cfg = data_cfg
        self.seed = seed
        augment = build_augment(augment_cfg, data_cfg.size, data_cfg.crop)
        # uint8 batches; the LightningModule normalises them on its device
        self.train_set = HPADataset(
            train, data_cfg.size, data_cfg.mean, data_cfg.std, augment, data_cfg.channels, seed,
            normalize=False,
        )
        self.val_set = HPADataset(
            val, data_cfg.size, data_cfg.mean, data_cfg.std, None, data_cfg.channels, normalize=False
        )

    def _workers(self, validation: bool) -> int:
        trainer = self.trainer
        local = int(getattr(trainer, "num_devices", 1) or 1) if trainer is not None else 1
        workers = loader_workers(self.cfg.num_workers, local, validation)
        batch_bytes = self.cfg.batch_size * len(self.cfg.channels) * self.cfg.size**2  # uint8
        check_shared_memory(batch_bytes, workers)
        return workers

    def train_dataloader(self) -> DataLoader:
        drop = len(self.train_set) > self.cfg.batch_size
        sampler = EpochSampler(len(self.train_set), self.seed)
        return make_loader(
            self.train_set, self.cfg.batch_size, self._workers(False), False, drop, sampler
        )

    def val_dataloader(self) -> DataLoader:
        trainer = self.trainer
        sampler = None
        if trainer is not None and trainer.world_size > 1:
            if len(self.val_set) < trainer.world_size:  # a process without images would hang the others
                raise DataError(
                    f"the validation split has {len(self.val_set)} images for {trainer.world_size} "
                    "processes; raise data.val_fraction or use fewer devices"
                )
            sampler = ShardSampler(self.val_set, trainer.world_size, trainer.global_rank)
        return make_loader(self.val_set, self.cfg.batch_size, self._workers(True), False, sampler=sampler)

    def on_after_batch_transfer(self, batch: tuple[torch.Tensor, torch.Tensor], dataloader_idx: int):  # type: ignore[override]
        x, y = batch
        if x.dtype == torch.uint8:
            stats = device_stats(tuple(self.cfg.mean), tuple(self.cfg.std), tuple(self.cfg.channels), str(x.device))
            x = normalize(x, *stats)
        return x, y
