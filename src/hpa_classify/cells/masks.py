"""Label images on disk: reading with checks, atomic uint16 PNG writing, nuclei matched to cells.

A label image holds one integer per pixel: 0 is background, every other
value one object. The package writes them as 16-bit grey PNGs,
``{Id}_nuclei.png`` and ``{Id}_cells.png``, where a cell and its nucleus share
one id. Label images made elsewhere (Cellpose, HPA-Cell-Segmentation, drawn
by hand) are read from 8- or 16-bit grey PNGs or integer TIFFs and checked
against the field they belong to.
"""

from __future__ import annotations

import io
import os
import struct
from pathlib import Path

import cv2
import numpy as np
import tifffile

from hpa_classify.data.io import PNG_SIGNATURE, TIFF_SIGNATURES, png_size, read_file
from hpa_classify.errors import DataError
from hpa_classify.fileio import atomic_path

__all__ = [
    "LABEL_EXTENSIONS",
    "find_label_file",
    "label_png_shape",
    "match_nuclei",
    "read_cells",
    "read_labels",
    "relabel",
    "write_labels",
    "write_png",
]

#: File endings a label image may have, in the order they are looked for.
LABEL_EXTENSIONS = (".png", ".tif", ".tiff")

#: Largest id a uint16 label image holds.
MAX_LABEL = 65535


def label_path(folder: str | os.PathLike[str], sample_id: str, kind: str) -> Path:
    """Where the package writes ``kind`` (``nuclei`` or ``cells``) of ``sample_id``.

    >>> label_path("out", "abc", "cells").as_posix()
    'out/abc_cells.png'
    """
    return Path(folder) / f"{sample_id}_{kind}.png"


def find_label_file(folder: str | os.PathLike[str], sample_id: str, kind: str) -> Path | None:
    """The existing ``{Id}_{kind}`` file in ``folder`` (.png, .tif or .tiff), or None."""
    for ext in LABEL_EXTENSIONS:
        path = Path(folder) / f"{sample_id}_{kind}{ext}"
        if path.is_file():
            return path
    return None


def _decode(data: bytes, path: Path) -> np.ndarray:
    if data.startswith(PNG_SIGNATURE):
        png_size(data, path)
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise DataError(f"{path}: not a readable PNG (corrupt or truncated?)")
        return image
    if data[:4] in TIFF_SIGNATURES:
        try:
            with tifffile.TiffFile(io.BytesIO(data)) as tif:
                return np.squeeze(tif.pages[0].asarray())
        except Exception as exc:  # tifffile raises many kinds on bad bytes
            raise DataError(f"{path}: not a readable TIFF ({type(exc).__name__})") from None
    raise DataError(f"{path}: a label image must be a PNG or TIFF file")


