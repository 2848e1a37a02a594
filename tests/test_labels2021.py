"""The HPA 2021 label space (19 classes): the maps to and from the 28 classes, 2021 Label
strings, 2021 scores from 2018 probabilities, and 2021 ``ID,Label`` tables read as labels."""

from __future__ import annotations

import csv
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hpa_classify.classes import (
    CANONICAL_2018,
    CLASS_NAMES,
    CLASS_NAMES_2021,
    NEGATIVE_2021,
    NUM_CLASSES,
    NUM_CLASSES_2021,
    TO_2021,
    format_label_2021,
    from_2021,
    parse_label_2021,
    parse_target,
    probs_to_2021,
    to_2021,
)
from hpa_classify.data.layout import load_dataset, read_table
from hpa_classify.data.pack import open_pack, pack
from hpa_classify.errors import DataError, LabelError
from hpa_classify.inference.probs import probs_frame, read_probs
from helpers import KAGGLE2018_TRAIN_CSV, SHARED_DATA, make_dataset

HPA2021_TRAIN_CSV = SHARED_DATA / "hpa_labels" / "hpa2021_train.csv"
FULLRES_LABELS = SHARED_DATA / "hpa_samples" / "hpa2021_fullres" / "labels.csv"
needs_tables = pytest.mark.skipif(
    not (KAGGLE2018_TRAIN_CSV.is_file() and HPA2021_TRAIN_CSV.is_file()),
    reason="the official 2018 and 2021 train.csv are not in ../shared/data/hpa_labels",
)
needs_fullres = pytest.mark.skipif(
    not FULLRES_LABELS.is_file(), reason="../shared/data/hpa_samples/hpa2021_fullres is absent"
)

#: The documented map, by name, written out here apart from the package's table.
SAME_NAME = {n: CLASS_NAMES_2021.index(n) for n in CLASS_NAMES if n in CLASS_NAMES_2021}
MERGED = {
    "Peroxisomes": 17, "Endosomes": 17, "Lysosomes": 17, "Lipid droplets": 17, "Cytoplasmic bodies": 17,
    "Focal adhesion sites": 9, "Microtubule organizing center": 12, "Cell junctions": 13,
    "Microtubule ends": None, "Cytokinetic bridge": None, "Rods & rings": None,
}

location_sets = st.sets(st.integers(0, NEGATIVE_2021 - 1), min_size=1, max_size=NEGATIVE_2021)
label_sets_2021 = st.one_of(location_sets, st.just({NEGATIVE_2021}))


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- constants


def test_constants() -> None:
    assert NUM_CLASSES_2021 == len(CLASS_NAMES_2021) == 19
    assert NEGATIVE_2021 == 18 and CLASS_NAMES_2021[NEGATIVE_2021] == "Negative"
    assert CLASS_NAMES_2021[17] == "Vesicles and punctate cytosolic patterns"
    assert len(TO_2021) == NUM_CLASSES == 28
    assert len(CANONICAL_2018) == NUM_CLASSES_2021


def test_to_2021_table_matches_the_names() -> None:
    expected = {c: MERGED[n] if n in MERGED else SAME_NAME[n] for c, n in enumerate(CLASS_NAMES)}
    assert dict(enumerate(TO_2021)) == expected
    assert NEGATIVE_2021 not in TO_2021
    assert set(TO_2021) - {None} == set(range(NEGATIVE_2021))  # every location class is reached


def test_canonical_2018_maps_back() -> None:
    for new, old in enumerate(CANONICAL_2018):
        if new == NEGATIVE_2021:
            assert old is None
        else:
            assert old is not None and TO_2021[old] == new
    assert CANONICAL_2018[9] == 12 and CANONICAL_2018[12] == 19
    assert CANONICAL_2018[13] == 21 and CANONICAL_2018[17] == 26


# ----------------------------------------------------------------------------- mapping


def test_to_2021_examples() -> None:
    assert to_2021([7, 2, 1, 0]) == [0, 1, 2, 7]
    assert to_2021([12, 13, 25, 21, 22]) == [9, 13, 16]
    assert to_2021([8, 9, 10, 20, 26]) == [17]
    assert to_2021([16, 17]) == [11]
    assert to_2021([15]) == to_2021([16]) == to_2021([27]) == to_2021([]) == [NEGATIVE_2021]
    assert to_2021(np.array([19, 18])) == [12]


