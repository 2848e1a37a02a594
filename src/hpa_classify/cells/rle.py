"""Cell masks as the 2021 competition writes them, and its PredictionString.

A mask becomes text in three steps: COCO's compressed run-length encoding of
the mask in column-major order (``pycocotools.mask.encode``), whose ``counts``
bytes are compressed with zlib (level 9) and written in base64. A submission
row holds one triple ``label confidence mask`` per class and cell, all on one
line, separated by spaces.

The masks of the competition's ``sample_submission.csv`` are empty masks of
the size of their row: ``eNoLCAgIMAEABJkBdQ==`` holds the counts ``PPPP4``, a
single run of 2048 * 2048 background pixels, and is exactly what
:func:`encode_mask` writes for an empty 2048 x 2048 mask (the 1728 x 1728 and
3072 x 3072 rows carry their own). At any other size it is refused.

>>> mask = np.zeros((3, 4), bool)
>>> mask[1:, 2] = True
>>> text = encode_mask(mask)
>>> bool((decode_mask(text, 3, 4) == mask).all())
True
>>> format_prediction([(5, 0.25, text)]) == f"5 0.25 {text}"
True
"""

from __future__ import annotations

import base64
import binascii
import math
import operator
import re
import zlib
from collections.abc import Iterable

import numpy as np
from pycocotools import mask as coco_mask

from hpa_classify.classes import NUM_CLASSES_2021
from hpa_classify.errors import DataError, brief

__all__ = ["decode_mask", "encode_labels", "encode_mask", "format_prediction", "parse_prediction"]

_LABEL = re.compile(r"[0-9]{1,3}")
_LAST = NUM_CLASSES_2021 - 1


def _prefix(where: str) -> str:
    return f"{where}: " if where else ""


def encode_mask(mask: np.ndarray) -> str:
    """One 2-D boolean (or 0/1) mask as base64 text of the zlib-compressed COCO RLE counts.

    >>> encode_mask(np.zeros((2048, 2048), bool))
    'eNoLCAgIMAEABJkBdQ=='
    """
    mask = np.asarray(mask)
    if mask.ndim != 2 or mask.size == 0:
        raise ValueError(
            f"a mask must be a non-empty 2-D array, not of shape {mask.shape}"
        )
    binary = np.issubdtype(mask.dtype, np.number) and np.isin(mask, (0, 1)).all()
    if mask.dtype != bool and not binary:
        raise ValueError(f"a mask must be boolean or hold only 0 and 1 ({mask.dtype})")
    counts = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))["counts"]
    return _pack(counts)


def _pack(counts: bytes) -> str:
    return base64.b64encode(zlib.compress(counts, zlib.Z_BEST_COMPRESSION)).decode("ascii")


def encode_labels(labels: np.ndarray) -> dict[int, str]:
    """The mask of every id of a label image, encoded as :func:`encode_mask` would, in one pass.

    The label image is read once in column-major order as runs of equal ids;
    the runs of one id, with the gaps between them, are that id's mask's
    run lengths, which pycocotools compresses. Much faster than one
    :func:`encode_mask` per cell on a large field.

    >>> labels = np.array([[0, 2, 2], [1, 1, 2]])
    >>> all(text == encode_mask(labels == k) for k, text in encode_labels(labels).items())
    True
    """
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.size == 0:
        raise ValueError(f"a label image must be a non-empty 2-D array, not of shape {labels.shape}")
    h, w = labels.shape
    flat = labels.ravel(order="F")
    starts = np.flatnonzero(np.r_[True, flat[1:] != flat[:-1]])
    ends = np.r_[starts[1:], flat.size]
    values = flat[starts]
    order = np.argsort(values, kind="stable")
    out: dict[int, str] = {}
    for k, first, last in _groups(values[order]):
        if k == 0:
            continue
        s, e = starts[order[first:last]], ends[order[first:last]]
        # background before each run, the run, ... and the background after the last one
        counts = np.empty(2 * len(s) + 1, np.int64)
        counts[0::2] = np.r_[s, flat.size] - np.r_[0, e]
        counts[1::2] = e - s
        if counts[-1] == 0:  # a mask that reaches the last pixel ends on its run, as COCO writes it
            counts = counts[:-1]
        rle = coco_mask.frPyObjects({"counts": counts.tolist(), "size": [h, w]}, h, w)
        out[int(k)] = _pack(rle["counts"])
    return out


