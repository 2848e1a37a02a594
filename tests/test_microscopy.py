"""Microscope images: multi-channel TIFFs, channel maps, bit depth, and prediction on a plain folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import tifffile

from conftest import hpa
from helpers import KAGGLE_LAYOUT, SHARED_DATA
from hpa_classify.classes import CHANNELS
from hpa_classify.config import load_config
from hpa_classify.data.intensity import depth_survey, resolve_scaling, suggestion
from hpa_classify.data.io import load_sample, parse_channel_map, parse_intensity, scale_plane
from hpa_classify.data.layout import checked, load_dataset
from hpa_classify.errors import ConfigError, DataError

FULLRES = SHARED_DATA / "hpa_samples" / "hpa2021_fullres"
needs_samples = pytest.mark.skipif(not KAGGLE_LAYOUT.is_dir(), reason=f"real HPA samples not found at {KAGGLE_LAYOUT}")


def _stack(folder: Path, sample_id: str) -> np.ndarray:
    return np.stack([cv2.imread(str(folder / f"{sample_id}_{c}.png"), cv2.IMREAD_UNCHANGED) for c in CHANNELS])


def _to12(planes: np.ndarray) -> np.ndarray:
    """8-bit planes as 12-bit values in 16-bit containers: round(v * 4095 / 255)."""
    return np.round(planes.astype(np.float64) * 4095 / 255).astype(np.uint16)


def _ids(folder: Path) -> list[str]:
    return pd.read_csv(folder / "train.csv", dtype=str)["Id"].tolist()


def test_12_bit_round_trip_is_exact() -> None:
    values = np.arange(256)
    assert (scale_plane(_to12(values[None]), 0, 4095)[0] == values).all()
    # the container's range reads the same values as nearly black
    dark = load_config(None).data.intensity == "auto"
    assert dark and int(scale_plane(_to12(values[None]), 0, 65535).max()) == 16


def test_intensity_and_channel_map_specs() -> None:
    assert parse_intensity("percentile:0.1,99.9").low == 0.1
    assert parse_channel_map("red=0,green=1,blue=2") == {"red": 0, "green": 1, "blue": 2}
    for bad in ("bits:4", "range:5,1", "gamma"):
        with pytest.raises(ConfigError):
            parse_intensity(bad)
    with pytest.raises(DataError, match="green"):
        parse_channel_map("red=0,blue=1")
    cfg = load_config(None, ["data.intensity=range:0,4095", "data.channel_map={red: 0, green: 1, blue: 2}"])
    assert cfg.data.channel_map == {"red": 0, "green": 1, "blue": 2}
    with pytest.raises(ConfigError):
        load_config(None, ["data.intensity=bits"])


def test_multi_channel_tiff_with_ome_names_and_three_channels(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    planes = rng.integers(0, 4096, (4, 16, 16), dtype=np.uint16)
    names = ["DAPI", "Tubulin", "GFP", "Calreticulin"]  # blue, red, green, yellow
    tifffile.imwrite(tmp_path / "f1.ome.tif", planes, metadata={"axes": "CYX", "Channel": {"Name": names},
                                                                "SignificantBits": 12})
    ds = checked(load_dataset(tmp_path), deep=True)
    image = ds.read(0)
    assert ds.ids == ["f1"] and ds.reading.channels == CHANNELS
    assert (image[CHANNELS.index("blue")] == scale_plane(planes[0], 0, 4095)).all()  # declared 12 bits
    assert (image[CHANNELS.index("green")] == scale_plane(planes[2], 0, 4095)).all()
    tifffile.imwrite(tmp_path / "f1.ome.tif", planes[:3])  # three planes: red, green, blue
    ds = checked(load_dataset(tmp_path, scaling=parse_intensity("bits:12")), deep=True)
    assert ds.reading.channels == ("red", "green", "blue")
    assert not ds.read(0)[3].any()  # yellow absent: zeros, for a model trained without it
    survey = depth_survey(ds)
    assert survey["container_bits"] == 16 and survey["value_bits"] == 12 and suggestion(survey) == "bits:12"
    pct = resolve_scaling(ds, "percentile:1,99")
    assert set(pct.ranges) == {"red", "green", "blue"} and pct.ranges["green"][1] > 3900


def test_file_column_names_the_field(tmp_path: Path) -> None:
    (tmp_path / "img").mkdir()
    tifffile.imwrite(tmp_path / "img" / "a.tif", np.zeros((4, 8, 8), np.uint8), photometric="minisblack")
    (tmp_path / "data.csv").write_text("Id,Target,File\nsample1,0,a.tif\n")
    ds = checked(load_dataset(tmp_path / "data.csv", tmp_path / "img"))
    assert ds.ids == ["sample1"] and set(ds.files[0]) == set(CHANNELS)


@needs_samples
@pytest.mark.realdata
def test_12_bit_tiff_reads_as_its_pngs(tmp_path: Path) -> None:
    sample_id = _ids(KAGGLE_LAYOUT)[0]
    tifffile.imwrite(tmp_path / f"{sample_id}.tif", _to12(_stack(KAGGLE_LAYOUT, sample_id)), photometric="minisblack")
    pngs = load_sample({c: KAGGLE_LAYOUT / f"{sample_id}_{c}.png" for c in CHANNELS})
    exact = load_dataset(tmp_path, scaling=parse_intensity("bits:12")).read(0)
    assert np.array_equal(exact, pngs)
    assert np.array_equal(load_dataset(tmp_path, scaling=parse_intensity("range:0,4095")).read(0), pngs)
    assert load_dataset(tmp_path).read(0).max() <= 16  # the container's range: nearly black


def _probs(path: Path) -> pd.DataFrame:
    return pd.read_csv(path).set_index("Id").sort_index()


def _colour_jpegs(src: Path, out: Path, ids: list[str]) -> None:
    """HPAv18-style downloads: each channel as a colour JPEG in its own colour."""
    colour = {"red": (0, 0, 1), "green": (0, 1, 0), "blue": (1, 0, 0), "yellow": (0, 1, 1)}  # BGR
    out.mkdir()
    for sample_id in ids:
        for c in CHANNELS:
            plane = cv2.imread(str(src / f"{sample_id}_{c}.png"), cv2.IMREAD_UNCHANGED)
            rgb = np.stack([plane * k for k in colour[c]], axis=-1).astype(np.uint8)
            cv2.imwrite(str(out / f"{sample_id}_{c}.jpg"), rgb, [
                cv2.IMWRITE_JPEG_QUALITY, 100, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444])


@needs_samples
@pytest.mark.realdata
def test_plain_folders_predict_like_the_pngs(trained_run: Path, tmp_path: Path) -> None:
    ids = _ids(KAGGLE_LAYOUT)
    result = hpa("predict", trained_run, KAGGLE_LAYOUT / "train.csv", "-o", tmp_path / "png.csv")
    assert result.returncode == 0, result.stderr
    tifs = tmp_path / "tifs"
    tifs.mkdir()
    for sample_id in ids:
        tifffile.imwrite(tifs / f"{sample_id}.tif", _to12(_stack(KAGGLE_LAYOUT, sample_id)), photometric="minisblack")
    (tifs / "notes_v2.png").write_bytes(b"not a field")
    result = hpa("predict", trained_run, tifs, "-o", tmp_path / "tif.csv", "--intensity", "bits:12")
    assert result.returncode == 0, result.stderr
    assert "notes_v2.png" in result.stderr  # the file that fits no field is named
    png, tif = _probs(tmp_path / "png_probs.csv"), _probs(tmp_path / "tif_probs.csv")
    assert list(tif.index) == sorted(ids)
    np.testing.assert_allclose(tif.to_numpy(), png.to_numpy(), atol=1e-6)

    _colour_jpegs(KAGGLE_LAYOUT, tmp_path / "hpav18", ids[:3])
    result = hpa("predict", trained_run, tmp_path / "hpav18", "-o", tmp_path / "v18.csv")
    assert result.returncode == 0, result.stderr
    v18 = _probs(tmp_path / "v18_probs.csv")
    assert list(v18.index) == sorted(ids[:3])
    # JPEG is lossy (up to 3 grey levels here) and a tiny model trained on synthetic images
    # is sensitive to it: close to the PNGs' probabilities, not equal
    gap = np.abs(v18.to_numpy() - png.loc[v18.index].to_numpy())
    assert gap.mean() < 0.02 and gap.max() < 0.15


@pytest.mark.skipif(not FULLRES.is_dir(), reason=f"full-size HPA samples not found at {FULLRES}")
@pytest.mark.realdata
def test_full_size_fields_predict_from_a_plain_folder(trained_run: Path, tmp_path: Path) -> None:
    folder = tmp_path / "fullres"
    folder.mkdir()
    ids = pd.read_csv(FULLRES / "labels.csv", dtype=str)["Id"].tolist()[:2]
    for sample_id in ids:
        for c in CHANNELS:
            (folder / f"{sample_id}_{c}.png").symlink_to(FULLRES / f"{sample_id}_{c}.png")
    shutil.copy(FULLRES / "labels.csv", folder)  # a CSV that is not a Kaggle one is passed over
    result = hpa("predict", trained_run, folder, "-o", tmp_path / "full.csv")
    assert result.returncode == 0, result.stderr
    sub = pd.read_csv(tmp_path / "full.csv", dtype=str, keep_default_na=False)
    assert sorted(sub["Id"]) == sorted(ids)
