"""Reading channel files of every supported kind as uint8, and whole samples."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

from hpa_classify.classes import CHANNELS
from hpa_classify.data.io import load_sample, read_channel, resize, to_uint8
from hpa_classify.errors import DataError
from helpers import channel_array, truncate, write_image, write_sample


def expected_from_uint16(image: np.ndarray) -> np.ndarray:
    return np.round(image.astype(np.float64) * 255 / 65535).astype(np.uint8)


def test_read_8bit_png(tmp_path: Path) -> None:
    image = channel_array(12, 20, seed=1)
    out = read_channel(write_image(tmp_path / "a_red.png", image))
    assert out.dtype == np.uint8
    assert out.shape == (12, 20)
    np.testing.assert_array_equal(out, image)


def test_read_16bit_png_scaled(tmp_path: Path) -> None:
    image = channel_array(10, 14, seed=2, dtype=np.uint16)
    image[0, :3] = [0, 65535, 257]
    out = read_channel(write_image(tmp_path / "a_red.png", image))
    assert out.dtype == np.uint8
    assert out[0, :3].tolist() == [0, 255, 1]
    np.testing.assert_array_equal(out, expected_from_uint16(image))


def test_read_16bit_tiff_scaled(tmp_path: Path) -> None:
    image = channel_array(9, 11, seed=3, dtype=np.uint16)
    image[0, :2] = [65535, 0]
    path = tmp_path / "a_green.tif"
    tifffile.imwrite(path, image)
    out = read_channel(path)
    assert out.dtype == np.uint8
    assert out[0, :2].tolist() == [255, 0]
    np.testing.assert_array_equal(out, expected_from_uint16(image))


def test_read_8bit_tiff_with_tiff_suffix(tmp_path: Path) -> None:
    image = channel_array(8, 8, seed=4)
    path = tmp_path / "a_blue.TIFF"
    tifffile.imwrite(path, image)
    np.testing.assert_array_equal(read_channel(path), image)


def test_rgb_png_reduced_to_gray_by_max(tmp_path: Path) -> None:
    # a stain rendered in one colour: the intensity sits in one plane only
    stain = channel_array(10, 10, seed=5)
    bgr = np.zeros((10, 10, 3), np.uint8)
    bgr[..., 1] = stain
    np.testing.assert_array_equal(read_channel(write_image(tmp_path / "g.png", bgr)), stain)
    # mixed planes: the maximum per pixel
    planes = np.stack([channel_array(10, 10, seed=s) for s in (6, 7, 8)], axis=-1)
    out = read_channel(write_image(tmp_path / "mix.png", planes))
    np.testing.assert_array_equal(out, planes.max(axis=-1))


def test_rgba_png_ignores_alpha(tmp_path: Path) -> None:
    bgra = np.zeros((6, 6, 4), np.uint8)
    bgra[..., 0] = 40
    bgra[..., 3] = 255
    out = read_channel(write_image(tmp_path / "a.png", bgra))
    assert out.shape == (6, 6)
    assert np.all(out == 40)


def test_read_jpg(tmp_path: Path) -> None:
    image = np.tile(np.linspace(0, 255, 32).astype(np.uint8), (24, 1))
    out = read_channel(write_image(tmp_path / "a_yellow.jpg", image))
    assert out.dtype == np.uint8
    assert out.shape == (24, 32)
    assert np.abs(out.astype(int) - image.astype(int)).max() <= 8


def test_float_tiff_in_unit_range(tmp_path: Path) -> None:
    image = channel_array(7, 9, seed=9, dtype=np.float32)
    image[0, :2] = [0.0, 1.0]
    path = tmp_path / "f.tif"
    tifffile.imwrite(path, image)
    out = read_channel(path)
    assert out.dtype == np.uint8
    assert out[0, :2].tolist() == [0, 255]
    np.testing.assert_array_equal(out, np.round(image * 255).astype(np.uint8))


def test_float_above_one_is_clipped_not_scaled() -> None:
    out = to_uint8(np.array([[0.0, 100.0, 300.0, -5.0]], np.float32))
    assert out.tolist() == [[0, 100, 255, 0]]


def test_to_uint8_other_types() -> None:
    assert to_uint8(np.array([[True, False]])).tolist() == [[255, 0]]
    assert to_uint8(np.zeros((1, 3, 5), np.uint8)).shape == (3, 5)
    assert to_uint8(np.zeros((3, 5, 1), np.uint8)).shape == (3, 5)
    with pytest.raises(DataError, match="single-channel"):
        to_uint8(np.zeros((2, 3, 5, 5), np.uint8), "stack.tif")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "a_red.png"
    path.write_bytes(b"")
    with pytest.raises(DataError, match="empty file") as info:
        read_channel(path)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope_red.png"
    with pytest.raises(DataError, match="not found") as info:
        read_channel(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_truncated_image(tmp_path: Path, ext: str) -> None:
    path = write_image(tmp_path / f"a_red{ext}", channel_array(64, 64, seed=10))
    truncate(path, 0.4)
    with pytest.raises(DataError) as info:
        read_channel(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("ext", [".png", ".jpg", ".tif"])
def test_garbage_bytes(tmp_path: Path, ext: str) -> None:
    path = tmp_path / f"a_red{ext}"
    path.write_bytes(b"this is not an image at all\x00\x01" * 8)
    with pytest.raises(DataError) as info:
        read_channel(path)
    assert str(path) in str(info.value)


def test_truncated_tiff(tmp_path: Path) -> None:
    path = tmp_path / "a_red.tif"
    tifffile.imwrite(path, channel_array(64, 64, seed=11, dtype=np.uint16))
    truncate(path, 0.5)
    with pytest.raises(DataError, match="TIFF") as info:
        read_channel(path)
    assert str(path) in str(info.value)


def test_load_sample_channel_order(tmp_path: Path) -> None:
    files = write_sample(tmp_path, "s0", size=(10, 12))
    sample = load_sample(files)
    assert sample.shape == (4, 10, 12)
    assert sample.dtype == np.uint8
    for k, channel in enumerate(CHANNELS):
        np.testing.assert_array_equal(sample[k], cv2.imread(str(files[channel]), cv2.IMREAD_UNCHANGED))


@pytest.mark.parametrize("size", [8, 16, 40])
def test_load_sample_resizes(tmp_path: Path, size: int) -> None:
    files = write_sample(tmp_path, "s0", size=16)
    sample = load_sample(files, size=size)
    assert sample.shape == (4, size, size)
    assert sample.dtype == np.uint8


def test_load_sample_resizes_non_square(tmp_path: Path) -> None:
    files = write_sample(tmp_path, "s0", size=(20, 30))
    assert load_sample(files, size=12).shape == (4, 12, 12)


def test_load_sample_mixed_formats(tmp_path: Path) -> None:
    files = write_sample(tmp_path, "s0", size=8, channels=("red", "green", "blue"))
    path = tmp_path / "s0_yellow.tif"
    tifffile.imwrite(path, np.full((8, 8), 65535, np.uint16))
    files["yellow"] = path
    sample = load_sample(files)
    assert np.all(sample[3] == 255)


@pytest.mark.parametrize("size", [None, 8])
def test_load_sample_channels_differ_in_size(tmp_path: Path, size: int | None) -> None:
    files = write_sample(tmp_path, "s0", size=8)
    files["blue"] = write_image(tmp_path / "s0_blue.png", channel_array(9, 8))
    with pytest.raises(DataError, match="channels differ in size") as info:
        load_sample(files, size=size)
    assert "s0_green.png" in str(info.value)
    assert "blue 8x9" in str(info.value)


def test_load_sample_missing_channel(tmp_path: Path) -> None:
    files = write_sample(tmp_path, "s0", size=8, channels=("red", "green", "blue"))
    with pytest.raises(DataError, match="yellow"):
        load_sample(files)


def test_load_sample_bad_channel_names_file(tmp_path: Path) -> None:
    files = write_sample(tmp_path, "s0", size=8)
    files["green"].write_bytes(b"")
    with pytest.raises(DataError, match="s0_green.png"):
        load_sample(files)


def test_resize_keeps_constant_images_constant() -> None:
    image = np.full((20, 20), 77, np.uint8)
    assert resize(image, 20) is image
    assert np.all(resize(image, 7) == 77)
    assert np.all(resize(image, 33) == 77)
