"""Fuzzing the readers: mutated PNG, JPEG and TIFF files either load or raise DataError.

Thousands of seeded mutations (bit flips, overwritten bytes, extreme values in
header fields, truncation, insertion, deletion, duplicated or spliced ranges)
of small valid files are written to disk and read with
:func:`~hpa_classify.data.io.read_channel` and
:func:`~hpa_classify.data.layout.image_size`. Anything other than a result or
a :class:`~hpa_classify.errors.DataError` (another exception, a call that
does not return, a result of the wrong kind) fails the test, which keeps the
first offending files for replay. A crash of the process fails it as well.
"""

from __future__ import annotations

import io
import logging
import random
import signal
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hpa_classify.data.io import MAX_PIXELS, read_channel
from hpa_classify.data.layout import image_size, read_table
from hpa_classify.errors import DataError

N_CASES = 8000
#: A read that has not returned after this long hangs (a guard, not a speed check).
HANG_S = 60.0


def _png(image: np.ndarray, *params: int) -> bytes:
    return cv2.imencode(".png", image, list(params))[1].tobytes()


def _jpg(image: np.ndarray, *params: int) -> bytes:
    return cv2.imencode(".jpg", image, list(params))[1].tobytes()


def _tif(image: np.ndarray, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, image, **kwargs)
    return buffer.getvalue()


def seeds() -> dict[str, bytes]:
    """Small valid files of every kind the readers take, by name (the suffix is the format)."""
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (24, 32), dtype=np.uint8)
    gray16 = rng.integers(0, 65536, (24, 32), dtype=np.uint16)
    rgb = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    return {
        "gray.png": _png(gray),
        "gray16.png": _png(gray16),
        "rgb.png": _png(rgb),
        "rgba.png": _png(np.dstack([rgb, gray])),
        "flat.png": _png(gray, cv2.IMWRITE_PNG_COMPRESSION, 0),
        "gray.jpg": _jpg(gray),
        "progressive.jpg": _jpg(gray, cv2.IMWRITE_JPEG_PROGRESSIVE, 1),
        "colour.jpg": _jpg(rgb),
        "gray.tif": _tif(gray),
        "gray16.tif": _tif(gray16),
        "zlib.tif": _tif(gray16, compression="zlib"),
        "tiled.tif": _tif(np.tile(gray, (2, 1))[:32, :32], tile=(16, 16)),
        "big.tif": _tif(gray, bigtiff=True),
        "motorola.tif": _tif(gray16, byteorder=">"),
        "planar.tif": _tif(np.moveaxis(rgb, -1, 0), photometric="rgb", planarconfig="separate"),
        "float.tif": _tif(gray.astype(np.float32) / 255),
        "pages.tif": _tif(np.stack([gray, gray])),
    }


def mutate(data: bytes, rnd: random.Random, donor: bytes) -> tuple[bytes, str]:
    """One random mutation of ``data``, and its name."""
    d = bytearray(data)
    kind = rnd.choice(["flip", "byte", "field", "header", "truncate", "insert", "delete", "duplicate", "splice"])
    n = len(d)
    if kind == "flip":
        for _ in range(rnd.randint(1, 8)):
            i = rnd.randrange(n)
            d[i] ^= 1 << rnd.randrange(8)
    elif kind == "byte":
        for _ in range(rnd.randint(1, 8)):
            d[rnd.randrange(n)] = rnd.choice([0x00, 0xFF, 0x7F, 0x80, rnd.randrange(256)])
    elif kind == "field":  # a size, offset or length field set to an extreme value
        i = rnd.randrange(min(n, 160))
        value = rnd.choice([0, 1, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, rnd.randrange(1 << 32)])
        d[i : i + 4] = value.to_bytes(4, rnd.choice(["big", "little"]))
    elif kind == "header":
        for _ in range(rnd.randint(1, 6)):
            d[rnd.randrange(min(n, 64))] = rnd.randrange(256)
    elif kind == "truncate":
        d = d[: rnd.randrange(n)]
    elif kind == "insert":
        i = rnd.randrange(n + 1)
        d[i:i] = bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 64)))
    elif kind == "delete":
        i = rnd.randrange(n)
        del d[i : i + rnd.randint(1, 64)]
    elif kind == "duplicate":
        i = rnd.randrange(n)
        j = min(n, i + rnd.randint(1, 256))
        d[j:j] = d[i:j]
    else:  # splice: the tail of another file after this one's head
        cut = rnd.randrange(n)
        d = d[:cut] + donor[rnd.randrange(len(donor)) :]
    return bytes(d), kind


