"""The 2021 mask encoding and PredictionString, checked against plain pycocotools and the sample submission."""

from __future__ import annotations

import base64
import csv
import zlib
from collections import Counter

import numpy as np
import pytest
from helpers import SHARED_DATA
from pycocotools import mask as coco_mask

from hpa_classify.cells.rle import (
    decode_mask,
    encode_labels,
    encode_mask,
    format_prediction,
    parse_prediction,
)
from hpa_classify.classes import NUM_CLASSES_2021
from hpa_classify.errors import DataError

# pycocotools 2.0.11 decodes through an ``__array__`` that NumPy 2 warns about.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation:DeprecationWarning"
)

SAMPLE_SUBMISSION_2021 = SHARED_DATA / "hpa_labels" / "hpa2021_sample_submission.csv"
#: The mask of the sample submission's 2048 x 2048 rows: counts ``PPPP4``, one run of 4194304 zeros.
SAMPLE_MASK_2048 = "eNoLCAgIMAEABJkBdQ=="


def _coco_decode(text: str, height: int, width: int) -> np.ndarray:
    """Decode with pycocotools alone, independently of :func:`decode_mask`."""
    counts = zlib.decompress(base64.b64decode(text))
    return coco_mask.decode({"size": [height, width], "counts": counts}).astype(bool)


def _packed(counts: bytes) -> str:
    return base64.b64encode(zlib.compress(counts)).decode("ascii")


# ------------------------------------------------------------------ masks


@pytest.mark.parametrize("shape", [(7, 13), (300, 211), (1, 1), (1, 17), (17, 1)])
@pytest.mark.parametrize("density", [0.05, 0.5, 0.95])
def test_random_masks_round_trip_and_match_pycocotools(
    shape: tuple[int, int], density: float
) -> None:
    rng = np.random.default_rng(hash((shape, density)) % 2**32)
    mask = rng.random(shape) < density
    text = encode_mask(mask)
    assert text.isascii() and " " not in text
    back = decode_mask(text, *shape)
    assert back.dtype == bool and back.shape == shape
    np.testing.assert_array_equal(back, mask)
    np.testing.assert_array_equal(_coco_decode(text, *shape), mask)


def test_blobs_round_trip() -> None:
    """A cell-like mask: one filled disc, long runs."""
    yy, xx = np.mgrid[:300, :211]
    mask = (yy - 140) ** 2 + (xx - 90) ** 2 < 60**2
    text = encode_mask(mask)
    np.testing.assert_array_equal(decode_mask(text, 300, 211), mask)
    np.testing.assert_array_equal(_coco_decode(text, 300, 211), mask)


@pytest.mark.parametrize("value", [False, True])
def test_empty_and_full_masks(value: bool) -> None:
    mask = np.full((9, 4), value)
    text = encode_mask(mask)
    np.testing.assert_array_equal(decode_mask(text, 9, 4), mask)
    np.testing.assert_array_equal(_coco_decode(text, 9, 4), mask)


def test_counts_of_sixteen_zeros() -> None:
    """The counts used below for one run of 16 pixels, as pycocotools writes them."""
    assert coco_mask.encode(np.zeros((4, 4), np.uint8, order="F"))["counts"] == b"`0"


def test_zero_one_integers_are_a_mask() -> None:
    mask = np.array([[0, 1, 1], [1, 0, 0]], np.uint8)
    assert encode_mask(mask) == encode_mask(mask.astype(bool))
    np.testing.assert_array_equal(
        decode_mask(encode_mask(mask), 2, 3), mask.astype(bool)
    )


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((2, 2, 2), bool),
        np.zeros(5, bool),
        np.zeros((0, 3), bool),
        np.array([[0, 2]]),
        np.array([[0.5, 1.0]]),
    ],
)
def test_not_a_mask_is_refused(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="mask must be"):
        encode_mask(bad)


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (2048, "eNoLCAgIMAEABJkBdQ=="),
        (3072, "eNoLCAgIsAQABJ4Beg=="),
        (1728, "eNoLCAjJNgIABNkBkg=="),
    ],
)
def test_empty_mask_of_each_sample_size_is_the_sample_string(
    size: int, text: str
) -> None:
    """The sample submission's three masks are exactly our encoding of an empty mask of the row's size."""
    assert encode_mask(np.zeros((size, size), bool)) == text
    assert not decode_mask(text, size, size).any()