@pytest.mark.parametrize("bad", [[28], [-1], [0, 99]])
def test_to_2021_refuses_classes_out_of_range(bad: list[int]) -> None:
    with pytest.raises(LabelError, match="out of range 0-27"):
        to_2021(bad)


def test_from_2021_examples() -> None:
    assert from_2021([16, 9, 13]) == [12, 21, 25]
    assert from_2021([12, 17, 8]) == [11, 19, 26]
    assert from_2021([NEGATIVE_2021]) == []
    assert from_2021([]) == []


@pytest.mark.parametrize(("bad", "fragment"), [([19], "out of range 0-18"), ([-1], "out of range"),
                                                ([18, 0], "Negative (18) combined")])
def test_from_2021_errors(bad: list[int], fragment: str) -> None:
    with pytest.raises(LabelError) as info:
        from_2021(bad)
    assert fragment in str(info.value)


@given(label_sets_2021)
def test_from_2021_then_to_2021_round_trip(ids: set[int]) -> None:
    assert to_2021(from_2021(ids)) == sorted(ids)


@given(st.sets(st.integers(0, NUM_CLASSES - 1), max_size=NUM_CLASSES))
def test_to_2021_is_a_valid_label_set(ids: set[int]) -> None:
    out = to_2021(ids)
    assert out == sorted(set(out)) and out
    assert parse_label_2021(format_label_2021(out)) == out
    mapped = {TO_2021[c] for c in ids} - {None}
    assert out == (sorted(mapped) if mapped else [NEGATIVE_2021])


# ----------------------------------------------------------------------------- Label strings


def test_parse_and_format_label_2021() -> None:
    assert parse_label_2021("7|1|2|0") == [0, 1, 2, 7]
    assert parse_label_2021(" 16 | 0 ") == [0, 16]
    assert parse_label_2021("18") == [NEGATIVE_2021]
    assert parse_label_2021("13|13") == [13]  # as in 146 rows of the official train.csv
    assert format_label_2021([7, 1, 2, 0]) == "0|1|2|7"
    assert format_label_2021(np.array([13, 13, 0])) == "0|13"
    assert format_label_2021([]) == ""


@given(label_sets_2021, st.randoms(use_true_random=False))
def test_format_then_parse_label_2021(ids: set[int], rnd) -> None:
    order = sorted(ids)
    rnd.shuffle(order)
    assert parse_label_2021("|".join(map(str, order))) == sorted(ids)
    assert parse_label_2021(format_label_2021(ids)) == sorted(ids)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty Label"),
        ("  ", "empty Label"),
        ("19", "class 19 out of range 0-18 in Label '19'"),
        ("-1", "class -1 out of range"),
        ("0|x", "'x' is not a class id in Label '0|x'"),
        ("0 1", "'0 1' is not a class id"),
        ("0||1", "'' is not a class id"),
        ("2.5", "'2.5' is not a class id"),
        ("18|0", "Negative (18) combined with other classes in Label '18|0'"),
        ("3|18|18", "Negative (18) combined"),
    ],
)
def test_parse_label_2021_errors_name_the_row(text: str, fragment: str) -> None:
    with pytest.raises(LabelError) as info:
        parse_label_2021(text, row="img-42")
    message = str(info.value)
    assert message.startswith("row img-42: ")
    assert fragment in message
    with pytest.raises(LabelError) as info:
        parse_label_2021(text)
    assert not str(info.value).startswith("row")


# ----------------------------------------------------------------------------- scores


def test_probs_to_2021_takes_the_largest_member() -> None:
    rng = np.random.default_rng(0)
    p = rng.random((5, 3, NUM_CLASSES)).astype(np.float32)
    out = probs_to_2021(p)
    assert out.shape == (5, 3, NUM_CLASSES_2021) and out.dtype == np.float32
    for new in range(NEGATIVE_2021):
        members = [c for c, n in enumerate(TO_2021) if n == new]
        np.testing.assert_array_equal(out[..., new], p[..., members].max(axis=-1))
    located = [c for c, n in enumerate(TO_2021) if n is not None]
    np.testing.assert_allclose(out[..., NEGATIVE_2021], 1 - p[..., located].max(axis=-1), rtol=1e-6)


