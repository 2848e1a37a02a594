"""Reading one channel image, or one 4-channel sample, as uint8.

Kaggle 2018 PNGs are 512x512 8-bit grayscale; HPAv18 downloads are JPGs; the
full-size originals are 2048 or 3072 px TIFFs, 8- or 16-bit. Everything comes
out as ``uint8`` with shape ``(H, W)`` per channel and ``(4, H, W)`` per sample,
channels in :data:`hpa_classify.classes.CHANNELS` order.

The format is told from a file's first bytes. PNG and JPEG are decoded by
OpenCV, TIFF by tifffile, and what those cannot decode (an LZW or JPEG
compressed TIFF without imagecodecs, say) by Pillow. Sizes are checked from the
header before anything is decoded: at most :data:`MAX_FILE_BYTES` per file and
:data:`MAX_PIXELS` per image. :func:`image_size` is the one reader of header
sizes; it reads a file's header and the bytes it needs to tell a file cut short,
not the whole file.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import struct
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from hpa_classify.classes import CHANNELS
from hpa_classify.errors import DataError

log = logging.getLogger(__name__)

# tifffile logs a warning or an error for each oddity of a bad file before it raises;
# the reader answers with a DataError of its own, which must come first and alone.
logging.getLogger("tifffile").setLevel(logging.CRITICAL)
# Pillow's file plugins warn likewise ("Corrupt EXIF data", ...) when it is the fallback decoder.
warnings.filterwarnings("ignore", module=r"PIL\.\w*(ImagePlugin|Tags)$")

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
TIFF_EXTENSIONS = (".tif", ".tiff")

#: Largest image accepted, in pixels (8192 x 8192). Full-size HPA images are at
#: most 3072 x 3072; a header that claims more is corrupt, and decoding it would
#: allocate gigabytes before failing.
MAX_PIXELS = 8192 * 8192

#: Largest image file read, in bytes. An 8192 x 8192 16-bit RGBA PNG stored
#: without compression is 512 MiB.
MAX_FILE_BYTES = 1 << 30

#: Most PNG chunks walked (a valid PNG of MAX_FILE_BYTES in 8 KiB chunks has 131,072)
#: and most JPEG segments before the frame header.
MAX_PNG_CHUNKS = 200_000
MAX_JPEG_SEGMENTS = 10_000

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SIGNATURE = b"\xff\xd8"
TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def to_uint8(image: np.ndarray, source: str | os.PathLike[str] = "image") -> np.ndarray:
    """Convert a decoded image to 2-D uint8.

    16-bit data are scaled linearly (0-65535 to 0-255), floats in 0-1 are scaled
    by 255, other floats are clipped to 0-255. A colour image (H, W, 3 or 4)
    holding one stain is reduced by taking the maximum over its colour planes,
    which keeps the stain's intensity whatever colour it was rendered in.

    >>> to_uint8(np.array([[0, 65535]], dtype=np.uint16)).tolist()
    [[0, 255]]
    >>> to_uint8(np.zeros((2, 2, 3), np.uint8)).shape
    (2, 2)
    """
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        arr = arr[..., :3].max(axis=-1)
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


class _Readable(Protocol):
    """Bytes, or a file read on demand (:class:`_FileBytes`): length, slices, find."""

    def __len__(self) -> int: ...
    def __getitem__(self, key: slice) -> bytes: ...
    def find(self, sub: bytes, start: int = ...) -> int: ...
    def rfind(self, sub: bytes, start: int = ...) -> int: ...


class _FileBytes:
    """A file's bytes read on demand: slicing, ``find`` and ``rfind``, nothing read ahead.

    Lets the header walks below work on an open file as on ``bytes``, reading
    a few bytes per PNG chunk or JPEG segment rather than the whole file (and,
    unlike a memory map, a file cut short under it is an error, not a SIGBUS).
    """

    BLOCK = 1 << 16

    def __init__(self, fd: int, size: int) -> None:
        self.fd, self.size = fd, size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, key: slice) -> bytes:
        start, stop, _ = key.indices(self.size)
        return os.pread(self.fd, stop - start, start) if stop > start else b""

    def find(self, sub: bytes, start: int = 0) -> int:
        pos = start
        while pos < self.size:
            block = self[pos : pos + self.BLOCK + len(sub) - 1]
            hit = block.find(sub)
            if hit >= 0:
                return pos + hit
            pos += self.BLOCK
        return -1

    def rfind(self, sub: bytes, start: int = 0) -> int:
        end = self.size
        while end > start:
            lo = max(start, end - self.BLOCK)
            block = self[lo : min(self.size, end + len(sub) - 1)]
            hit = block.rfind(sub)
            if hit >= 0:
                return lo + hit
            end = lo
        return -1


def png_size(data: _Readable, source: str | os.PathLike[str] = "image") -> tuple[int, int]:
    """Width and height of a whole PNG file's bytes, after checking its chunk structure.

    Every chunk must fit in the file, and the file must reach its end chunk:
    a PNG cut short or with a corrupt chunk length is refused here, before a
    decoder allocates what a corrupt length asks for. Bytes after the end
    chunk are allowed (decoders ignore them).
    """
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise DataError(f"{source}: PNG header is truncated or corrupt")
    width, height = struct.unpack(">II", data[16:24])
    check_dimensions(width, height, source)
    pos = 8
    for _ in range(MAX_PNG_CHUNKS):
        head = data[pos : pos + 8]
        if len(head) < 8:
            break
        (length,) = struct.unpack(">I", head[:4])
        kind = head[4:8]
        if pos + 12 + length > len(data):
            name = kind.decode("ascii", "replace")
            raise DataError(
                f"{source}: truncated PNG or corrupt PNG chunk length (chunk '{name}' at byte {pos} "
                f"needs {length} bytes; the file has {len(data) - pos - 12} left)"
            )
        if kind == b"IEND":
            return width, height
        pos += 12 + length
    else:
        raise DataError(f"{source}: PNG of more than {MAX_PNG_CHUNKS:,} chunks (corrupt?)")
    raise DataError(f"{source}: truncated PNG (no end chunk)")


def _jpeg_segments(data: _Readable) -> tuple[tuple[int, int] | None, int]:
    """``(width, height)`` of the first frame header, and where the first scan starts.

    Walks the segments from the start, skipping each by its length (so an
    ICC profile or EXIF block of any size is passed over without reading it).
    The size is None without a frame header; the scan offset is -1 without a
    scan.
    """
    size: tuple[int, int] | None = None
    i = 2
    n = len(data)
    for _ in range(MAX_JPEG_SEGMENTS):
        head = data[i : i + 10]
        if len(head) < 2:
            break
        if head[0] != 0xFF:  # bytes between segments: go to the next 0xFF
            i = data.find(b"\xff", i)
            if i < 0:
                break
            continue
        marker = head[1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
            i += 1 if marker == 0xFF else 2
            continue
        if marker == 0xDA:  # start of scan: entropy-coded data follow
            return size, i
        if marker == 0xD9 or len(head) < 4:
            break
        (length,) = struct.unpack(">H", head[2:4])
        if size is None and 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if len(head) < 9:
                break
            height, width = struct.unpack(">HH", head[5:9])
            size = (width, height)
        i += 2 + length
        if i >= n:
            break
    return size, -1


def jpeg_size(data: _Readable) -> tuple[int, int] | None:
    """Width and height from the first JPEG frame header in ``data``; None if there is none.

    >>> jpeg_size(b"\\xff\\xd8\\xff\\xc0\\x00\\x0b\\x08\\x00\\x10\\x00\\x20\\x01")
    (32, 16)
    """
    return _jpeg_segments(data)[0]


def read_file(path: Path, what: str = "file", limit: int | None = None) -> bytes:
    """The bytes of ``path``; a :class:`DataError` naming it when it is missing, unreadable
    or larger than ``limit`` bytes (default :data:`MAX_FILE_BYTES`).

    >>> read_file(Path("/nonexistent/x.csv"), "CSV file")
    Traceback (most recent call last):
    ...
    hpa_classify.errors.DataError: /nonexistent/x.csv: CSV file not found
    """
    limit = MAX_FILE_BYTES if limit is None else limit
    try:
        size = path.stat().st_size
        if size > limit:
            raise DataError(f"{path}: {what} of {size:,} bytes, more than the {limit:,} accepted")
        return path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: {what} not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: a folder, not a {what}") from None
    except OSError as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None


def image_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """Width and height from the file header, without decoding; checks for truncation.

    Reads the header, and for PNG the chunk headers up to the end chunk, for
    JPEG the segment headers up to the first scan and the end marker after it,
    for TIFF the first page's tags and where its data end.

    Raises :class:`DataError` naming the file for an empty, truncated, too
    large or unrecognised file.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size == 0:
                raise DataError(f"{path}: empty file (0 bytes)")
            if size > MAX_FILE_BYTES:
                raise DataError(f"{path}: {size:,} bytes, more than the {MAX_FILE_BYTES:,} accepted")
            return _header_size(_FileBytes(fh.fileno(), size), path)
    except PermissionError:
        raise DataError(f"{path}: permission denied") from None
    except OSError as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None