@pytest.mark.parametrize(
    ("text", "size", "message"),
    [
        ("not base64!", (4, 4), "not base64"),
        ("eNoLCAgIMAEABJkBdQ", (4, 4), "not base64"),  # padding cut
        ("émoji", (4, 4), "not base64"),
        (base64.b64encode(b"hello").decode(), (4, 4), "not zlib-compressed"),
        (base64.b64encode(zlib.compress(b"PPPP4")[:-3]).decode(), (4, 4), "truncated"),
        (
            base64.b64encode(zlib.compress(b"g0") + b"junk").decode(),
            (4, 4),
            "followed by other bytes",
        ),
        (
            _packed(b"`0"),
            (4, 5),
            r"cover 16 pixels, not 4 x 5 = 20",
        ),  # "`0": one run of 16
        (SAMPLE_MASK_2048, (1728, 1728), "cover 4194304 pixels, not 1728 x 1728"),
        (_packed(b"g0 "), (4, 4), "not a COCO counts character"),
        (_packed(b"\x00"), (4, 4), "not a COCO counts character"),
        (_packed(b"P"), (4, 4), "end inside a number"),
        (_packed(b"A"), (4, 4), "negative length"),  # 0x11: sign bit set, -15
        (
            _packed(b"0" * 1000),
            (2, 2),
            "decompresses to more than 35 bytes",
        ),  # a tiny zip bomb
        (SAMPLE_MASK_2048, (0, 2048), "not positive"),
        (SAMPLE_MASK_2048, (2048, -1), "not positive"),
    ],
)
def test_malformed_masks_raise_data_error(
    text: str, size: tuple[int, int], message: str
) -> None:
    with pytest.raises(DataError, match=message):
        decode_mask(text, *size)


def test_decode_error_names_where() -> None:
    with pytest.raises(
        DataError, match=r"^sub.csv line 3 \(Id abc\): mask 'xx': not base64"
    ):
        decode_mask("xx", 2, 2, where="sub.csv line 3 (Id abc)")


# ------------------------------------------------------------------ PredictionString


def test_format_prediction_writes_triples() -> None:
    a, b = encode_mask(np.eye(3, dtype=bool)), encode_mask(np.zeros((3, 3), bool))
    text = format_prediction(
        [(3, 0.5, a), (np.int64(18), np.float32(1.0), b), (0, 1e-5, a), (7, 2 / 3, b)]
    )
    assert text == f"3 0.5 {a} 18 1 {b} 0 1e-05 {a} 7 0.666667 {b}"
    assert format_prediction([]) == ""


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ((19, 0.5, "abc="), "not a class 0..18"),
        ((-1, 0.5, "abc="), "not a class 0..18"),
        ((2, 1.5, "abc="), r"not in \[0, 1\]"),
        ((2, -0.1, "abc="), r"not in \[0, 1\]"),
        ((2, float("nan"), "abc="), r"not in \[0, 1\]"),
        ((2, 0.5, "ab c="), "not one token"),
        ((2, 0.5, ""), "not one token"),
    ],
)
def test_format_prediction_refuses_bad_items(item: tuple, message: str) -> None:
    good = (0, 1.0, SAMPLE_MASK_2048)
    with pytest.raises(ValueError, match=f"triple 1: .*{message}"):
        format_prediction([good, item])


@pytest.mark.parametrize("label", [True, 2.0, "2"])
def test_format_prediction_refuses_labels_that_are_not_integers(label: object) -> None:
    with pytest.raises(TypeError, match="triple 0: label .* is not an integer"):
        format_prediction([(label, 0.5, "abc=")])


def test_parse_prediction_inverts_format() -> None:
    rng = np.random.default_rng(0)
    masks = [rng.random((11, 6)) < 0.3 for _ in range(NUM_CLASSES_2021)]
    items = [
        (label, float(rng.random()), encode_mask(m)) for label, m in enumerate(masks)
    ]
    triples = parse_prediction(format_prediction(items), 11, 6)
    assert [t[0] for t in triples] == list(range(NUM_CLASSES_2021))
    for (label, conf, _), (got_label, got_conf, got_mask), mask in zip(
        items, triples, masks
    ):
        assert got_label == label and abs(got_conf - conf) <= 5e-7
        np.testing.assert_array_equal(got_mask, mask)


