"""Reading one channel image, or one 4-channel sample, as uint8.

Kaggle 2018 PNGs are 512x512 8-bit grayscale; HPAv18 downloads are JPGs; the
full-size originals are 2048 or 3072 px TIFFs, 8- or 16-bit. Everything comes
out as ``uint8`` with shape ``(H, W)`` per channel and ``(4, H, W)`` per sample,
channels in :data:`hpa_classify.classes.CHANNELS` order.
"""

from __future__ import annotations

import logging
import os
import struct
from collections.abc import Mapping
from pathlib import Path

import cv2
import numpy as np

from hpa_classify.classes import CHANNELS
from hpa_classify.errors import DataError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
TIFF_EXTENSIONS = (".tif", ".tiff")

#: Largest image accepted, in pixels (8192 x 8192). Full-size HPA images are at
#: most 3072 x 3072; a header that claims more is corrupt, and decoding it would
#: allocate gigabytes before failing.
MAX_PIXELS = 8192 * 8192

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SIGNATURE = b"\xff\xd8"
TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")

# OpenCV uses its own threads per call; the data loader parallelises across samples.
cv2.setNumThreads(0)


#: The colour planes (RGB order) each stain is drawn in, in HPAv18 colour JPGs
#: (``<Id>_red.jpg`` shows microtubules in red, ...): yellow is red + green.
COLOUR_PLANES: dict[str, tuple[int, ...]] = {"red": (0,), "green": (1,), "blue": (2,), "yellow": (0, 1)}


