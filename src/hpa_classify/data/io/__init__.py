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

Modules: ``_headers`` (limits, header sizes and checks, :func:`read_file`),
``_scaling`` (more than 8 bits to 8: ``data.intensity``), ``_decode`` (a
channel's bytes to uint8), ``_planes`` (multi-channel TIFFs and channel maps),
``_samples`` (a sample, :class:`Reading`, :func:`resize`).
"""

import logging
import warnings

from hpa_classify.data.io._decode import (
    as_plane,
    decode_channel,
    decode_raw,
    read_channel,
    to_uint8,
)
from hpa_classify.data.io._headers import (
    IMAGE_EXTENSIONS,
    JPEG_SIGNATURE,
    MAX_FILE_BYTES,
    MAX_JPEG_SEGMENTS,
    MAX_PIXELS,
    MAX_PNG_CHUNKS,
    PNG_SIGNATURE,
    TIFF_EXTENSIONS,
    TIFF_SIGNATURES,
    check_dimensions,
    image_size,
    jpeg_size,
    png_size,
    read_file,
    tiff_plane_shape,
)
from hpa_classify.data.io._planes import (
    CHANNEL_SYNONYMS,
    Planes,
    channels_of,
    check_channel_map,
    decode_planes,
    parse_channel_map,
    plane_count,
)
from hpa_classify.data.io._samples import (
    Reading,
    load_sample,
    load_sample_digests,
    resize,
)
from hpa_classify.data.io._scaling import (
    INTENSITY_KINDS,
    Scaling,
    parse_intensity,
    scale_plane,
)

# tifffile logs a warning or an error for each oddity of a bad file before it raises;
# the reader answers with a DataError of its own, which must come first and alone.
logging.getLogger("tifffile").setLevel(logging.CRITICAL)
# Pillow's file plugins warn likewise ("Corrupt EXIF data", ...) when it is the fallback decoder.
warnings.filterwarnings("ignore", module=r"PIL\.\w*(ImagePlugin|Tags)$")

__all__ = [
    "CHANNEL_SYNONYMS",
    "IMAGE_EXTENSIONS",
    "INTENSITY_KINDS",
    "JPEG_SIGNATURE",
    "MAX_FILE_BYTES",
    "MAX_JPEG_SEGMENTS",
    "MAX_PIXELS",
    "MAX_PNG_CHUNKS",
    "PNG_SIGNATURE",
    "TIFF_EXTENSIONS",
    "TIFF_SIGNATURES",
    "Planes",
    "Reading",
    "Scaling",
    "as_plane",
    "channels_of",
    "check_channel_map",
    "check_dimensions",
    "decode_channel",
    "decode_planes",
    "decode_raw",
    "image_size",
    "jpeg_size",
    "load_sample",
    "load_sample_digests",
    "parse_channel_map",
    "parse_intensity",
    "plane_count",
    "png_size",
    "read_channel",
    "read_file",
    "resize",
    "scale_plane",
    "tiff_plane_shape",
    "to_uint8",
]
