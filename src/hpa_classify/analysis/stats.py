"""The numbers of a dataset analysis: label counts, co-occurrence, pixel statistics, duplicates.

Everything here is plain NumPy on label lists and uint8 arrays; reading files
in bulk is done by :func:`read_pixels` (threads, since OpenCV decodes without
holding the GIL) and :func:`find_duplicate_files` (hashes only files whose
sizes collide).

>>> s = label_stats([[0], [0, 2], [2, 25]])
>>> s.counts[[0, 2, 25]].tolist(), s.labels_per_image
([2, 2, 1], {1: 1, 2: 2})
>>> int(s.cooccurrence[0, 2]), float(s.conditional()[2, 25])
(1, 0.5)
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hpa_classify.classes import CHANNELS, CLASS_NAMES, NUM_CLASSES, to_multihot
from hpa_classify.data.io import load_sample, resize
from hpa_classify.errors import DataError
from hpa_classify.fileio import file_digest

log = logging.getLogger(__name__)

#: Intensity levels of the 8-bit channels every image is read as.
LEVELS = 256


# ----------------------------------------------------------------------------- labels


@dataclass
class LabelStats:
    """Class counts and co-occurrence of a labelled table.

    Attributes
    ----------
    n_images : int
    counts : ndarray, shape (28,)
        Images carrying each class.
    cooccurrence : ndarray, shape (28, 28)
        Images carrying both class i and class j; the diagonal is ``counts``.
    labels_per_image : dict of int to int
        Number of labels -> number of images with that many.
    """

    n_images: int
    counts: np.ndarray
    cooccurrence: np.ndarray
    labels_per_image: dict[int, int]

    def conditional(self) -> np.ndarray:
        """``P(j | i)``: of the images with class i (row), the fraction that also have j.

        Rows of absent classes are NaN; the diagonal is 1 where defined.
        """
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.cooccurrence / self.counts[:, None].astype(np.float64)

    @property
    def mean_labels(self) -> float:
        """Average number of labels per image."""
        return float(self.counts.sum() / self.n_images) if self.n_images else 0.0

    def rare(self, min_count: int) -> list[int]:
        """Classes present in fewer than ``min_count`` images (absent ones excluded)."""
        return [c for c in range(len(self.counts)) if 0 < self.counts[c] < min_count]

    def absent(self) -> list[int]:
        """Classes no image carries."""
        return [c for c in range(len(self.counts)) if self.counts[c] == 0]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (NaN written as null)."""
        cond = np.round(self.conditional(), 4)
        return {
            "n_images": self.n_images,
            "n_labels": int(self.counts.sum()),
            "mean_labels_per_image": round(self.mean_labels, 4),
            "classes": [
                {
                    "id": c,
                    "name": CLASS_NAMES[c],
                    "count": int(self.counts[c]),
                    "fraction": round(float(self.counts[c]) / max(self.n_images, 1), 6),
                }
                for c in range(len(self.counts))
            ],
            "labels_per_image": {str(k): v for k, v in self.labels_per_image.items()},
            "cooccurrence": self.cooccurrence.astype(int).tolist(),
            "conditional": [[None if np.isnan(v) else float(v) for v in row] for row in cond],
        }


def label_stats(labels: Sequence[Sequence[int]]) -> LabelStats:
    """Count classes, labels per image and class pairs of a list of label lists.

    Parameters
    ----------
    labels : sequence of sequences of int
        The class ids of each image (as :func:`hpa_classify.data.layout.read_table` gives).

    Returns
    -------
    LabelStats

    Examples
    --------
    >>> label_stats([[0, 25], [25]]).cooccurrence[25, 0]
    np.int64(1)
    """
    m = to_multihot(labels).astype(np.int64)
    counts = m.sum(axis=0)
    cooc = m.T @ m
    per_image = np.bincount(m.sum(axis=1), minlength=1) if len(m) else np.zeros(1, np.int64)
    hist = {k: int(v) for k, v in enumerate(per_image) if v}
    return LabelStats(n_images=len(m), counts=counts, cooccurrence=cooc, labels_per_image=hist)


# ----------------------------------------------------------------------------- choosing samples


def random_subset(n: int, k: int, seed: int = 0) -> list[int]:
    """``min(n, k)`` distinct indices of ``range(n)``, chosen at random, in ascending order.

    >>> random_subset(5, 10)
    [0, 1, 2, 3, 4]
    >>> len(random_subset(100, 7, seed=1))
    7
    """
    if k >= n:
        return list(range(n))
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(n, size=k, replace=False).tolist())