def _header_size(data: _FileBytes, path: Path) -> tuple[int, int]:
    head = data[0:16]
    if head.startswith(PNG_SIGNATURE):
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise DataError(f"{path}: PNG header is truncated")
        return png_size(data, path)
    if head.startswith(JPEG_SIGNATURE):
        found, scan = _jpeg_segments(data)
        if found is None:
            raise DataError(f"{path}: JPEG without a frame header before its image data")
        check_dimensions(*found, path)
        # the end marker comes after the (last) scan; data after it are allowed
        if scan < 0 or data.rfind(b"\xff\xd9", scan) < 0:
            raise DataError(f"{path}: truncated JPEG (no end marker)")
        return found
    if head[:4] in TIFF_SIGNATURES or path.suffix.lower() in TIFF_EXTENSIONS:
        import tifffile

        try:
            with tifffile.TiffFile(path) as tif:
                page = tif.pages[0]
                width, height = tiff_plane_shape(page, path)
                if not page.dataoffsets or not page.databytecounts:
                    raise DataError(f"{path}: not a readable TIFF (no image data offsets)")
                end = max(o + n for o, n in zip(page.dataoffsets, page.databytecounts))
        except DataError:
            raise
        except Exception as exc:  # tifffile raises many kinds on bad bytes
            raise DataError(f"{path}: not a readable TIFF ({type(exc).__name__})") from None
        if end > len(data):
            raise DataError(f"{path}: truncated TIFF (image data ends at byte {end} of {len(data)})")
        return width, height
    raise DataError(f"{path}: not a PNG, JPEG or TIFF file")


