"""What a dataset reads from disk: the files and folders a command must never write over."""

from __future__ import annotations

from pathlib import Path

from hpa_classify.data.layout import Dataset
from hpa_classify.data.pack import PackedDataset


def input_files(data: Dataset) -> list[Path]:
    """The label table and every channel file of ``data``."""
    files = [data.csv_path]
    for sample in data.files:
        files.extend(sample.values())
    return files


def input_folders(data: Dataset) -> list[Path]:
    """Folders whose whole content ``data`` owns: a pack's folder (empty for plain files)."""
    return [data.root] if isinstance(data, PackedDataset) else []
