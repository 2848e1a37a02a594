"""External (HPAv18-style) training images: duplicates, joined reading, the real HPAv18 table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from helpers import HPAV18_CSV, KAGGLE2018_TRAIN_CSV, make_dataset, write_image, write_table
from hpa_classify.classes import CHANNELS
from hpa_classify.data.external import CombinedDataset, add_external, drop_duplicates
from hpa_classify.data.layout import Dataset, checked, load_dataset, read_table
from hpa_classify.errors import DataError


def test_duplicates_keep_the_kaggle_row(synth_root: Path, external_root: Path) -> None:
    kaggle = checked(load_dataset(synth_root))
    external = checked(load_dataset(external_root / "external.csv"))
    kept, info = drop_duplicates(kaggle, external)
    assert (info.n_rows, info.n_duplicates, info.n_used) == (6, 2, 4)
    assert not set(kept.ids) & set(kaggle.ids)
    joined = add_external(kaggle.subset(range(3)), kept)
    assert isinstance(joined, CombinedDataset) and len(joined) == 7
    assert joined.labels[:3] == kaggle.labels[:3] and joined.labels[3:] == kept.labels
    # each sample is read by the dataset it came from: 64 px PNGs and 96 px colour JPGs
    np.testing.assert_array_equal(joined.read(1), kaggle.read(1))
    ext = joined.read(4, size=64)
    assert ext.shape == (4, 64, 64) and ext.dtype == np.uint8 and ext.max() > 0
    part = joined.subset([6, 0])
    assert part.ids == [joined.ids[6], joined.ids[0]]
    np.testing.assert_array_equal(part.read(0, 32), joined.read(6, 32))


def test_hpav18_colour_jpgs_give_each_channel_its_own_colour_plane(tmp_path: Path) -> None:
    # one colour JPG whose R, G and B planes all differ, saved as every channel of an external
    # sample: red must read R, green G, blue B, yellow (drawn as red + green) the mean of R and G
    yy, xx = np.mgrid[0:48, 0:48]
    r = (30 + 4 * xx).astype(np.uint8)
    g = (230 - 4 * yy).astype(np.uint8)
    b = np.full((48, 48), 110, np.uint8)
    planes = {"red": r, "green": g, "blue": b, "yellow": (r.astype(int) + g) / 2}
    external = tmp_path / "v18"
    for channel in CHANNELS:
        path = external / f"1000_A1_1_{channel}.jpg"
        write_image(path, np.dstack([b, g, r]))  # OpenCV writes BGR
        assert path.read_bytes()[:2] == b"\xff\xd8"
    write_table(external / "external.csv", ["1000_A1_1"], [[0]])
    make_dataset(tmp_path / "kaggle.csv", tmp_path / "kaggle", n=2, size=48)
    kept, _ = drop_duplicates(load_dataset(tmp_path / "kaggle.csv"), load_dataset(external / "external.csv"))
    sample = add_external(load_dataset(tmp_path / "kaggle.csv"), kept).read(2).astype(int)
    for k, channel in enumerate(CHANNELS):
        error = {name: np.abs(sample[k] - plane).mean() for name, plane in planes.items()}
        assert min(error, key=error.get) == channel, (channel, error)
        assert np.abs(sample[k] - planes[channel]).max() <= 6, channel  # JPEG's loss only


def test_an_external_set_of_only_duplicates_is_refused(tmp_path: Path) -> None:
    make_dataset(tmp_path / "a.csv", tmp_path / "a", n=3)
    make_dataset(tmp_path / "b.csv", tmp_path / "b", n=2)
    with pytest.raises(DataError, match="all 2 external Ids are already Kaggle Ids"):
        drop_duplicates(load_dataset(tmp_path / "a.csv"), load_dataset(tmp_path / "b.csv"))


def test_unlabelled_external_set_is_refused(tmp_path: Path) -> None:
    a = Dataset(tmp_path / "a.csv", tmp_path, ["a"], [[0]])
    b = Dataset(tmp_path / "b.csv", tmp_path, ["b"], None)
    with pytest.raises(DataError, match="Target"):
        drop_duplicates(a, b)


@pytest.mark.realdata
@pytest.mark.skipif(not HPAV18_CSV.is_file() or not KAGGLE2018_TRAIN_CSV.is_file(), reason=f"{HPAV18_CSV} not found")
def test_the_real_hpav18_table_merges_with_the_kaggle_table() -> None:
    ext_ids, ext_labels = read_table(HPAV18_CSV)
    kaggle_ids, kaggle_labels = read_table(KAGGLE2018_TRAIN_CSV)
    assert len(ext_ids) == 71437 and ext_labels is not None and all(ext_labels)
    kaggle = Dataset(KAGGLE2018_TRAIN_CSV, KAGGLE2018_TRAIN_CSV.parent, kaggle_ids, kaggle_labels)
    external = Dataset(HPAV18_CSV, HPAV18_CSV.parent, ext_ids, ext_labels)
    kept, info = drop_duplicates(kaggle, external)
    assert info.n_rows == 71437 and info.n_used + info.n_duplicates == info.n_rows
    assert len(set(kept.ids) | set(kaggle_ids)) == len(kept) + len(kaggle_ids)
