"""A packed cache: every sample decoded and resized once into memory-mapped uint8 shards.

Decoding four PNGs per sample costs far more than the augmentations and the
network's input pipeline together; ``hpa pack DATA --size S -o CACHE`` pays it
once. Afterwards ``hpa train CACHE`` and ``hpa predict RUN CACHE`` read each
sample as one contiguous ``(4, S, S)`` uint8 block of a memory-mapped file: no
decoding, no resizing, and the operating system's page cache shared by every
data-loader worker.

A cache folder holds

``pack.json``
    format tag and version, side ``S``, sample count, rows per shard, one
    entry per shard (file name, rows, SHA-256, and ``inputs``: the SHA-256 of
    its samples' image files' names, sizes and BLAKE2b digests), whether the
    pack is complete, and the fingerprint of the source dataset (as
    :meth:`~hpa_classify.data.layout.Dataset.fingerprint` gives it);
``index.csv``
    ``Id`` and, for a labelled dataset, ``Target``, in row order;
``shard-00000.npy`` ...
    ``uint8`` arrays of shape ``(rows, 4, S, S)`` in NumPy's ``.npy`` format,
    channels in :data:`~hpa_classify.classes.CHANNELS` order;
``shard-00000.done`` ...
    written once a shard is complete, holding its SHA-256 and ``inputs``.
    ``hpa pack`` run again with the same arguments re-hashes the image files
    of the shards that have one (in its worker processes) and keeps those
    whose files are unchanged; it packs the rest, so an image edited in place
    is packed again.

``hpa pack CACHE --verify`` re-hashes every shard against ``pack.json``;
opening a cache checks ``pack.json`` (keys, types, ranges, shard files inside
the pack) and every shard's presence, shape and file size.

Safety: the pack folder (``-o``) may not be, hold or lie inside an input (the
CSV, the image folder, a source pack); an existing folder is only resumed or,
with ``force``, replaced when its ``pack.json`` carries this tool's format
tag; the disk's free space is checked before a shard is written, and shard
files are allocated in full when created, so a full disk is an error naming
the path rather than a SIGBUS in a worker.

Modules: ``_dataset`` (the file format, :class:`PackedDataset`), ``_meta``
(reading and checking ``pack.json``, :func:`open_pack`, :func:`verify_pack`),
``_plan`` (shards and what is packed), ``_run`` (chunk tasks in the worker
pool), ``_write`` (:func:`pack`, disk space, shard allocation).
"""

from hpa_classify.data.pack._dataset import (
    CHUNK,
    DEFAULT_SHARD_BYTES,
    INDEX_NAME,
    MAX_META_BYTES,
    META_NAME,
    PACK_FORMAT,
    PACK_VERSION,
    PackedDataset,
    shard_rows,
)
from hpa_classify.data.pack._meta import is_pack, open_pack, verify_pack
from hpa_classify.data.pack._write import PackSummary, pack

# private helpers the tests call
from hpa_classify.data.pack._run import _worker_died as _worker_died
from hpa_classify.data.pack._write import _create_shard as _create_shard

__all__ = [
    "CHUNK",
    "DEFAULT_SHARD_BYTES",
    "INDEX_NAME",
    "MAX_META_BYTES",
    "META_NAME",
    "PACK_FORMAT",
    "PACK_VERSION",
    "PackedDataset",
    "PackSummary",
    "is_pack",
    "open_pack",
    "pack",
    "shard_rows",
    "verify_pack",
]