def read_labels(path: str | os.PathLike[str], shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read a label image as uint16 ``(H, W)``, checking its type, values and shape.

    Raises
    ------
    DataError
        Naming the file: missing, unreadable, not one channel, not integers
        (a float or colour image is not a label image), negative ids, ids over
        65535, or a shape other than ``shape``.
    """
    path = Path(path)
    image = _decode(read_file(path, "label image"), path)
    if image.ndim != 2:
        raise DataError(
            f"{path}: a label image must have one channel, got shape {image.shape} "
            "(a colour rendering of labels cannot be read back as ids)"
        )
    if image.dtype == np.bool_:
        image = image.astype(np.uint8)
    if not np.issubdtype(image.dtype, np.integer):
        raise DataError(f"{path}: a label image must hold integers, got pixel type {image.dtype}")
    if shape is not None and image.shape != tuple(shape):
        raise DataError(
            f"{path}: label image is {image.shape[1]}x{image.shape[0]} px, "
            f"but its field is {shape[1]}x{shape[0]} px"
        )
    if image.size and int(image.min()) < 0:
        raise DataError(f"{path}: negative label {int(image.min())}")
    if image.size and int(image.max()) > MAX_LABEL:
        raise DataError(f"{path}: label {int(image.max())} is over {MAX_LABEL}")
    return image.astype(np.uint16, copy=False)


def write_png(path: str | os.PathLike[str], image: np.ndarray, compression: int = 3) -> Path:
    """Write a grey (or OpenCV's BGR) ``image`` as PNG, atomically; returns the path."""
    path = Path(path)
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(image), [cv2.IMWRITE_PNG_COMPRESSION, compression])
    if not ok:
        raise DataError(f"{path}: could not encode the image as PNG")
    with atomic_path(path) as tmp:
        tmp.write_bytes(encoded.tobytes())
    return path


def write_labels(path: str | os.PathLike[str], labels: np.ndarray) -> Path:
    """Write ``labels`` as a 16-bit grey PNG, atomically; returns the path."""
    path = Path(path)
    if labels.ndim != 2 or (labels.size and (labels.min() < 0 or labels.max() > MAX_LABEL)):
        raise DataError(f"{path}: labels must be 2-D ids in 0..{MAX_LABEL}")
    return write_png(path, labels.astype(np.uint16))


def read_cells(
    folder: str | os.PathLike[str], sample_id: str, shape: tuple[int, int] | None = None
) -> np.ndarray:
    """The cell label image of ``sample_id`` in ``folder`` (as the package writes it), checked against ``shape``."""
    return read_labels(label_path(folder, sample_id, "cells"), shape)


def label_png_shape(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    """``(H, W)`` of a complete 16-bit grey PNG written by :func:`write_labels`, else None.

    Reads the header and the file's end only: a quick check that an earlier
    run finished the file.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(26)
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 12))
            tail = fh.read()
    except OSError:
        return None
    if len(head) < 26 or not head.startswith(PNG_SIGNATURE) or head[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", head[16:24])
    bit_depth, colour = head[24], head[25]
    if bit_depth != 16 or colour != 0 or not tail.startswith(b"\x00\x00\x00\x00IEND"):
        return None
    return height, width


def relabel(labels: np.ndarray) -> np.ndarray:
    """Ids renumbered 1..n in the order of their values (0 stays 0), as int32.

    >>> relabel(np.array([[0, 7, 7], [3, 0, 9]])).tolist()
    [[0, 2, 2], [1, 0, 3]]
    """
    values = np.unique(labels)
    values = values[values != 0]
    lut = np.zeros(int(labels.max()) + 1 if labels.size else 1, np.int32)
    lut[values] = np.arange(1, len(values) + 1, dtype=np.int32)
    return lut[labels]


def match_nuclei(cells: np.ndarray, nuclei: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Give each cell the id of its own nucleus: ``(cells, nuclei)`` with shared ids 1..n.

    Cells are numbered 1..n. Each cell keeps the nucleus that covers most of
    its pixels, clipped to the cell; other nuclei, and nucleus pixels outside
    every cell, are dropped. A cell without a nucleus keeps an empty one.

    >>> cells = np.array([[5, 5, 0, 9, 9]])
    >>> nuclei = np.array([[0, 2, 0, 1, 1]])
    >>> [a.tolist() for a in match_nuclei(cells, nuclei)]
    [[[1, 1, 0, 2, 2]], [[0, 1, 0, 2, 2]]]
    """
    cells = relabel(cells)
    n = int(cells.max()) if cells.size else 0
    out = np.zeros(cells.shape, np.int32)
    inside = (cells > 0) & (nuclei > 0)
    if n == 0 or not inside.any():
        return cells, out
    pairs = cells[inside].astype(np.int64) * (int(nuclei.max()) + 1) + nuclei[inside]
    values, counts = np.unique(pairs, return_counts=True)
    cell_of, nucleus_of = np.divmod(values, int(nuclei.max()) + 1)
    best = np.zeros(n + 1, np.int64)  # the nucleus with most pixels in each cell
    most = np.zeros(n + 1, np.int64)
    for c, k, m in zip(cell_of, nucleus_of, counts):
        if m > most[c]:
            best[c], most[c] = k, m
    keep = inside & (best[cells] == nuclei)
    out[keep] = cells[keep]
    return cells, out
