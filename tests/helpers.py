"""Helpers that write tiny HPA-style image folders and CSVs for tests."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np

from hpa_classify.classes import CHANNELS, format_target

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
KAGGLE_LAYOUT = SHARED_DATA / "hpa_samples" / "kaggle_layout"
KAGGLE2018_TRAIN_CSV = SHARED_DATA / "hpa_labels" / "kaggle2018_train.csv"


def channel_array(
    height: int, width: int, seed: int = 0, dtype: np.dtype | type = np.uint8
) -> np.ndarray:
    """A random 2-D image covering the full range of ``dtype`` (integers) or 0-1 (floats)."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.floating):
        return rng.random((height, width)).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, int(info.max) + 1, (height, width), dtype=dtype)


def write_image(path: Path, image: np.ndarray) -> Path:
    """Write ``image`` with tifffile (.tif/.tiff) or OpenCV (anything else)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        tifffile.imwrite(path, image)
    elif not cv2.imwrite(str(path), image):
        raise OSError(f"cv2.imwrite could not write {path}")
    return path


def write_sample(
    folder: Path,
    sample_id: str,
    size: int | tuple[int, int] = 16,
    ext: str = ".png",
    seed: int = 0,
    channels: Iterable[str] = CHANNELS,
) -> dict[str, Path]:
    """Write one sample's channel files ``{Id}_{channel}{ext}``; returns channel -> path.

    ``size`` is a side or (height, width); each channel gets different pixels.
    """
    h, w = (size, size) if isinstance(size, int) else size
    files = {}
    for k, channel in enumerate(channels):
        image = channel_array(h, w, seed=seed * 10 + k)
        files[channel] = write_image(Path(folder) / f"{sample_id}_{channel}{ext}", image)
    return files


def write_table(
    path: Path,
    ids: Sequence[str],
    labels: Sequence[Sequence[int]] | None = None,
    column: str = "Target",
) -> Path:
    """Write ``Id,Target`` (or ``Id`` only when ``labels`` is None) with LF line endings."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if labels is None:
        lines = ["Id"] + list(ids)
    else:
        lines = [f"Id,{column}"] + [f"{i},{format_target(t)}" for i, t in zip(ids, labels)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def make_dataset(
    csv_path: Path,
    image_dir: Path,
    n: int = 4,
    size: int | tuple[int, int] = 16,
    ext: str = ".png",
    labels: Sequence[Sequence[int]] | None = None,
) -> list[str]:
    """Write a CSV with ``n`` samples ``s0``... and their images; returns the Ids."""
    ids = [f"s{i}" for i in range(n)]
    if labels is None:
        labels = [[i % 28] for i in range(n)]
    write_table(csv_path, ids, labels)
    for i, sample_id in enumerate(ids):
        write_sample(image_dir, sample_id, size=size, ext=ext, seed=i)
    return ids


def truncate(path: Path, keep: float = 0.5) -> Path:
    """Cut a file down to the first ``keep`` fraction of its bytes."""
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: int(len(data) * keep)])
    return Path(path)
