"""Finding a dataset on disk, reading its CSV, and validating its samples."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import tifffile

from hpa_classify.classes import CHANNELS
from hpa_classify.data.layout import (
    checked,
    image_size,
    load_dataset,
    read_table,
    resolve,
    validate,
)
from hpa_classify.errors import DataError, LabelError
from helpers import (
    KAGGLE2018_TRAIN_CSV,
    KAGGLE_LAYOUT,
    channel_array,
    make_dataset,
    truncate,
    write_image,
    write_sample,
    write_table,
)

needs_kaggle_layout = pytest.mark.skipif(
    not KAGGLE_LAYOUT.is_dir(), reason=f"real HPA samples not found at {KAGGLE_LAYOUT}"
)
needs_kaggle_labels = pytest.mark.skipif(
    not KAGGLE2018_TRAIN_CSV.is_file(), reason=f"Kaggle 2018 labels not found at {KAGGLE2018_TRAIN_CSV}"
)


def write_csv(path: Path, text: str | bytes) -> Path:
    if isinstance(text, str):
        text = text.encode("utf-8")
    path.write_bytes(text)
    return path


# ----------------------------------------------------------------------------- resolve


def kaggle_root(root: Path) -> Path:
    write_table(root / "train.csv", ["a"], [[0]])
    (root / "train").mkdir(parents=True)
    write_table(root / "sample_submission.csv", ["b"], [[0]], column="Predicted")
    (root / "test").mkdir()
    return root


def test_resolve_kaggle_root_prefers_train(tmp_path: Path) -> None:
    root = kaggle_root(tmp_path / "root")
    assert resolve(root) == (root / "train.csv", root / "train")
    assert resolve(root, prefer="train") == (root / "train.csv", root / "train")


def test_resolve_kaggle_root_prefer_test(tmp_path: Path) -> None:
    root = kaggle_root(tmp_path / "root")
    assert resolve(root, prefer="test") == (root / "sample_submission.csv", root / "test")


def test_resolve_kaggle_root_with_test_only(tmp_path: Path) -> None:
    root = tmp_path / "root"
    write_table(root / "sample_submission.csv", ["b"], [[0]], column="Predicted")
    (root / "test").mkdir()
    assert resolve(root) == (root / "sample_submission.csv", root / "test")


def test_resolve_kaggle_root_with_images_option(tmp_path: Path) -> None:
    root = tmp_path / "root"
    write_table(root / "train.csv", ["a"], [[0]])
    elsewhere = tmp_path / "imgs"
    elsewhere.mkdir()
    assert resolve(root, images=elsewhere) == (root / "train.csv", elsewhere)


def test_resolve_kaggle_root_without_image_folder(tmp_path: Path) -> None:
    root = tmp_path / "root"
    write_table(root / "train.csv", ["a"], [[0]])
    with pytest.raises(DataError, match="no image folder"):
        resolve(root)


def test_resolve_folder_that_is_not_a_kaggle_root(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a Kaggle root"):
        resolve(tmp_path)


def test_resolve_missing_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        resolve(tmp_path / "nope.csv")


def test_resolve_csv_with_images_beside(tmp_path: Path) -> None:
    csv_path = tmp_path / "labels.csv"
    make_dataset(csv_path, tmp_path, n=1)
    assert resolve(csv_path) == (csv_path, tmp_path)


def test_resolve_csv_with_images_in_folder_named_after_it(tmp_path: Path) -> None:
    csv_path = tmp_path / "train.csv"
    make_dataset(csv_path, tmp_path / "train", n=1)
    assert resolve(csv_path) == (csv_path, tmp_path / "train")
    other = tmp_path / "mine.csv"
    make_dataset(other, tmp_path / "mine", n=1)
    assert resolve(other) == (other, tmp_path / "mine")


def test_resolve_sample_submission_uses_test_folder(tmp_path: Path) -> None:
    csv_path = write_table(tmp_path / "sample_submission.csv", ["s0"], [[0]], column="Predicted")
    write_sample(tmp_path / "test", "s0")
    assert resolve(csv_path) == (csv_path, tmp_path / "test")


def test_resolve_csv_prefers_images_beside_it(tmp_path: Path) -> None:
    csv_path = tmp_path / "train.csv"
    make_dataset(csv_path, tmp_path, n=1)
    (tmp_path / "train").mkdir()
    assert resolve(csv_path) == (csv_path, tmp_path)


def test_resolve_csv_with_images_option(tmp_path: Path) -> None:
    csv_path = write_table(tmp_path / "x.csv", ["a"], [[0]])
    assert resolve(csv_path, images=tmp_path) == (csv_path, tmp_path)
    with pytest.raises(DataError, match="image folder not found"):
        resolve(csv_path, images=tmp_path / "missing")


# ----------------------------------------------------------------------------- read_table


def test_read_table_plain(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "t.csv", "Id,Target\na,16 0\nb,27\n")
    assert read_table(path) == (["a", "b"], [[0, 16], [27]])


def test_read_table_bom_crlf_extra_columns(tmp_path: Path) -> None:
    text = "\ufeffId,Target,Notes\r\na,0 1,first\r\nb,5,\"quoted, comma\"\r\n"
    path = write_csv(tmp_path / "t.csv", text)
    assert read_table(path) == (["a", "b"], [[0, 1], [5]])


def test_read_table_columns_in_any_order_and_case(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "t.csv", "target, ID \n3,a\n")
    assert read_table(path) == (["a"], [[3]])


def test_read_table_without_target(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "t.csv", "Id\na\nb\n")
    assert read_table(path) == (["a", "b"], None)


def test_read_table_ignores_predicted_column(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "sample_submission.csv", "Id,Predicted\na,0\nb,0\n")
    ids, labels = read_table(path)
    assert ids == ["a", "b"]
    assert labels is None


def test_read_table_ignores_blank_lines(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "t.csv", "Id,Target\n\na,1\n\n,\nb,2\n\n")
    assert read_table(path) == (["a", "b"], [[1], [2]])


def test_read_table_without_header(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "t.csv", "abc,0 1\ndef,2\n")
    with pytest.raises(DataError) as info:
        read_table(path)
    message = str(info.value)
    assert "header" in message
    assert "Id" in message
    assert str(path) in message


def test_read_table_duplicate_ids(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "t.csv", "Id,Target\na,0\nb,1\na,2\nc,0\nb,1\n")
    with pytest.raises(DataError, match=r"duplicate Ids: a, b \(2 in all\)"):
        read_table(path)


def test_read_table_empty_csv(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "t.csv", "")
    with pytest.raises(DataError, match="empty CSV"):
        read_table(path)
    write_csv(path, "\n\n")
    with pytest.raises(DataError, match="empty CSV"):
        read_table(path)


def test_read_table_header_only(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "t.csv", "Id,Target\n")
    with pytest.raises(DataError, match="header but no rows"):
        read_table(path)


def test_read_table_bad_target_names_line_and_id(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "t.csv", "Id,Target\na,0\nb,1\nimg-7,5 99\n")
    with pytest.raises(LabelError) as info:
        read_table(path)
    message = str(info.value)
    assert re.search(r"\b4\b", message), message
    assert "img-7" in message
    assert "99" in message
    assert str(path) in message


def test_read_table_bad_target_line_counts_blank_lines(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "t.csv", "Id,Target\n\na,0\n\nimg-5,x\n")
    with pytest.raises(LabelError, match=r"\b5 \(Id img-5\)"):
        read_table(path)


def test_read_table_empty_target(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "t.csv", "Id,Target\na,0\nb,\n")
    with pytest.raises(LabelError, match=r"\b3 \(Id b\).*empty Target"):
        read_table(path)


def test_read_table_empty_id(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "t.csv", "Id,Target\na,0\n ,1\n")
    with pytest.raises(DataError, match=r"line 3: empty Id"):
        read_table(path)


def test_read_table_not_utf8_and_missing(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "t.csv", b"Id,Target\n\xff\xfe,0\n")
    with pytest.raises(DataError, match="not UTF-8"):
        read_table(path)
    with pytest.raises(DataError, match="not found"):
        read_table(tmp_path / "missing.csv")


# ----------------------------------------------------------------------------- load_dataset


def test_load_dataset_finds_channel_files(tmp_path: Path) -> None:
    csv_path = tmp_path / "train.csv"
    ids = make_dataset(csv_path, tmp_path / "train", n=3)
    ds = load_dataset(tmp_path)
    assert ds.ids == ids
    assert ds.labels == [[0], [1], [2]]
    assert ds.has_labels
    assert len(ds) == 3
    for sample_id, files in zip(ids, ds.files):
        assert set(files) == set(CHANNELS)
        for c in CHANNELS:
            assert files[c] == tmp_path / "train" / f"{sample_id}_{c}.png"


def test_load_dataset_ignores_unrelated_files(tmp_path: Path) -> None:
    csv_path = tmp_path / "labels.csv"
    make_dataset(csv_path, tmp_path, n=2)
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "s0_red.png.bak").write_bytes(b"x")
    (tmp_path / "s0_red.txt").write_bytes(b"x")
    (tmp_path / "s0_extra.png").write_bytes(b"x")
    (tmp_path / "thumbs.png").write_bytes(b"x")
    (tmp_path / "s9_red.png").write_bytes(b"x")
    (tmp_path / "subdir").mkdir()
    ds = load_dataset(csv_path)
    assert ds.ids == ["s0", "s1"]
    assert [sorted(f) for f in ds.files] == [sorted(CHANNELS)] * 2
    assert all(p.suffix == ".png" for f in ds.files for p in f.values())
    assert validate(ds).ok


@pytest.mark.parametrize("other", [".jpg", ".jpeg", ".tif"])
def test_load_dataset_prefers_png(tmp_path: Path, other: str) -> None:
    csv_path = tmp_path / "labels.csv"
    make_dataset(csv_path, tmp_path, n=1)
    write_sample(tmp_path, "s0", ext=other, seed=5)
    ds = load_dataset(csv_path)
    assert {p.suffix for p in ds.files[0].values()} == {".png"}


def test_load_dataset_jpg_only_and_mixed_case_suffix(tmp_path: Path) -> None:
    csv_path = write_table(tmp_path / "labels.csv", ["s0"], [[3]])
    write_sample(tmp_path, "s0", ext=".jpg", channels=("red", "green", "blue"))
    write_image(tmp_path / "s0_yellow.JPG", channel_array(16, 16))
    ds = load_dataset(csv_path)
    assert ds.files[0]["red"].suffix == ".jpg"
    assert ds.files[0]["yellow"].name == "s0_yellow.JPG"


def test_load_dataset_require_labels(tmp_path: Path) -> None:
    csv_path = write_table(tmp_path / "ids.csv", ["s0"])
    write_sample(tmp_path, "s0")
    assert load_dataset(csv_path).labels is None
    with pytest.raises(DataError, match="no 'Target' column"):
        load_dataset(csv_path, require_labels=True)


def test_subset_keeps_order(tmp_path: Path) -> None:
    csv_path = tmp_path / "labels.csv"
    make_dataset(csv_path, tmp_path, n=4)
    ds = load_dataset(csv_path)
    sub = ds.subset([3, 1])
    assert sub.ids == ["s3", "s1"]
    assert sub.labels == [[3], [1]]
    assert sub.files == [ds.files[3], ds.files[1]]


# ----------------------------------------------------------------------------- image_size


@pytest.mark.parametrize("ext", [".png", ".jpg", ".tif"])
def test_image_size_reads_header(tmp_path: Path, ext: str) -> None:
    path = write_image(tmp_path / f"a{ext}", channel_array(13, 29, seed=1))
    assert image_size(path) == (29, 13)


def test_image_size_16bit_png_and_tiff(tmp_path: Path) -> None:
    image = channel_array(7, 5, dtype=np.uint16)
    assert image_size(write_image(tmp_path / "a.png", image)) == (5, 7)
    assert image_size(write_image(tmp_path / "a.tif", image)) == (5, 7)


def test_image_size_tiff_without_tiff_suffix(tmp_path: Path) -> None:
    path = tmp_path / "a.bin"
    tifffile.imwrite(path, channel_array(6, 4))
    assert image_size(path) == (4, 6)


def test_image_size_progressive_jpeg(tmp_path: Path) -> None:
    import cv2

    path = tmp_path / "p.jpg"
    cv2.imwrite(str(path), channel_array(33, 21), [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])
    assert image_size(path) == (21, 33)


@pytest.mark.parametrize(
    ("ext", "fragment"),
    [(".png", "truncated PNG"), (".jpg", "truncated JPEG"), (".tif", "truncated TIFF")],
)
def test_image_size_detects_truncation(tmp_path: Path, ext: str, fragment: str) -> None:
    path = write_image(tmp_path / f"a{ext}", channel_array(64, 64, seed=2))
    truncate(path, 0.6)
    with pytest.raises(DataError, match=fragment) as info:
        image_size(path)
    assert str(path) in str(info.value)


def test_image_size_truncated_png_header(tmp_path: Path) -> None:
    path = write_image(tmp_path / "a.png", channel_array(8, 8))
    path.write_bytes(path.read_bytes()[:14])
    with pytest.raises(DataError, match="PNG header is truncated"):
        image_size(path)


def test_image_size_empty_and_garbage(tmp_path: Path) -> None:
    empty = tmp_path / "e.png"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match="empty file"):
        image_size(empty)
    garbage = tmp_path / "g.png"
    garbage.write_bytes(b"GIF89a" + bytes(100))
    with pytest.raises(DataError, match="not a PNG, JPEG or TIFF"):
        image_size(garbage)


# ----------------------------------------------------------------------------- validate / checked


def broken_dataset(root: Path) -> Path:
    """Six samples: s0, s2 good; s1 missing blue; s3 zero-byte red; s4 truncated green; s5 sizes differ."""
    csv_path = root / "train.csv"
    make_dataset(csv_path, root / "train", n=6, size=16)
    images = root / "train"
    (images / "s1_blue.png").unlink()
    (images / "s3_red.png").write_bytes(b"")
    truncate(images / "s4_green.png", 0.5)
    write_image(images / "s5_yellow.png", channel_array(16, 20))
    return csv_path


def test_validate_clean_dataset(tmp_path: Path) -> None:
    make_dataset(tmp_path / "train.csv", tmp_path / "train", n=3, size=(12, 20))
    report = validate(load_dataset(tmp_path), deep=True)
    assert report.ok
    assert report.problems == []
    assert report.n_samples == 3
    assert report.sizes == {(20, 12): 3}


def test_validate_reports_each_problem_by_id(tmp_path: Path) -> None:
    broken_dataset(tmp_path)
    report = validate(load_dataset(tmp_path))
    assert not report.ok
    assert report.bad_ids == ["s1", "s3", "s4", "s5"]
    by_id = {}
    for sample_id, message in report.problems:
        by_id.setdefault(sample_id, []).append(message)
    assert any("missing blue channel" in m and "s1_blue" in m for m in by_id["s1"])
    assert any("empty file" in m and "s3_red.png" in m for m in by_id["s3"])
    assert any("truncated" in m and "s4_green.png" in m for m in by_id["s4"])
    assert any("channels differ in size" in m and "yellow 20x16" in m for m in by_id["s5"])
    assert report.sizes == {(16, 16): 2}
    message = report.message()
    assert message.startswith("4 of 6 samples are invalid: s1, s3, s4, s5")


def test_validate_deep_finds_undecodable_file(tmp_path: Path) -> None:
    csv_path = tmp_path / "labels.csv"
    make_dataset(csv_path, tmp_path, n=2)
    path = tmp_path / "s1_green.png"
    data = bytearray(path.read_bytes())
    # keep the signature, header and end chunk; break the pixel data
    data[40:-20] = bytes(len(data) - 60)
    path.write_bytes(bytes(data))
    ds = load_dataset(csv_path)
    assert validate(ds).ok
    deep = validate(ds, deep=True)
    assert deep.bad_ids == ["s1"]


def test_checked_raises_with_skip_invalid_hint(tmp_path: Path) -> None:
    broken_dataset(tmp_path)
    ds = load_dataset(tmp_path)
    with pytest.raises(DataError) as info:
        checked(ds)
    message = str(info.value)
    assert "--skip-invalid" in message
    assert "s1" in message and "s5" in message
    assert "s0," not in message


def test_checked_skip_invalid_drops_exactly_the_bad(tmp_path: Path) -> None:
    broken_dataset(tmp_path)
    ds = load_dataset(tmp_path)
    out = checked(ds, skip_invalid=True)
    assert out.ids == ["s0", "s2"]
    assert out.labels == [[0], [2]]
    assert [f["red"].name for f in out.files] == ["s0_red.png", "s2_red.png"]
    assert {i for i, _ in out.skipped} == {"s1", "s3", "s4", "s5"}
    assert all(isinstance(m, str) and m for _, m in out.skipped)
    assert validate(out, deep=True).ok
    assert len(ds) == 6


def test_checked_returns_valid_dataset_unchanged(tmp_path: Path) -> None:
    make_dataset(tmp_path / "train.csv", tmp_path / "train", n=2)
    ds = load_dataset(tmp_path)
    out = checked(ds, deep=True)
    assert out.ids == ds.ids
    assert out.skipped == []


def test_checked_every_sample_invalid(tmp_path: Path) -> None:
    csv_path = tmp_path / "labels.csv"
    make_dataset(csv_path, tmp_path, n=2)
    (tmp_path / "s0_red.png").unlink()
    (tmp_path / "s1_red.png").unlink()
    with pytest.raises(DataError, match="every sample is invalid"):
        checked(load_dataset(csv_path), skip_invalid=True)


def test_fingerprint_changes_when_a_file_changes_size(tmp_path: Path) -> None:
    csv_path = tmp_path / "labels.csv"
    make_dataset(csv_path, tmp_path, n=2)
    ds = load_dataset(csv_path)
    first = ds.fingerprint()
    assert first["n_samples"] == 2
    assert first == load_dataset(csv_path).fingerprint()
    write_image(tmp_path / "s1_yellow.png", channel_array(30, 30))
    second = ds.fingerprint()
    assert second["files_sha256"] != first["files_sha256"]
    assert second["csv_sha256"] == first["csv_sha256"]
    csv_path.write_text(csv_path.read_text().replace("s1,1", "s1,2"))
    assert ds.fingerprint()["csv_sha256"] != first["csv_sha256"]


# ----------------------------------------------------------------------------- real data


@pytest.mark.realdata
@needs_kaggle_layout
def test_real_kaggle_layout_validates() -> None:
    ds = load_dataset(KAGGLE_LAYOUT / "train.csv")
    assert ds.image_dir == KAGGLE_LAYOUT
    assert len(ds) == 8
    assert ds.has_labels
    report = validate(ds, deep=True)
    assert report.ok, report.message()
    assert report.sizes == {(512, 512): 8}


@pytest.mark.realdata
@needs_kaggle_labels
def test_real_kaggle2018_labels() -> None:
    ids, labels = read_table(KAGGLE2018_TRAIN_CSV)
    assert len(ids) == 31072
    assert len(set(ids)) == 31072
    assert labels is not None
    assert sum(0 in t for t in labels) == 12885


def test_resolve_folder_with_csv_and_images_side_by_side(tmp_path: Path) -> None:
    import numpy as np
    import cv2

    (tmp_path / "train.csv").write_text("Id,Target\na,0\n")
    for ch in ("red", "green", "blue", "yellow"):
        cv2.imwrite(str(tmp_path / f"a_{ch}.png"), np.zeros((8, 8), np.uint8))
    assert resolve(tmp_path) == (tmp_path / "train.csv", tmp_path)