def montage_picks(
    labels: Sequence[Sequence[int]] | None,
    candidates: Sequence[int],
    per_class: int,
    seed: int = 0,
) -> dict[int, list[int]]:
    """Up to ``per_class`` images of each class to show, fewest labels first.

    An image with a class alone shows that class better than one that also
    carries Nucleoplasm and Cytosol, so candidates are sorted by their number
    of labels and, among equals, at random.

    Parameters
    ----------
    labels : sequence of label lists, or None
        Without labels, class ``-1`` gets ``per_class`` random images.
    candidates : sequence of int
        Indices allowed (e.g. the valid samples).
    per_class : int
    seed : int

    Returns
    -------
    dict
        Class id (or -1) -> indices into ``labels``; classes without any
        candidate map to an empty list.

    Examples
    --------
    >>> montage_picks([[0, 2], [2], [0]], [0, 1, 2], per_class=1)[2]
    [1]
    """
    rng = np.random.default_rng(seed)
    order = list(candidates)
    tiebreak = rng.random(len(order))
    if labels is None:
        return {-1: [order[i] for i in np.argsort(tiebreak)[:per_class]]}
    ranked = sorted(range(len(order)), key=lambda i: (len(labels[order[i]]), tiebreak[i]))
    picks: dict[int, list[int]] = {c: [] for c in range(NUM_CLASSES)}
    for i in ranked:
        idx = order[i]
        for c in labels[idx]:
            if len(picks[c]) < per_class:
                picks[c].append(idx)
    return picks


# ----------------------------------------------------------------------------- pixels


@dataclass
class PixelStats:
    """Per-channel intensity distribution of a set of images, each image weighted equally.

    Attributes
    ----------
    n_images : int
    histograms : ndarray, shape (4, 256)
        Fraction of pixels at each 8-bit level, averaged over images
        (channels in :data:`~hpa_classify.classes.CHANNELS` order).
    """

    n_images: int
    histograms: np.ndarray

    @property
    def mean(self) -> np.ndarray:
        """Mean pixel value per channel on the 0-1 scale (as ``data.mean`` takes it)."""
        levels = np.arange(LEVELS) / (LEVELS - 1)
        return self.histograms @ levels

    @property
    def std(self) -> np.ndarray:
        """Standard deviation per channel on the 0-1 scale (as ``data.std`` takes it)."""
        levels = np.arange(LEVELS) / (LEVELS - 1)
        var = self.histograms @ levels**2 - self.mean**2
        return np.sqrt(np.maximum(var, 0.0))

    def to_json(self) -> dict[str, Any]:
        return {
            "n_images": self.n_images,
            "scale": "0-1 (8-bit value / 255)",
            "channels": {
                ch: {
                    "mean": round(float(self.mean[i]), 6),
                    "std": round(float(self.std[i]), 6),
                    "histogram": [round(float(v), 8) for v in self.histograms[i]],
                }
                for i, ch in enumerate(CHANNELS)
            },
        }


def channel_histograms(image: np.ndarray) -> np.ndarray:
    """Fraction of pixels at each level, per channel, of one ``(4, H, W)`` uint8 image.

    >>> h = channel_histograms(np.zeros((4, 2, 2), np.uint8))
    >>> h.shape, float(h[0, 0])
    ((4, 256), 1.0)
    """
    planes = image.reshape(image.shape[0], -1)
    out = np.stack([np.bincount(p, minlength=LEVELS) for p in planes]).astype(np.float64)
    return out / planes.shape[1]


@dataclass
class PixelPass:
    """What one pass over the images found.

    Attributes
    ----------
    pixels : PixelStats or None
        Statistics of the images asked for (None when none could be read).
    thumbnails : dict
        Sample index -> ``(4, t, t)`` uint8 thumbnail.
    problems : list of (Id, message)
        Images that could not be decoded.
    """

    pixels: PixelStats | None
    thumbnails: dict[int, np.ndarray] = field(default_factory=dict)
    problems: list[tuple[str, str]] = field(default_factory=list)


