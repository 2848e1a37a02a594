"""Errors the package raises on purpose.

Every error that is the user's to fix (bad data, bad config, bad run folder)
derives from :class:`HPAError`; the CLI prints its message without a traceback
and exits with status 2. Anything else is an internal fault (status 1).
"""

from __future__ import annotations


class HPAError(Exception):
    """Base class of errors caused by the user's input."""

    exit_code = 2


class DataError(HPAError):
    """A dataset (CSV, image folder, image file) is not usable as given."""


class LabelError(DataError):
    """A Target string is malformed or names a class out of range."""


class ConfigError(HPAError):
    """A configuration key or value is invalid."""


class RunError(HPAError):
    """A run directory is missing, incomplete or would be overwritten."""


class Interrupted(HPAError):
    """The user stopped a command (Ctrl-C); the message says how to go on. Exit status 130."""

    exit_code = 130


def summarize_ids(ids: list[str], limit: int = 5) -> str:
    """Name the first few offending Ids and how many there are in all.

    >>> summarize_ids(["a", "b"])
    'a, b (2 in all)'
    >>> summarize_ids([str(i) for i in range(8)], limit=3)
    '0, 1, 2, ... (8 in all)'
    """
    head = ", ".join(ids[:limit])
    more = ", ..." if len(ids) > limit else ""
    return f"{head}{more} ({len(ids)} in all)"