def _groups(sorted_values: np.ndarray) -> list[tuple[int, int, int]]:
    """``(value, first, last)`` of each block of equal values in a sorted array."""
    if sorted_values.size == 0:
        return []
    cut = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1], True])
    return [(int(sorted_values[a]), int(a), int(b)) for a, b in zip(cut[:-1], cut[1:], strict=True)]


def _runs(counts: bytes) -> list[int]:
    """COCO's compressed counts read back into run lengths (background run first).

    Each number is written in 5-bit groups, lowest first, as characters from
    ``0`` (48) on; bit 0x20 says another group follows, bit 0x10 of the last
    one is the sign. From the fourth number on (index 3), each is stored as
    the difference to the number two places before it.

    >>> _runs(b"PPPP4"), _runs(b"314018"), _runs(b"0T32Tl0")
    ([4194304], [3, 1, 4, 1, 5, 9], [0, 100, 2, 1000])
    """
    runs: list[int] = []
    value, shift = 0, 0
    for byte in counts:
        group = byte - 48
        if not 0 <= group < 64:
            raise ValueError(f"byte {byte} is not a COCO counts character")
        value |= (group & 0x1F) << shift
        shift += 5
        if group & 0x20:
            continue
        if group & 0x10:
            value -= 1 << shift
        if len(runs) > 2:
            value += runs[-2]
        if value < 0:
            raise ValueError(f"run {len(runs)} has negative length {value}")
        runs.append(value)
        value, shift = 0, 0
    if shift:
        raise ValueError("the counts end inside a number")
    return runs


def decode_mask(text: str, height: int, width: int, where: str = "") -> np.ndarray:
    """The boolean mask of shape ``(height, width)`` that :func:`encode_mask` wrote as ``text``.

    Bad base64, a bad or truncated zlib stream, counts that are malformed or do
    not cover exactly ``height * width`` pixels, and sizes that are not
    positive raise :class:`~hpa_classify.errors.DataError`; its message starts
    with ``where`` (the caller's file, row or Id) when given.

    >>> bool(decode_mask("eNoLCAgIMAEABJkBdQ==", 2048, 2048).any())
    False
    >>> decode_mask("eNoLCAgIMAEABJkBdQ==", 1728, 1728)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    hpa_classify.errors.DataError: mask '...': its runs cover 4194304 pixels, not 1728 x 1728 = 2985984
    """
    height, width = operator.index(height), operator.index(width)
    head = f"{_prefix(where)}mask {brief(text, 40)}"
    if height <= 0 or width <= 0:
        raise DataError(f"{head}: image size {height} x {width} is not positive")
    n_pixels = height * width
    try:
        packed = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise DataError(f"{head}: not base64 ({exc})") from None
    # COCO needs a few characters per run at most and no mask has more runs than
    # pixels + 1: anything longer is not a mask of this size (and may be a zip bomb).
    limit = 7 * (n_pixels + 1)
    inflate = zlib.decompressobj()
    try:
        counts = inflate.decompress(packed, limit)
    except zlib.error as exc:
        raise DataError(f"{head}: not zlib-compressed ({exc})") from None
    if inflate.unconsumed_tail:
        raise DataError(f"{head}: decompresses to more than {limit} bytes")
    if not inflate.eof or inflate.unused_data:
        raise DataError(f"{head}: zlib stream truncated or followed by other bytes")
    try:
        runs = _runs(counts)
    except ValueError as exc:
        raise DataError(f"{head}: bad COCO counts {brief(counts, 40)}: {exc}") from None
    if (total := sum(runs)) != n_pixels:
        size = f"{height} x {width} = {n_pixels}"
        raise DataError(f"{head}: its runs cover {total} pixels, not {size}")
    values = np.arange(len(runs)) % 2 == 1
    return np.repeat(values, runs).reshape(width, height).T


