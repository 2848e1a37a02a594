"""Loader benchmark: training samples per second from PNG files and from the packed cache.

One command, one run, the same data for every reader::

    python benchmarks/loader.py                       # 512 px synthetic data, all cores
    python benchmarks/loader.py --data /work/shared/data/hpa_samples/kaggle_layout

Readers, each with the training augmentations on (flips, rot90, random
resized crop, brightness/contrast, as :func:`hpa_classify.data.dataset.build_augment`
builds them from the default config):

(a) ``kernel``: the reader of the typical competition kernel: PIL opens the
    four PNGs, NumPy stacks them, ``skimage.transform.resize`` brings them to
    the input side, then the augmentations, then float32 normalisation and a
    transpose to ``(4, S, S)`` on the CPU;
(b) ``png``: this project's path from image files (:class:`HPADataset` on a
    :class:`~hpa_classify.data.layout.Dataset`): OpenCV decoding, augmentation,
    uint8 out (normalisation happens on the model's device);
(c) ``pack``: the same :class:`HPADataset` reading the packed cache
    (:mod:`hpa_classify.data.pack`);
(d) ``pack, old item path``: the packed cache read through the previous item
    code (NumPy transposes around the augmentations, float32 normalisation in
    the worker), to show what the item path itself gained.

"Per core" is one process reading items in the main process (``num_workers=0``,
torch and OpenCV on one thread); "all workers" is a DataLoader with one worker
per core. Rates are medians over ``--repeats`` rounds; every round measures
every reader one after another, so a busy machine slows them alike and the
ratios hold. Images are read from the page cache in every case (the data are
read once before timing).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from hpa_classify.classes import CHANNELS, DEFAULT_MEAN, DEFAULT_STD
from hpa_classify.config import AugmentConfig
from hpa_classify.data.dataset import HPADataset, build_augment
from hpa_classify.data.layout import load_dataset
from hpa_classify.data.pack import open_pack, pack

BATCH = 32


class KernelDataset(Dataset):
    """The competition-kernel reader: PIL + NumPy stack + skimage resize, float32 out."""

    def __init__(self, image_dir: Path, ids: list[str], size: int, augment) -> None:
        self.image_dir, self.ids, self.size, self.augment = image_dir, ids, size, augment
        self.mean = np.asarray(DEFAULT_MEAN, np.float32)
        self.std = np.asarray(DEFAULT_STD, np.float32)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int):
        from PIL import Image
        from skimage.transform import resize

        planes = [np.array(Image.open(self.image_dir / f"{self.ids[i]}_{c}.png")) for c in CHANNELS]
        image = np.stack(planes, axis=-1)
        image = resize(image, (self.size, self.size), mode="reflect", anti_aliasing=True)
        image = (image * 255).astype(np.uint8)
        image = self.augment(image=image)["image"]
        x = (image.astype(np.float32) / 255.0 - self.mean) / self.std
        return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1))), torch.zeros(28)


class OldItemPath(Dataset):
    """The previous item code on the same reader: NumPy transposes, float32 normalisation."""

    def __init__(self, ds: HPADataset) -> None:
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int):
        image = self.ds.read(i)
        hwc = np.ascontiguousarray(image.transpose(1, 2, 0))
        image = self.ds.augment(image=hwc)["image"].transpose(2, 0, 1)
        x = (image.astype(np.float32) - self.ds.mean) / self.ds.std
        return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(self.ds.targets[i])


def _rate(ds: Dataset, items: int, workers: int, loader_cache: dict) -> float:
    """Samples per second over ``items`` samples (whole batches) in random order."""
    if workers == 0:
        loader = DataLoader(ds, batch_size=BATCH, shuffle=True, num_workers=0)
    else:
        key = id(ds)
        if key not in loader_cache:  # persistent workers: started once, then warmed up
            loader_cache[key] = DataLoader(ds, batch_size=BATCH, shuffle=True, num_workers=workers,
                                           persistent_workers=True, prefetch_factor=4)
            for _ in loader_cache[key]:
                pass
        loader = loader_cache[key]
    n = 0
    t0 = time.perf_counter()
    while n < items:
        for x, _ in loader:
            n += len(x)
            if n >= items:
                break
    return n / (time.perf_counter() - t0)


def _make_data(work: Path, n: int, size: int) -> Path:
    from hpa_classify.data.synth import generate

    root = work / f"synth{size}-{n}"
    if not (root / "train.csv").is_file():
        print(f"generating {n} synthetic samples at {size} px in {root} ...", file=sys.stderr)
        generate(root, n_train=n, n_test=0, size=size, seed=0, min_per_class=0)
    return root


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", type=int, default=512, help="input side, px (default 512)")
    p.add_argument("--n", type=int, default=64, help="distinct synthetic samples (default 64)")
    p.add_argument("--data", type=Path, help="use this dataset (Kaggle PNG layout) instead of synthetic data")
    p.add_argument("--items", type=int, default=256, help="samples timed per reader and round")
    p.add_argument("--repeats", type=int, default=3, help="rounds; the median is reported")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="workers for the all-workers column")
    p.add_argument("--project-cores", type=int, default=16, help="cores of the projected rate (default 16)")
    p.add_argument("--work", type=Path, help="folder for the synthetic data and the pack (default: a temp folder)")
    args = p.parse_args(argv)

    torch.set_num_threads(1)
    cv2.setNumThreads(0)
    tmp = None
    if args.work is None:
        tmp = tempfile.TemporaryDirectory(prefix="hpa-bench-loader-")
        args.work = Path(tmp.name)
    args.work.mkdir(parents=True, exist_ok=True)
    root = args.data or _make_data(args.work, args.n, args.size)
    source = load_dataset(root)
    cache = args.work / f"pack-{source.csv_path.parent.name}-{args.size}"
    pack(source, cache, size=args.size, workers=args.workers)
    packed = open_pack(cache)

    augment = build_augment(AugmentConfig(), args.size)
    mean, std = DEFAULT_MEAN, DEFAULT_STD
    readers: dict[str, Callable[[], Dataset]] = {
        "(a) kernel: PIL + skimage resize, float32": lambda: KernelDataset(source.image_dir, source.ids, args.size, augment),
        "(b) project, PNG files": lambda: HPADataset(source, args.size, mean, std, augment, normalize=False),
        "(c) project, packed cache": lambda: HPADataset(packed, args.size, mean, std, augment, normalize=False),
        "(d) packed cache, old item path": lambda: OldItemPath(HPADataset(packed, args.size, mean, std, augment)),
    }
    sets = {name: make() for name, make in readers.items()}
    for ds in sets.values():  # everything into the page cache, every code path imported
        for i in range(len(source)):
            ds[i]

    load_before = os.getloadavg()[0]
    per_core: dict[str, list[float]] = {k: [] for k in sets}
    pooled: dict[str, list[float]] = {k: [] for k in sets}
    loaders: dict = {}
    for r in range(args.repeats):
        for name, ds in sets.items():
            per_core[name].append(_rate(ds, args.items, 0, loaders))
        for name, ds in sets.items():
            pooled[name].append(_rate(ds, args.items, args.workers, loaders))
        print(f"round {r + 1}/{args.repeats} done", file=sys.stderr)
    load_after = os.getloadavg()[0]

    med = {k: statistics.median(v) for k, v in per_core.items()}
    medw = {k: statistics.median(v) for k, v in pooled.items()}
    base, basew = med[next(iter(sets))], medw[next(iter(sets))]
    what = f"{len(source)} samples from {root}" if args.data else f"{len(source)} synthetic samples"
    print(f"\nLoader throughput, {args.size} px, training augmentations on, {what}; "
          f"median of {args.repeats} rounds of {args.items} samples; {os.cpu_count()} cores, "
          f"load average {load_before:.1f} before and {load_after:.1f} after\n")
    print(f"| reader | per core (samples/s) | vs (a) | {args.workers} workers (samples/s) | vs (a) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name in sets:
        print(f"| {name} | {med[name]:.1f} | {med[name] / base:.1f}x | {medw[name]:.1f} | {medw[name] / basew:.1f}x |")
    c = "(c) project, packed cache"
    print(f"\nProjected for (c) on {args.project_cores} cores: {med[c] * args.project_cores:,.0f} samples/s "
          f"(per-core rate x {args.project_cores}, assuming linear scaling over cores; measured here: "
          f"{args.workers} workers = {medw[c] / med[c]:.2f}x one core)")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