@pytest.mark.parametrize("blank", ["", "   ", "\t"])
def test_parse_prediction_of_nothing(blank: str) -> None:
    assert parse_prediction(blank, 2048, 2048) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            f"0 1 {SAMPLE_MASK_2048} 3 0.5",
            "5 tokens, not a multiple of 3.*triple 1 is incomplete",
        ),
        (
            f"0 1 {SAMPLE_MASK_2048} x 0.5 {SAMPLE_MASK_2048}",
            "triple 1: label 'x' is not a class",
        ),
        (f"0 1 {SAMPLE_MASK_2048} 19 0.5 {SAMPLE_MASK_2048}", "triple 1: label '19'"),
        (f"0 1 {SAMPLE_MASK_2048} -1 0.5 {SAMPLE_MASK_2048}", "triple 1: label '-1'"),
        (f"0 1 {SAMPLE_MASK_2048} 2.0 0.5 {SAMPLE_MASK_2048}", "triple 1: label '2.0'"),
        (
            f"0 1 {SAMPLE_MASK_2048} 2 abc {SAMPLE_MASK_2048}",
            r"triple 1: confidence 'abc' is not in \[0, 1\]",
        ),
        (
            f"0 1 {SAMPLE_MASK_2048} 2 1.01 {SAMPLE_MASK_2048}",
            "triple 1: confidence '1.01'",
        ),
        (
            f"0 1 {SAMPLE_MASK_2048} 2 nan {SAMPLE_MASK_2048}",
            "triple 1: confidence 'nan'",
        ),
        (
            f"0 1 {SAMPLE_MASK_2048} 2 0.5 eNoLCAgIsAQABJ4Beg==",
            "triple 1: mask .* cover 9437184 pixels",
        ),
        (f"0 1 {SAMPLE_MASK_2048} 2 0.5 @@@@", "triple 1: mask '@@@@': not base64"),
    ],
)
def test_parse_prediction_names_the_bad_triple(text: str, message: str) -> None:
    with pytest.raises(DataError, match=f"^sub.csv line 2: .*{message}"):
        parse_prediction(text, 2048, 2048, where="sub.csv line 2")


def test_parse_prediction_refuses_non_text() -> None:
    with pytest.raises(DataError, match="is not text"):
        parse_prediction(float("nan"), 4, 4)  # type: ignore[arg-type]


# ------------------------------------------------------------------ the real sample submission


def test_sample_submission_rows() -> None:
    """Every row is ``0 1 <mask>``: class 0 at confidence 1 with an empty mask of the row's own size.

    Measured on the file: 559 rows, 462 at 2048 x 2048 (``eNoLCAgIMAEABJkBdQ==``, counts ``PPPP4``),
    68 at 1728 x 1728 (``eNoLCAjJNgIABNkBkg==``, ``PPTk2``), 29 at 3072 x 3072
    (``eNoLCAgIsAQABJ4Beg==``, ``PPPP9``). Each decodes at its own size to an all-False mask and is
    refused (DataError) at either other size.
    """
    if not SAMPLE_SUBMISSION_2021.is_file():
        pytest.skip(f"../shared/data not here: {SAMPLE_SUBMISSION_2021} is missing")
    with SAMPLE_SUBMISSION_2021.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows and list(rows[0]) == [
        "ID",
        "ImageWidth",
        "ImageHeight",
        "PredictionString",
    ]
    per_size = Counter((int(r["ImageHeight"]), int(r["ImageWidth"])) for r in rows)
    assert per_size == {(2048, 2048): 462, (1728, 1728): 68, (3072, 3072): 29}
    sizes = {int(r["ImageWidth"]) for r in rows}
    by_text: dict[str, set[tuple[int, int]]] = {}
    for line, row in enumerate(rows, start=2):
        height, width = int(row["ImageHeight"]), int(row["ImageWidth"])
        triples = parse_prediction(
            row["PredictionString"], height, width, where=f"line {line}"
        )
        assert len(triples) == 1
        label, confidence, mask = triples[0]
        assert (label, confidence, mask.shape) == (0, 1.0, (height, width))
        assert not mask.any()
        by_text.setdefault(row["PredictionString"], set()).add((height, width))
    assert by_text == {
        f"0 1 {encode_mask(np.zeros((n, n), bool))}": {(n, n)} for n in sizes
    }
    for text, ((size, _),) in by_text.items():
        for other in sizes - {size}:
            with pytest.raises(DataError, match=f"not {other} x {other}"):
                parse_prediction(text, other, other)


def test_encode_labels_equals_one_mask_at_a_time() -> None:
    rng = np.random.default_rng(11)
    for _ in range(150):
        h, w = (int(v) for v in rng.integers(1, 40, 2))
        labels = rng.integers(0, 6, (h, w)) * (rng.random((h, w)) < 0.6)
        encoded = encode_labels(labels)
        assert sorted(encoded) == [int(k) for k in np.unique(labels) if k]
        for k, text in encoded.items():
            assert text == encode_mask(labels == k)
    assert encode_labels(np.zeros((5, 5), np.uint16)) == {}
