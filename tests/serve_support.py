"""Helpers of the ``hpa serve`` tests: a small run to serve, multipart bodies, real samples."""

from __future__ import annotations

import uuid
from pathlib import Path

import cv2
import numpy as np

from helpers import KAGGLE_LAYOUT, make_dataset

from hpa_classify.classes import CHANNELS

# A 20k-parameter timm test network at 32 px, one short epoch: a run in seconds.
SERVE_RUN_YAML = """\
name: serve-tiny
seed: 1
data: {size: 32, batch_size: 8, num_workers: 0}
model: {name: test_efficientnet, pretrained: none}
train: {epochs: 1, precision: "32", accelerator: cpu}
predict: {tta: 2, batch_size: 16}
evaluate: {pr_figures: false}
"""


def make_serve_run(work: Path) -> tuple[Path, Path]:
    """Train the tiny run on 24 random images; returns ``(run_dir, data_root)``."""
    from hpa_classify.config import load_config
    from hpa_classify.data.layout import checked, load_dataset
    from hpa_classify.train.single import train_run

    root = work / "data"
    labels = [[i % 5, 5 + i % 3] for i in range(24)]
    make_dataset(root / "train.csv", root / "train", n=24, size=48, labels=labels)
    config = work / "serve.yaml"
    config.write_text(SERVE_RUN_YAML)
    run = work / "run"
    train_run(load_config(config), checked(load_dataset(root)), run)
    return run, root


def real_sample_ids() -> list[str]:
    """Ids of the real Kaggle-layout samples in the shared data (empty when absent)."""
    if not KAGGLE_LAYOUT.is_dir():
        return []
    return sorted(p.name[: -len("_green.png")] for p in KAGGLE_LAYOUT.glob("*_green.png"))


def channel_files(folder: Path, sample_id: str, ext: str = ".png") -> dict[str, bytes]:
    """The four channel files of one sample, as bytes by channel."""
    return {c: (folder / f"{sample_id}_{c}{ext}").read_bytes() for c in CHANNELS}


def png_bytes(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", image)
    assert ok
    return data.tobytes()


def random_channels(size: int | tuple[int, int] = 40, seed: int = 0) -> dict[str, bytes]:
    """Four random 8-bit PNG channels."""
    h, w = (size, size) if isinstance(size, int) else size
    rng = np.random.default_rng(seed)
    return {c: png_bytes(rng.integers(0, 256, (h, w), dtype=np.uint8)) for c in CHANNELS}


def multipart(fields: list[tuple[str, bytes]], filename: str = "upload.png") -> tuple[bytes, str]:
    """A ``multipart/form-data`` body and its Content-Type, made by hand (for bodies httpx would not make)."""
    boundary = uuid.uuid4().hex
    out = bytearray()
    for name, data in fields:
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\n"
                "Content-Type: application/octet-stream\r\n\r\n").encode()
        out += data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


def huge_header_png(width: int, height: int) -> bytes:
    """A small valid PNG whose header claims ``width`` x ``height`` px (CRC not fixed: only the header matters)."""
    data = bytearray(png_bytes(np.zeros((8, 8), np.uint8)))
    data[16:24] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
    return bytes(data)
