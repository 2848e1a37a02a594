"""Request bodies: read within a size and time limit, and multipart forms parsed in memory.

Uploads never touch the disk: the body is read into memory (at most
:attr:`~hpa_classify.workflows.serve.settings.Limits.max_request_bytes`) and
parsed with python-multipart's streaming parser, so no temporary file is made
(a framework's ``UploadFile`` spools large parts to disk). Field names are the
only thing taken from the client; file names are ignored.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from hpa_classify.errors import DataError
from hpa_classify.workflows.serve.settings import SlowUpload, TooLarge, UnsupportedUpload


@dataclass
class Part:
    """One field of a multipart form: its name and its bytes."""

    name: str
    data: bytes


async def read_body(
    chunks: AsyncIterator[bytes], content_length: str | None, max_bytes: int, timeout_s: float
) -> bytes:
    """The whole body from ``chunks``, refused as soon as it passes ``max_bytes`` or ``timeout_s``.

    A declared ``Content-Length`` above the limit is refused before anything is read.

    Raises
    ------
    TooLarge
        The body is, or says it is, larger than ``max_bytes``.
    SlowUpload
        The body did not arrive within ``timeout_s`` seconds.
    """
    limit_text = f"{max_bytes / 2**20:g} MiB"
    if content_length is not None and content_length.strip().isdigit() and int(content_length) > max_bytes:
        raise TooLarge(f"request body of {int(content_length):,} bytes is larger than the {limit_text} accepted")
    received = bytearray()
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in chunks:
                received += chunk
                if len(received) > max_bytes:
                    raise TooLarge(f"request body is larger than the {limit_text} accepted")
    except TimeoutError:
        raise SlowUpload(f"the request body did not arrive within {timeout_s:g} s") from None
    return bytes(received)


def boundary_of(content_type: str | None) -> bytes:
    """The multipart boundary of a ``Content-Type`` header.

    >>> boundary_of("multipart/form-data; boundary=xyz")
    b'xyz'
    >>> boundary_of("application/json")
    Traceback (most recent call last):
    ...
    hpa_classify.workflows.serve.settings.UnsupportedUpload: send the images as multipart/form-data (got application/json)
    """
    kind, options = parse_options_header(content_type or "")
    if kind != b"multipart/form-data":
        shown = kind.decode("latin-1") or "no Content-Type"
        raise UnsupportedUpload(f"send the images as multipart/form-data (got {shown})")
    boundary = options.get(b"boundary")
    if not boundary:
        raise UnsupportedUpload("multipart/form-data without a boundary")
    return boundary


class _Collector:
    """python-multipart callbacks that gather parts into memory, at most ``max_parts`` of them."""

    def __init__(self, max_parts: int) -> None:
        self.max_parts = max_parts
        self.parts: list[Part] = []
        self._data = bytearray()
        self._field = bytearray()
        self._value = bytearray()
        self._headers: dict[bytes, bytes] = {}

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self._begin,
            "on_part_data": lambda data, start, end: self._data.extend(data[start:end]),
            "on_part_end": self._end,
            "on_header_field": lambda data, start, end: self._field.extend(data[start:end]),
            "on_header_value": lambda data, start, end: self._value.extend(data[start:end]),
            "on_header_end": self._header_end,
        }

    def _begin(self) -> None:
        if len(self.parts) >= self.max_parts:
            raise TooLarge(f"a request holds at most {self.max_parts} files")
        self._data = bytearray()
        self._headers = {}

    def _header_end(self) -> None:
        self._headers[bytes(self._field).lower()] = bytes(self._value)
        self._field, self._value = bytearray(), bytearray()

    def _end(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        if not name:
            raise DataError("a form part has no field name (Content-Disposition: form-data; name=...)")
        self.parts.append(Part(name, bytes(self._data)))


def parse_form(body: bytes, content_type: str | None, max_parts: int) -> list[Part]:
    """The fields of a ``multipart/form-data`` body, in order.

    Raises
    ------
    UnsupportedUpload
        Not multipart/form-data.
    TooLarge
        More than ``max_parts`` fields.
    DataError
        A malformed form, or a part without a field name.
    """
    collector = _Collector(max_parts)
    parser = MultipartParser(boundary_of(content_type), collector.callbacks())  # type: ignore[arg-type]
    try:
        parser.write(body)
        parser.finalize()
    except MultipartParseError as exc:
        raise DataError(f"malformed multipart form ({exc})") from None
    if not collector.parts:
        raise DataError("the form holds no files")
    return collector.parts