def format_prediction(items: Iterable[tuple[int, float, str]]) -> str:
    """The PredictionString of one image: ``label confidence mask`` triples joined by spaces.

    Confidences are written with 6 significant digits (``f"{c:.6g}"``, so 1.0
    is ``1`` and values under 1e-4 take an exponent, ``1e-05``): more than enough
    to rank the cells, though values alike in their first 6 digits become ties.
    A label outside 0..18, a confidence outside [0, 1] or a mask that is not one
    token raise :class:`ValueError`; a label that is not an integer :class:`TypeError`.

    >>> format_prediction([(0, 1.0, "eNoLCAgIMAEABJkBdQ=="), (18, 1 / 3, "abc=")])
    '0 1 eNoLCAgIMAEABJkBdQ== 18 0.333333 abc='
    >>> format_prediction([])
    ''
    """
    parts: list[str] = []
    for k, (label, confidence, mask) in enumerate(items):
        if isinstance(label, bool) or not isinstance(label, (int, np.integer)):
            raise TypeError(f"triple {k}: label {brief(label)} is not an integer")
        if not 0 <= label < NUM_CLASSES_2021:
            raise ValueError(f"triple {k}: label {label} is not a class 0..{_LAST}")
        confidence = float(confidence)
        if not 0.0 <= confidence <= 1.0:
            raise ValueError(f"triple {k}: confidence {confidence} is not in [0, 1]")
        if not isinstance(mask, str) or len(mask.split()) != 1:
            raise ValueError(f"triple {k}: mask {brief(mask)} is not one token")
        parts.append(f"{int(label)} {confidence:.6g} {mask}")
    return " ".join(parts)


def parse_prediction(
    text: str, height: int, width: int, where: str = ""
) -> list[tuple[int, float, np.ndarray]]:
    """Every ``(label, confidence, mask)`` of a PredictionString, masks decoded at ``height x width``.

    Triples that repeat a mask string share one decoded array (the same object).
    An empty (or blank) string holds no triple. A token count that is not a
    multiple of 3, a label outside 0..18, a confidence that is not a number in
    [0, 1] or a mask that :func:`decode_mask` refuses raise
    :class:`~hpa_classify.errors.DataError` naming the triple (counted from 0).
    The sample submission's row decodes at its own size to an empty mask:

    >>> [(label, conf, mask.shape, int(mask.sum())) for label, conf, mask in
    ...  parse_prediction("0 1 eNoLCAgIMAEABJkBdQ==", 2048, 2048)]
    [(0, 1.0, (2048, 2048), 0)]
    >>> parse_prediction("", 5, 5)
    []
    """
    prefix = _prefix(where)
    if not isinstance(text, str):
        raise DataError(f"{prefix}the PredictionString {brief(text)} is not text")
    tokens = text.split()
    if len(tokens) % 3:
        raise DataError(
            f"{prefix}the PredictionString has {len(tokens)} tokens, not a multiple "
            f"of 3 (label confidence mask): triple {len(tokens) // 3} is incomplete"
        )
    triples: list[tuple[int, float, np.ndarray]] = []
    decoded: dict[str, np.ndarray] = {}  # a mask repeated (one per class of a cell) is decoded once
    for k in range(len(tokens) // 3):
        label_text, conf_text, mask_text = tokens[3 * k : 3 * k + 3]
        here = f"{prefix}triple {k}"
        if not _LABEL.fullmatch(label_text) or int(label_text) >= NUM_CLASSES_2021:
            raise DataError(
                f"{here}: label {brief(label_text)} is not a class 0..{_LAST}"
            )
        try:
            confidence = float(conf_text)
        except ValueError:
            confidence = math.nan
        if not 0.0 <= confidence <= 1.0:
            raise DataError(f"{here}: confidence {brief(conf_text)} is not in [0, 1]")
        mask = decoded.get(mask_text)
        if mask is None:
            mask = decoded[mask_text] = decode_mask(mask_text, height, width, where=here)
        triples.append((int(label_text), confidence, mask))
    return triples