def test_probs_to_2021_leaves_out_classes_without_a_2021_class() -> None:
    p = np.zeros(NUM_CLASSES)
    p[[15, 16, 27]] = 1.0
    out = probs_to_2021(p)
    assert out[:NEGATIVE_2021].tolist() == [0.0] * NEGATIVE_2021
    assert out[NEGATIVE_2021] == 1.0
    p[[20, 26]] = [0.7, 0.4]
    assert probs_to_2021(p)[17] == 0.7
    assert probs_to_2021(np.ones(NUM_CLASSES, dtype=int)).dtype == np.float64


@pytest.mark.parametrize("shape", [(19,), (4, 27), ()])
def test_probs_to_2021_refuses_other_shapes(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="28"):
        probs_to_2021(np.zeros(shape))


# ----------------------------------------------------------------------------- read_table


def test_read_table_reads_the_2021_layout(tmp_path: Path) -> None:
    path = _write(tmp_path / "train.csv", "ID,Label\na,7|1|2|0\nb,18\nc,13|13|9\nd,17\n")
    ids, labels = read_table(path)
    assert ids == ["a", "b", "c", "d"]
    assert labels == [[0, 1, 2, 7], [], [12, 21], [26]]
    assert [to_2021(t) for t in labels] == [[0, 1, 2, 7], [18], [9, 13], [17]]


