"""Atomic file writes (a reader sees the old file or the new one, never half of one),
file digests, and a full disk reported as such."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hpa_classify.errors import DiskFullError

#: errno values that mean "the disk (or the user's quota) is full".
DISK_FULL = frozenset(e for e in (errno.ENOSPC, getattr(errno, "EDQUOT", None)) if e is not None)


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` is an OSError for want of space or quota."""
    return isinstance(exc, OSError) and exc.errno in DISK_FULL


def disk_full_error(path: str | os.PathLike[str], exc: OSError | None = None) -> DiskFullError:
    """A :class:`DiskFullError` naming ``path`` and the space left on its disk."""
    quota = exc is not None and exc.errno == getattr(errno, "EDQUOT", -1)
    what = "disk quota exceeded" if quota else "no space left on the disk"
    return DiskFullError(
        f"{path}: {what} while writing{_free_note(path)}; free some space and run the command again"
    )


def _free_note(path: str | os.PathLike[str]) -> str:
    try:
        free = shutil.disk_usage(existing_parent(path)).free
    except OSError:
        return ""
    return f" ({format_bytes(free)} free there)"


def existing_parent(path: str | os.PathLike[str]) -> Path:
    """``path`` itself if it exists, else its nearest ancestor that does."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def format_bytes(n: float) -> str:
    """A byte count for people.

    >>> format_bytes(512), format_bytes(3 * 2**30)
    ('512 B', '3.0 GiB')
    """
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` on success.

    On an exception the temporary file is removed and ``target`` is untouched.
    A full disk (``ENOSPC``, ``EDQUOT``) while writing is a :class:`DiskFullError`
    naming ``target``.
    """
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        if is_disk_full(exc):
            raise disk_full_error(target, exc) from None
        raise
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes it 0600; give it a normal file's mode
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    except BaseException as exc:
        tmp_path.unlink(missing_ok=True)
        if is_disk_full(exc):
            raise disk_full_error(target, exc) from None  # type: ignore[arg-type]
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(target: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``target`` atomically and return the path."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(target)


def write_json(target: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as indented JSON atomically."""
    return write_text(target, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_csv(target: str | os.PathLike[str], frame: Any) -> Path:
    """Write a pandas DataFrame as CSV (no index) atomically."""
    with atomic_path(target) as tmp:
        frame.to_csv(tmp, index=False)
    return Path(target)


def file_digest(path: str | os.PathLike[str], algorithm: str = "sha256", block: int = 1 << 20) -> str:
    """The hex digest of a file's bytes, read in blocks (``hashlib`` names: sha256, blake2b, ...).

    BLAKE2b is the fast choice for content fingerprints; SHA-256 is what pack
    checksums and duplicate reports record.

    >>> import tempfile; p = Path(tempfile.mkdtemp()) / "f"; _ = p.write_bytes(b"abc")
    >>> file_digest(p)[:16], file_digest(p, "blake2b")[:16]
    ('ba7816bf8f01cfea', 'ba80a53f981c4d0d')
    """
    h = hashlib.new(algorithm)
    buffer = bytearray(block)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buffer):
            h.update(view[:n])
    return h.hexdigest()