def read_pixels(
    ids: Sequence[str],
    files: Sequence[dict[str, Path]],
    stats_index: Sequence[int],
    thumb_index: Sequence[int],
    thumb_size: int = 96,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> PixelPass:
    """Decode the samples at ``stats_index`` and ``thumb_index`` once each.

    Parameters
    ----------
    ids, files : sequences
        Sample Ids and their channel files (``Dataset.ids``, ``Dataset.files``).
    stats_index : sequence of int
        Samples whose pixels enter :class:`PixelStats`.
    thumb_index : sequence of int
        Samples to keep a ``thumb_size`` square thumbnail of.
    thumb_size : int
    workers : int, optional
        Threads (default: up to 8).
    progress : callable, optional
        Called with 1 after each sample.

    Returns
    -------
    PixelPass
    """
    want_stats = set(stats_index)
    want_thumb = set(thumb_index)
    todo = sorted(want_stats | want_thumb)

    def work(i: int) -> tuple[int, np.ndarray | None, np.ndarray | None, str | None]:
        try:
            image = load_sample(files[i])
        except DataError as exc:
            return i, None, None, str(exc)
        hist = channel_histograms(image) if i in want_stats else None
        thumb = np.stack([resize(p, thumb_size) for p in image]) if i in want_thumb else None
        return i, hist, thumb, None

    total = np.zeros((len(CHANNELS), LEVELS))
    n = 0
    out = PixelPass(pixels=None)
    with ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 1)) as pool:
        for i, hist, thumb, error in pool.map(work, todo):
            if error is not None:
                out.problems.append((ids[i], error))
            if hist is not None:
                total += hist
                n += 1
            if thumb is not None:
                out.thumbnails[i] = thumb
            if progress is not None:
                progress(1)
    if n:
        out.pixels = PixelStats(n_images=n, histograms=total / n)
    return out


def file_formats(files: Sequence[dict[str, Path]]) -> dict[str, int]:
    """Channel files per extension (lower case, with the dot), most common first.

    >>> file_formats([{"red": Path("a_red.PNG"), "green": Path("a_green.png")}])
    {'.png': 2}
    """
    found: dict[str, int] = defaultdict(int)
    for sample in files:
        for path in sample.values():
            found[path.suffix.lower()] += 1
    return dict(sorted(found.items(), key=lambda kv: -kv[1]))


# ----------------------------------------------------------------------------- duplicates


@dataclass
class DuplicateGroup:
    """Channel files with identical bytes.

    Attributes
    ----------
    sha256 : str
    n_bytes : int
    members : list of (Id, channel)
    """

    sha256: str
    n_bytes: int
    members: list[tuple[str, str]]

    def to_json(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "bytes": self.n_bytes, "members": [list(m) for m in self.members]}


def find_duplicate_files(
    ids: Sequence[str], files: Sequence[dict[str, Path]], workers: int | None = None
) -> list[DuplicateGroup]:
    """Groups of byte-identical channel files, across all samples and channels.

    Only files whose sizes collide are hashed (SHA-256), so a dataset without
    duplicates costs one ``stat`` per file. Empty and unreadable files are left
    out (validation reports them).

    Returns
    -------
    list of DuplicateGroup
        Largest groups first.
    """
    by_size: dict[int, list[tuple[str, str, Path]]] = defaultdict(list)
    for sample_id, sample in zip(ids, files, strict=True):
        for channel, path in sample.items():
            try:
                size = path.stat().st_size
            except OSError:
                continue
            if size:
                by_size[size].append((sample_id, channel, path))
    suspects = [(size, m) for size, group in by_size.items() if len(group) > 1 for m in group]
    if not suspects:
        return []

    def digest(item: tuple[int, tuple[str, str, Path]]) -> tuple[int, str, str, str | None]:
        size, (sample_id, channel, path) = item
        try:
            return size, sample_id, channel, file_digest(path, "sha256")
        except OSError:
            return size, sample_id, channel, None

    by_hash: dict[tuple[str, int], list[tuple[str, str]]] = defaultdict(list)
    with ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 1)) as pool:
        for size, sample_id, channel, sha in pool.map(digest, suspects):
            if sha is not None:
                by_hash[(sha, size)].append((sample_id, channel))
    groups = [
        DuplicateGroup(sha256=sha, n_bytes=size, members=members)
        for (sha, size), members in by_hash.items()
        if len(members) > 1
    ]
    return sorted(groups, key=lambda g: (-len(g.members), g.members[0]))


def duplicate_samples(groups: Sequence[DuplicateGroup]) -> list[list[str]]:
    """Sets of Ids whose four channels are all byte-identical to each other's.

    >>> g = [DuplicateGroup(str(k), 1, [("a", c), ("b", c)]) for k, c in enumerate(CHANNELS)]
    >>> duplicate_samples(g)
    [['a', 'b']]
    >>> duplicate_samples(g[:3])
    []
    """
    key: dict[str, dict[str, str]] = defaultdict(dict)
    for group in groups:
        for sample_id, channel in group.members:
            key[sample_id][channel] = group.sha256
    by_key: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for sample_id, hashes in key.items():
        if len(hashes) == len(CHANNELS):
            by_key[tuple(hashes[c] for c in CHANNELS)].append(sample_id)
    return sorted(sorted(v) for v in by_key.values() if len(v) > 1)