class Hang(Exception):
    pass


def _alarm(signum: int, frame: object) -> None:
    raise Hang


def check(reader: Callable[[Path], object], path: Path) -> str | None:
    """None if ``reader(path)`` returned a sound result or raised DataError; else what went wrong."""
    signal.setitimer(signal.ITIMER_REAL, HANG_S)
    try:
        result = reader(path)
    except DataError:
        result = None
    except Hang:
        return "no answer (hangs)"
    except Exception as exc:  # the point of the test: nothing else may escape
        return f"{type(exc).__name__}: {exc}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    if reader is read_channel and result is not None:
        if not (isinstance(result, np.ndarray) and result.dtype == np.uint8 and result.ndim == 2):
            return f"returned {type(result).__name__} {getattr(result, 'shape', '')}"
    if reader is image_size and result is not None:
        w, h = result  # type: ignore[misc]
        if not (isinstance(w, int) and isinstance(h, int) and 0 < w * h <= MAX_PIXELS):
            return f"returned size {result!r}"
    return None


@pytest.fixture
def quiet_decoders(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.CRITICAL, logger="tifffile")
    previous = signal.signal(signal.SIGALRM, _alarm)
    yield
    signal.signal(signal.SIGALRM, previous)


def test_seed_files_are_readable(tmp_path: Path) -> None:
    for name, data in seeds().items():
        path = tmp_path / name
        path.write_bytes(data)
        assert read_channel(path).dtype == np.uint8, name
        w, h = image_size(path)
        assert (w, h) in ((32, 24), (32, 32)), name


def test_mutated_images_load_or_raise_data_error(tmp_path: Path, quiet_decoders: None) -> None:
    bases = seeds()
    names = sorted(bases)
    rnd = random.Random(20180)
    failures: list[str] = []
    outcomes = {"loaded": 0, "refused": 0}
    for case in range(N_CASES):
        name = rnd.choice(names)
        data, kind = mutate(bases[name], rnd, bases[rnd.choice(names)])
        suffix = Path(name).suffix if rnd.random() < 0.9 else rnd.choice([".png", ".jpg", ".tif"])
        path = tmp_path / f"case{case:05d}_{Path(name).stem}{suffix}"
        path.write_bytes(data)
        problems = [f"{r.__name__}: {p}" for r in (read_channel, image_size) if (p := check(r, path))]
        if problems:
            failures.append(f"{path} ({kind} of {name}): {'; '.join(problems)}")
            continue  # keep the file for replay
        try:
            read_channel(path)
            outcomes["loaded"] += 1
        except DataError:
            outcomes["refused"] += 1
        path.unlink()
    assert not failures, f"{len(failures)} of {N_CASES} mutated files escaped:\n" + "\n".join(failures[:10])
    # the corpus exercises both answers
    assert outcomes["loaded"] > N_CASES // 20 and outcomes["refused"] > N_CASES // 4, outcomes


SIGNATURES = [b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*", b"II+\x00"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(head=st.sampled_from(SIGNATURES), body=st.binary(max_size=300), suffix=st.sampled_from([".png", ".jpg", ".tif"]))
def test_random_bytes_behind_a_signature(tmp_path: Path, quiet_decoders: None, head: bytes, body: bytes,
                                         suffix: str) -> None:
    path = tmp_path / f"x{suffix}"
    path.write_bytes(head + body)
    for reader in (read_channel, image_size):
        assert check(reader, path) is None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(
    st.binary(max_size=200),
    st.lists(st.lists(st.sampled_from(["Id", "Target", "a", "b", " ", "0", "27", "28", "1 2", "", "\ufeff", '"']),
                      max_size=4), max_size=6).map(
        lambda rows: "\n".join(",".join(r) for r in rows).encode("utf-8")),
))
def test_csv_reader_answers_every_byte_string(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(data)
    try:
        ids, labels = read_table(path)
    except DataError as exc:
        assert str(path) in str(exc)
        return
    assert ids and len(set(ids)) == len(ids)
    assert labels is None or (len(labels) == len(ids) and all(0 <= c < 28 for t in labels for c in t))