def _colour_to_gray(arr: np.ndarray, channel: str | None) -> np.ndarray:
    """One plane of an ``(H, W, 3 or 4)`` RGB(A) image: the channel's own colour, else the maximum."""
    rgb = arr[..., :3]
    planes = COLOUR_PLANES.get(channel or "")
    if planes is None:
        return rgb.max(axis=-1)
    if len(planes) == 1:
        return rgb[..., planes[0]]
    chosen = rgb[..., list(planes)]
    if np.issubdtype(arr.dtype, np.integer):  # the rounded mean, in the image's own type
        total = chosen.astype(np.int64).sum(axis=-1)
        return ((total + len(planes) // 2) // len(planes)).astype(arr.dtype)
    return chosen.mean(axis=-1).astype(arr.dtype)


def to_uint8(
    image: np.ndarray, source: str | os.PathLike[str] = "image", channel: str | None = None
) -> np.ndarray:
    """Convert a decoded image to 2-D uint8.

    16-bit data are scaled linearly (0-65535 to 0-255), floats in 0-1 are scaled
    by 255, other floats are clipped to 0-255. A colour image (H, W, 3 or 4, RGB
    order) holding one stain, as HPAv18 downloads do, is reduced to the
    stain's own colour plane when ``channel`` names it (red: R, green: G,
    blue: B, yellow: the mean of R and G; :data:`COLOUR_PLANES`); otherwise to
    the maximum over its colour planes.

    >>> to_uint8(np.array([[0, 65535]], dtype=np.uint16)).tolist()
    [[0, 255]]
    >>> to_uint8(np.zeros((2, 2, 3), np.uint8)).shape
    (2, 2)
    >>> rgb = np.array([[[200, 100, 30]]], np.uint8)
    >>> [int(to_uint8(rgb, channel=c)[0, 0]) for c in ("red", "green", "blue", "yellow", None)]
    [200, 100, 30, 150, 200]
    """
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        arr = _colour_to_gray(arr, channel)
    elif arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    elif arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 2:
        raise DataError(f"{source}: expected a single-channel image, got shape {arr.shape}")
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.uint16:
        return ((arr.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    if np.issubdtype(arr.dtype, np.floating):
        finite = arr[np.isfinite(arr)]
        peak = float(finite.max()) if finite.size else 0.0
        scale = 255.0 if peak <= 1.0 else 1.0
        # clip before scaling: huge or infinite values must not overflow
        return (np.clip(np.nan_to_num(arr, nan=0.0), 0.0, 255.0 / scale) * scale + 0.5).astype(np.uint8)
    if np.issubdtype(arr.dtype, np.integer):
        info = np.iinfo(arr.dtype)
        if info.max > 0xFFFFFFFF:  # 64-bit: int64 arithmetic would overflow
            return np.clip(arr.astype(np.float64) * (255.0 / info.max), 0, 255).astype(np.uint8)
        if info.max > 255:
            return np.clip(arr.astype(np.int64) * 255 // info.max, 0, 255).astype(np.uint8)
        return np.clip(arr, 0, 255).astype(np.uint8)
    raise DataError(f"{source}: unsupported pixel type {arr.dtype}")


def check_dimensions(width: int, height: int, source: str | os.PathLike[str] = "image") -> None:
    """Refuse a header's image size that is empty or larger than :data:`MAX_PIXELS`.

    >>> check_dimensions(512, 512)
    >>> check_dimensions(0, 512, "a.png")
    Traceback (most recent call last):
    ...
    hpa_classify.errors.DataError: a.png: header gives an empty image (0x512 px)
    """
    if width <= 0 or height <= 0:
        raise DataError(f"{source}: header gives an empty image ({width}x{height} px)")
    if width * height > MAX_PIXELS:
        raise DataError(
            f"{source}: header gives {width}x{height} px, more than the {MAX_PIXELS:,} px "
            "accepted (corrupt header?)"
        )


def png_size(data: bytes, source: str | os.PathLike[str] = "image") -> tuple[int, int]:
    """Width and height of a whole PNG file's bytes, after checking its chunk structure.

    Every chunk must fit in the file, and the file must reach its end chunk:
    a PNG cut short or with a corrupt chunk length is refused here, before a
    decoder allocates what a corrupt length asks for.
    """
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise DataError(f"{source}: PNG header is truncated or corrupt")
    width, height = struct.unpack(">II", data[16:24])
    check_dimensions(width, height, source)
    pos = 8
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        if pos + 12 + length > len(data):
            name = kind.decode("ascii", "replace")
            raise DataError(
                f"{source}: truncated or corrupt PNG (chunk '{name}' at byte {pos} "
                f"needs {length} bytes; the file has {len(data) - pos - 12} left)"
            )
        if kind == b"IEND":
            return width, height
        pos += 12 + length
    raise DataError(f"{source}: truncated PNG (no end chunk)")


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from the first JPEG frame header in ``data``; None if there is none.

    >>> jpeg_size(b"\\xff\\xd8\\xff\\xc0\\x00\\x0b\\x08\\x00\\x10\\x00\\x20\\x01")
    (32, 16)
    """
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
            i += 1 if marker == 0xFF else 2
            continue
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return width, height
        i += 2 + length
    return None


def read_file(path: Path, what: str = "file") -> bytes:
    """The bytes of ``path``; a :class:`DataError` naming it when it is missing or unreadable.

    >>> read_file(Path("/nonexistent/x.csv"), "CSV file")
    Traceback (most recent call last):
    ...
    hpa_classify.errors.DataError: /nonexistent/x.csv: CSV file not found
    """
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: {what} not found") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None


def read_channel(path: str | os.PathLike[str], channel: str | None = None) -> np.ndarray:
    """Read one channel file as a 2-D uint8 array.

    The format is told from the file's first bytes (PNG, JPEG or TIFF), not
    its name. Header sizes are checked before decoding. A colour file is
    reduced to ``channel``'s colour plane (see :func:`to_uint8`).

    Raises
    ------
    DataError
        Naming the file, when it is missing, empty, unreadable, corrupt, not a
        PNG, JPEG or TIFF, or not one channel.
    """
    path = Path(path)
    data = read_file(path)
    if not data:
        raise DataError(f"{path}: empty file (0 bytes)")
    if data[:4] in TIFF_SIGNATURES:
        image = _decode_tiff(data, path)
    elif data.startswith((PNG_SIGNATURE, JPEG_SIGNATURE)):
        if data.startswith(PNG_SIGNATURE):
            png_size(data, path)
        elif (size := jpeg_size(data[:65536])) is not None:
            check_dimensions(*size, path)
        try:
            image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        except cv2.error as exc:
            raise DataError(f"{path}: not a readable image ({str(exc).strip()[-80:]})") from None
        if image is None:
            raise DataError(f"{path}: not a readable image (corrupt or truncated?)")
        if image.ndim == 3 and image.shape[-1] in (3, 4):
            image = image[..., 2::-1]  # OpenCV decodes colour as BGR(A); to RGB
    else:
        raise DataError(f"{path}: not a PNG, JPEG or TIFF file")
    return to_uint8(image, path, channel)


def tiff_plane_shape(page: object, source: str | os.PathLike[str] = "image") -> tuple[int, int]:
    """Width and height of a tifffile page that holds one image plane we can read.

    Refuses pages larger than :data:`MAX_PIXELS`, with other than 1, 3 or 4
    samples per pixel (gray, RGB, RGBA), or with a pixel type that is not a
    number.
    """
    width, height = int(page.imagewidth), int(page.imagelength)  # type: ignore[attr-defined]
    check_dimensions(width, height, source)
    samples = int(page.samplesperpixel)  # type: ignore[attr-defined]
    if samples not in (1, 3, 4):
        raise DataError(
            f"{source}: TIFF has {samples} samples per pixel; expected one gray channel (or RGB)"
        )
    dtype = page.dtype  # type: ignore[attr-defined]
    if dtype is None or np.dtype(dtype).kind not in "uifb":
        raise DataError(f"{source}: unsupported TIFF pixel type {dtype}")
    return width, height


def _decode_tiff(data: bytes, path: Path) -> np.ndarray:
    import io

    import tifffile

    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            page = tif.pages[0]
            tiff_plane_shape(page, path)
            image = page.asarray()
            if image.ndim == 3 and page.planarconfig == 2 and image.shape[0] in (3, 4):
                image = np.moveaxis(image, 0, -1)  # planar RGB -> (H, W, 3)
            return image
    except DataError:
        raise
    except Exception as exc:  # tifffile raises many kinds on bad bytes
        raise DataError(f"{path}: not a readable TIFF ({type(exc).__name__}: {exc})") from None


def resize(image: np.ndarray, size: int) -> np.ndarray:
    """Resize a 2-D image to ``size`` x ``size`` (area averaging when shrinking)."""
    h, w = image.shape[:2]
    if h == size and w == size:
        return image
    interp = cv2.INTER_AREA if size < min(h, w) else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interp)


def load_sample(
    files: Mapping[str, str | os.PathLike[str]], size: int | None = None
) -> np.ndarray:
    """Read the four channels of one sample into a ``(4, H, W)`` uint8 array.

    Parameters
    ----------
    files : mapping
        Channel name (red, green, blue, yellow) to file path.
    size : int, optional
        Resize every channel to ``size`` x ``size``. Without it the channels
        must already agree in size.
    """
    planes = []
    for channel in CHANNELS:
        if channel not in files:
            raise DataError(f"sample has no {channel} channel file")
        plane = read_channel(files[channel], channel)
        planes.append(plane)
    shapes = {p.shape for p in planes}
    if len(shapes) > 1:
        detail = ", ".join(f"{c} {p.shape[1]}x{p.shape[0]}" for c, p in zip(CHANNELS, planes))
        raise DataError(f"{Path(files['green']).name}: channels differ in size ({detail})")
    if size is not None:
        planes = [resize(p, size) for p in planes]
    return np.stack(planes)
