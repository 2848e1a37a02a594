"""The 28 classes: Target strings and multi-hot matrices."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hpa_classify.classes import (
    CHANNELS,
    CLASS_NAMES,
    DEFAULT_MEAN,
    DEFAULT_STD,
    KAGGLE2018_CLASS_COUNTS,
    KAGGLE2018_N_IMAGES,
    NUM_CLASSES,
    format_target,
    from_multihot,
    parse_target,
    to_multihot,
)
from hpa_classify.errors import DataError, LabelError

class_ids = st.integers(0, NUM_CLASSES - 1)
id_sets = st.sets(class_ids, min_size=1, max_size=NUM_CLASSES)


def test_constants_are_consistent() -> None:
    assert NUM_CLASSES == 28
    assert len(set(CLASS_NAMES)) == 28
    assert CHANNELS == ("red", "green", "blue", "yellow")
    assert len(KAGGLE2018_CLASS_COUNTS) == NUM_CLASSES
    assert max(KAGGLE2018_CLASS_COUNTS) < KAGGLE2018_N_IMAGES
    assert len(DEFAULT_MEAN) == len(DEFAULT_STD) == len(CHANNELS)
    assert all(s > 0 for s in DEFAULT_STD)


@given(id_sets)
def test_format_then_parse_round_trip(ids: set[int]) -> None:
    text = format_target(ids)
    assert parse_target(text) == sorted(ids)


@given(id_sets, st.randoms(use_true_random=False), st.sampled_from([" ", "  ", "\t"]))
def test_parse_then_format_is_canonical(ids: set[int], rnd, sep: str) -> None:
    order = sorted(ids)
    rnd.shuffle(order)
    messy = " " + sep.join(str(i) for i in order) + sep
    parsed = parse_target(messy)
    assert parsed == sorted(ids)
    assert format_target(parsed) == " ".join(str(i) for i in sorted(ids))
    assert parse_target(format_target(parsed)) == parsed


def test_format_target_sorts_and_deduplicates() -> None:
    assert format_target([16, 0, 16]) == "0 16"
    assert format_target(np.array([3, 1])) == "1 3"
    assert format_target([]) == ""


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("28", "class 28 out of range 0-27"),
        ("-1", "class -1 out of range"),
        ("0 1 99", "class 99 out of range"),
        ("a", "'a' is not a class id"),
        ("1,2", "'1,2' is not a class id"),
        ("2.5", "'2.5' is not a class id"),
        ("", "empty Target"),
        ("   ", "empty Target"),
        ("3 1 3", "class 3 repeated"),
    ],
)
def test_parse_target_errors_name_the_row(text: str, fragment: str) -> None:
    with pytest.raises(LabelError) as info:
        parse_target(text, row="img-42")
    message = str(info.value)
    assert message.startswith("row img-42: ")
    assert fragment in message


def test_parse_target_error_without_row_and_error_types() -> None:
    with pytest.raises(LabelError) as info:
        parse_target("28")
    assert not str(info.value).startswith("row")
    assert issubclass(LabelError, DataError)


def test_parse_target_row_number() -> None:
    with pytest.raises(LabelError, match=r"^row 7: "):
        parse_target("x", row=7)


def test_to_multihot() -> None:
    y = to_multihot([[0, 2], [27], []])
    assert y.shape == (3, NUM_CLASSES)
    assert y.dtype == np.float32
    assert y[0].nonzero()[0].tolist() == [0, 2]
    assert y[1].nonzero()[0].tolist() == [27]
    assert y[2].sum() == 0
    assert set(np.unique(y).tolist()) == {0.0, 1.0}
    assert to_multihot([]).shape == (0, NUM_CLASSES)


@given(st.lists(st.sets(class_ids, max_size=6).map(sorted), max_size=12))
def test_multihot_round_trip(labels: list[list[int]]) -> None:
    y = to_multihot(labels)
    assert y.sum() == sum(len(ids) for ids in labels)
    assert from_multihot(y) == labels


def test_from_multihot_thresholds_at_half() -> None:
    probs = np.zeros((2, NUM_CLASSES))
    probs[0, [1, 5]] = [0.51, 0.5]
    probs[1, 27] = 1.0
    assert from_multihot(probs) == [[1], [27]]


@pytest.mark.parametrize("token", ["1_0", "+3", "٣", "0x1"])
def test_parse_target_accepts_plain_digits_only(token: str) -> None:
    with pytest.raises(LabelError, match="not a class id"):
        parse_target(token, row=7)


@given(st.text(max_size=40))
def test_parse_target_answers_any_text(text: str) -> None:
    """Any string is either a valid Target (sorted, distinct, in range) or a LabelError naming the row."""
    try:
        ids = parse_target(text, row="r1")
    except LabelError as exc:
        assert str(exc).startswith("row r1: ")
        return
    assert ids == sorted(set(ids)) and ids
    assert all(0 <= i < NUM_CLASSES for i in ids)
    assert parse_target(format_target(ids)) == ids