def test_read_table_2021_any_case_and_extra_columns(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.csv", "\ufeffnote,label, id \r\nx,16|0,a\r\n")
    assert read_table(path) == (["a"], [[0, 25]])


def test_read_table_prefers_target_over_label(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.csv", "Id,Label,Target\na,18,24\n")
    assert read_table(path) == (["a"], [[24]])


def test_read_table_does_not_read_label2021(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.csv", "Id,Label2021\na,18\n")
    assert read_table(path) == (["a"], None)


@pytest.mark.parametrize(
    ("label", "fragment"),
    [
        ("19", "class 19 out of range 0-18"),
        ("18|5", "Negative (18) combined"),
        ("", "empty Label"),
        ("1 2", "'1 2' is not a class id"),
        ("1|" * 150, "is not a list of class ids 0-18"),
    ],
)
def test_read_table_bad_label_names_file_line_and_id(tmp_path: Path, label: str, fragment: str) -> None:
    path = _write(tmp_path / "train.csv", f"ID,Label\nok-1,0\nbad-img,{label}\n")
    with pytest.raises(LabelError) as info:
        read_table(path)
    message = str(info.value)
    assert message.startswith(f"row 3 (Id bad-img) of {path}")
    assert fragment in message
    assert isinstance(info.value, DataError)


def test_read_table_allow_empty_only_when_asked(tmp_path: Path) -> None:
    path = _write(tmp_path / "index.csv", "Id,Target\na,0 5\nb,\n")
    with pytest.raises(LabelError, match=r"row 3 \(Id b\).*empty Target"):
        read_table(path)
    assert read_table(path, allow_empty=True) == (["a", "b"], [[0, 5], []])


def test_probability_table_keeps_an_image_without_classes(tmp_path: Path) -> None:
    probs = np.full((2, NUM_CLASSES), 0.25, np.float32)
    path = tmp_path / "probs.csv"
    probs_frame(["a", "b"], probs, [[0, 2], []]).to_csv(path, index=False)
    ids, back, labels = read_probs(path)
    assert ids == ["a", "b"] and labels == [[0, 2], []]
    np.testing.assert_array_equal(back, probs)


def test_pack_of_2021_data_keeps_negative_images(tmp_path: Path) -> None:
    csv_path = tmp_path / "data" / "train.csv"
    ids = make_dataset(csv_path, tmp_path / "data" / "train", n=3, size=16)
    _write(csv_path, "ID,Label\n" + "".join(f"{i},{lab}\n" for i, lab in zip(ids, ["0|16", "18", "13"])))
    data = load_dataset(csv_path)
    assert data.labels == [[0, 25], [], [21]]
    pack(data, tmp_path / "packed", size=16, workers=1)
    assert open_pack(tmp_path / "packed", require_labels=True).labels == [[0, 25], [], [21]]


# ----------------------------------------------------------------------------- the official tables


@needs_fullres
def test_fullres_samples_agree_except_the_two_reannotated() -> None:
    rows = _rows(FULLRES_LABELS)
    assert len(rows) == 7
    differ = {
        r["Id"][:8] for r in rows if to_2021(parse_target(r["Target"])) != parse_label_2021(r["Label2021"])
    }
    assert differ == {"a34d8680", "a7faf0b4"}
    by_id = {r["Id"][:8]: r for r in rows}
    assert (by_id["a34d8680"]["Target"], by_id["a34d8680"]["Label2021"]) == ("24", "18")
    assert (by_id["a7faf0b4"]["Target"], by_id["a7faf0b4"]["Label2021"]) == ("21", "17")
    # read_table reads the 2018 Target of this table, not Label2021
    ids, labels = read_table(FULLRES_LABELS)
    assert labels == [parse_target(r["Target"]) for r in rows]


@needs_tables
def test_the_map_reproduces_the_official_2021_labels() -> None:
    old = {r["Id"]: [int(t) for t in r["Target"].split()] for r in _rows(KAGGLE2018_TRAIN_CSV)}
    new = {r["ID"]: sorted({int(t) for t in r["Label"].split("|")}) for r in _rows(HPA2021_TRAIN_CSV)}
    assert len(new) == 21_806 and set(new) <= set(old)
    agree = sum(to_2021(old[i]) == new[i] for i in new)
    # cytokinetic bridge to Mitotic spindle instead: the same as adding 17 to those images
    bridged = sum(to_2021(old[i] + [17] * (16 in old[i])) == new[i] for i in new)
    bridge = [i for i in new if 16 in old[i]]
    ends = [i for i in new if 15 in old[i]]
    assert (agree, bridged) == (21_234, 20_937)
    assert (len(bridge), sum(11 not in new[i] for i in bridge)) == (358, 322)
    assert (len(ends), sum(10 not in new[i] for i in ends)) == (12, 12)
    doc = " ".join((to_2021.__doc__ or "").split())
    stated = re.search(r"for ([\d,]+) of the 21,806 images", doc)
    assert stated is not None and int(stated.group(1).replace(",", "")) == agree
    assert "20,937" in doc and "322 of the 358" in doc and "12 Microtubule ends" in doc


@needs_tables
def test_canonical_classes_are_the_most_frequent_members() -> None:
    old = {r["Id"]: set(r["Target"].split()) for r in _rows(KAGGLE2018_TRAIN_CSV)}
    new = {r["ID"]: {int(t) for t in r["Label"].split("|")} for r in _rows(HPA2021_TRAIN_CSV)}
    counts: dict[int, Counter[int]] = {}
    for k in range(NEGATIVE_2021):
        members = [c for c, n in enumerate(TO_2021) if n == k]
        counts[k] = Counter({c: sum(str(c) in old[i] for i in new if k in new[i]) for c in members})
        assert CANONICAL_2018[k] == counts[k].most_common(1)[0][0]
    assert dict(counts[9]) == {12: 513, 13: 475}
    assert dict(counts[12]) == {18: 592, 19: 1131}
    assert dict(counts[13]) == {21: 2616, 22: 535}
    assert dict(counts[17]) == {8: 48, 9: 45, 10: 28, 20: 140, 26: 296}


@needs_tables
def test_read_table_reads_the_official_2021_train_csv() -> None:
    ids, labels = read_table(HPA2021_TRAIN_CSV)
    assert len(ids) == 21_806 and labels is not None
    assert sum(not t for t in labels) == sum(r["Label"] == "18" for r in _rows(HPA2021_TRAIN_CSV))
    assert all(to_2021(t) == parse_label_2021(r["Label"]) for t, r in zip(labels, _rows(HPA2021_TRAIN_CSV)))
