"""Errors the package raises on purpose.

Every error that is the user's to fix (bad data, bad config, bad run folder)
derives from :class:`HPAError`; the CLI prints its message without a traceback
and exits with status 2. Anything else is an internal fault (status 1).
"""

from __future__ import annotations

#: Longest message an :class:`HPAError` keeps; the rest is cut (a value quoted
#: from a hostile file must not flood the terminal).
MAX_MESSAGE = 4000


def brief(value: object, limit: int = 80) -> str:
    """``value`` as text of at most about ``limit`` characters, for an error message.

    A string is quoted like ``repr``; a longer text keeps its start and says
    how long it was.

    >>> brief("train")
    "'train'"
    >>> brief(0.5)
    '0.5'
    >>> brief("x" * 1000, limit=12)
    "'xxxxxxxxx... (1000 characters)"
    """
    text = repr(value)
    if len(text) <= limit:
        return text
    if isinstance(value, (list, tuple, dict)):
        size = f"{len(value)} items"
    elif isinstance(value, bytes):
        size = f"{len(value)} bytes"
    else:
        size = f"{len(value) if isinstance(value, str) else len(text)} characters"
    return f"{text[: max(1, limit - 2)]}... ({size})"


def shorten(text: str, limit: int = 300) -> str:
    """``text`` cut to about ``limit`` characters, saying how much was left out.

    >>> shorten("abc"), shorten("x" * 50, 10)
    ('abc', 'xxxxxxxxxx... (40 more characters)')
    """
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


class HPAError(Exception):
    """Base class of errors caused by the user's input.

    A message longer than :data:`MAX_MESSAGE` characters is cut there.
    """

    exit_code = 2

    def __init__(self, *args: object) -> None:
        if args and isinstance(args[0], str) and len(args[0]) > MAX_MESSAGE:
            text = args[0]
            args = (shorten(text, MAX_MESSAGE), *args[1:])
        super().__init__(*args)


class DataError(HPAError):
    """A dataset (CSV, image folder, image file) is not usable as given."""


class LabelError(DataError):
    """A Target string is malformed or names a class out of range."""


class ConfigError(HPAError):
    """A configuration key or value is invalid."""


class RunError(HPAError):
    """A run directory is missing, incomplete or would be overwritten."""


class DiskFullError(HPAError):
    """A write failed for want of space (or quota) on the disk; the message names the path."""


class Interrupted(HPAError):
    """The user stopped a command (Ctrl-C); the message says how to go on. Exit status 130."""

    exit_code = 130


def summarize_ids(ids: list[str], limit: int = 5) -> str:
    """Name the first few offending Ids and how many there are in all.

    >>> summarize_ids(["a", "b"])
    'a, b (2 in all)'
    >>> summarize_ids([str(i) for i in range(8)], limit=3)
    '0, 1, 2, ... (8 in all)'

    An Id longer than 80 characters is shortened.
    """
    head = ", ".join(i if len(i) <= 80 else brief(i) for i in ids[:limit])
    more = ", ..." if len(ids) > limit else ""
    return f"{head}{more} ({len(ids)} in all)"
