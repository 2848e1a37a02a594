"""Image headers: the limits on files and images, header sizes and the checks made before decoding.

:func:`image_size` is the one reader of header sizes; it reads a file's header
and the bytes it needs to tell a file cut short, not the whole file.
:func:`read_file` is the one reader of a file's bytes, within a size limit.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Protocol

import numpy as np

from hpa_classify.errors import DataError

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