def read_channel(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one channel file as a 2-D uint8 array.

    The format is told from the file's first bytes (PNG, JPEG or TIFF), not
    its name. Header sizes are checked before decoding.

    Raises
    ------
    DataError
        Naming the file, when it is missing, empty, unreadable, too large,
        corrupt, not a PNG, JPEG or TIFF, or not one channel.
    """
    path = Path(path)
    return decode_channel(read_file(path), path)


def decode_channel(data: bytes, source: str | os.PathLike[str] = "image") -> np.ndarray:
    """:func:`read_channel` for a file's bytes already read; ``source`` names it in errors."""
    if not data:
        raise DataError(f"{source}: empty file (0 bytes)")
    if data[:4] in TIFF_SIGNATURES:
        image = _decode_tiff(data, source)
    elif data.startswith((PNG_SIGNATURE, JPEG_SIGNATURE)):
        if data.startswith(PNG_SIGNATURE):
            png_size(data, source)
        elif (size := jpeg_size(data)) is not None:
            check_dimensions(*size, source)
        try:
            image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        except cv2.error as exc:
            image = _decode_pillow(data, source)
            if image is None:
                raise DataError(f"{source}: not a readable image ({str(exc).strip()[-80:]})") from None
        if image is None:
            image = _decode_pillow(data, source)
        if image is None:
            raise DataError(f"{source}: not a readable image (corrupt or truncated?)")
    else:
        raise DataError(f"{source}: not a PNG, JPEG or TIFF file")
    return to_uint8(image, source)


def _decode_pillow(data: bytes, source: str | os.PathLike[str]) -> np.ndarray | None:
    """Pillow's reading of a PNG, JPEG or TIFF that the first decoder could not read; None if
    Pillow cannot read it either."""
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow comes with matplotlib and torchvision
        return None
    try:
        with Image.open(io.BytesIO(data), formats=["PNG", "JPEG", "TIFF"]) as im:
            check_dimensions(*im.size, source)
            if im.mode in ("LA", "La", "PA"):
                im = im.convert("L") if im.mode != "PA" else im.convert("RGB")
            elif im.mode not in ("1", "L", "I", "F", "RGB", "RGBA") and not im.mode.startswith("I;16"):
                im = im.convert("RGB")  # palette, CMYK, YCbCr, LAB, ...
            return np.asarray(im)
    except DataError:
        raise
    except Exception:  # Pillow raises many kinds on bad bytes, and refuses decompression bombs
        return None


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


def _decode_tiff(data: bytes, path: str | os.PathLike[str]) -> np.ndarray:
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
        fallback = _decode_pillow(data, path)  # e.g. LZW or JPEG compression without imagecodecs
        if fallback is not None:
            return fallback
        detail = str(exc)[:120]
        raise DataError(f"{path}: not a readable TIFF ({type(exc).__name__}: {detail})") from None


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
    return _load_sample(files, size)[0]


def load_sample_digests(
    files: Mapping[str, str | os.PathLike[str]], size: int | None = None, algorithm: str = "blake2b"
) -> tuple[np.ndarray, dict[str, tuple[int, str]]]:
    """:func:`load_sample`, and each channel file's size and digest of the very bytes decoded.

    A fingerprint made of these matches the pixels stored even when a file
    changes while it is read.
    """
    return _load_sample(files, size, algorithm)


def _load_sample(
    files: Mapping[str, str | os.PathLike[str]], size: int | None, algorithm: str | None = None
) -> tuple[np.ndarray, dict[str, tuple[int, str]]]:
    planes = []
    digests: dict[str, tuple[int, str]] = {}
    for channel in CHANNELS:
        if channel not in files:
            raise DataError(f"sample has no {channel} channel file")
        path = Path(files[channel])
        data = read_file(path)
        if algorithm is not None:
            digests[channel] = (len(data), hashlib.new(algorithm, data).hexdigest())
        planes.append(decode_channel(data, path))
    shapes = {p.shape for p in planes}
    if len(shapes) > 1:
        detail = ", ".join(f"{c} {p.shape[1]}x{p.shape[0]}" for c, p in zip(CHANNELS, planes))
        raise DataError(f"{Path(files['green']).name}: channels differ in size ({detail})")
    if size is not None:
        planes = [resize(p, size) for p in planes]
    return np.stack(planes), digests
