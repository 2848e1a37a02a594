"""``hpa serve``: a web page and a JSON API that classify new images with a run's model.

The model is loaded once (:func:`load_served_model`); requests that arrive
together share a batch on it (:class:`MicroBatcher`); uploads are read in
memory within size, pixel and time limits and decoded off the event loop.
:func:`create_app` makes the FastAPI app and :func:`serve` runs it on uvicorn.

The settings are imported at once; the other names load on first use, so that
``hpa serve`` checks its address before torch and FastAPI load (a lazy import
kept for start-up speed, not to dodge a cycle).
"""

from __future__ import annotations

import importlib
from typing import Any

from hpa_classify.workflows.serve.settings import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    Limits,
    ServeSettings,
    check_bind,
    is_loopback,
)

#: Public name -> module that defines it.
_LAZY = {
    "create_app": "app",
    "MicroBatcher": "batching",
    "ServedModel": "model",
    "load_served_model": "model",
    "serve": "server",
    "server_config": "server",
}

__all__ = [
    "DEFAULT_HOST", "DEFAULT_PORT", "Limits", "ServeSettings", "check_bind", "is_loopback", *sorted(_LAZY),
]


def __getattr__(name: str) -> Any:
    try:
        module = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
