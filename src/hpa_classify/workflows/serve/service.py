"""What a request goes through: the form, its samples, decoding off the event loop, the batcher.

:class:`Service` holds the served model, the batcher and the pool of decoding
threads for the life of the app. Multipart parsing and image decoding run on
that pool, never on the event loop; only decoded arrays reach the batcher.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np
from starlette.requests import Request

from hpa_classify.classes import CHANNELS, CLASS_NAMES
from hpa_classify.errors import DataError
from hpa_classify.workflows.serve.batching import MicroBatcher
from hpa_classify.workflows.serve.decode import (
    FORMATS,
    MULTICHANNEL_SUPPORTED,
    Decoded,
    decode_multichannel,
    decode_sample,
)
from hpa_classify.workflows.serve.forms import Part, parse_form, read_body
from hpa_classify.workflows.serve.model import ServedModel
from hpa_classify.workflows.serve.settings import ServeSettings, TooLarge

log = logging.getLogger(__name__)
T = TypeVar("T")

#: The form field of one file holding every channel.
MULTICHANNEL_FIELD = "image"
#: A sample's name in a batch request: the field ``<name>_<channel>`` (as the Kaggle file names).
SAMPLE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,99}(?:_[A-Za-z0-9.-]{1,100}){0,8}")


def _shown(name: str) -> str:
    return repr(name[:100] + ("..." if len(name) > 100 else ""))


def single_sample(parts: list[Part]) -> dict[str, bytes]:
    """The four channel files of a ``/v1/predict`` form, by channel.

    >>> sorted(single_sample([Part(c, b"x") for c in ("red", "green", "blue", "yellow")]))
    ['blue', 'green', 'red', 'yellow']
    >>> single_sample([Part("red", b"x"), Part("red", b"y")])
    Traceback (most recent call last):
    ...
    hpa_classify.errors.DataError: red: given twice
    """
    if len(parts) == 1 and parts[0].name == MULTICHANNEL_FIELD:
        decode_multichannel(parts[0].data, MULTICHANNEL_FIELD)
    files: dict[str, bytes] = {}
    for part in parts:
        if part.name not in CHANNELS:
            raise DataError(
                f"unexpected field {_shown(part.name)} (expected the files {', '.join(CHANNELS)}, "
                f"or {MULTICHANNEL_FIELD} for one multi-channel file)"
            )
        if part.name in files:
            raise DataError(f"{part.name}: given twice")
        files[part.name] = part.data
    return files


def batch_samples(parts: list[Part], max_images: int) -> dict[str, dict[str, bytes]]:
    """The samples of a ``/v1/predict/batch`` form: fields ``<name>_<channel>``, in order.

    >>> list(batch_samples([Part("a_red", b""), Part("b_red", b""), Part("a_blue", b"")], 4))
    ['a', 'b']
    """
    samples: dict[str, dict[str, bytes]] = {}
    for part in parts:
        name, _, channel = part.name.rpartition("_")
        if channel not in CHANNELS or not SAMPLE_NAME.fullmatch(name):
            raise DataError(
                f"unexpected field {_shown(part.name)} (expected <name>_<channel>, e.g. "
                f"sample1_red; channels {', '.join(CHANNELS)})"
            )
        files = samples.setdefault(name, {})
        if channel in files:
            raise DataError(f"{part.name}: given twice")
        files[channel] = part.data
        if len(samples) > max_images:
            raise TooLarge(f"a batch request holds at most {max_images} samples")
    return samples


class Service:
    """The served model with its batcher and decoding threads, started with the app."""

    def __init__(self, model: ServedModel, settings: ServeSettings) -> None:
        self.model = model
        self.settings = settings
        self.limits = settings.limits
        self.batcher = MicroBatcher(
            model.predict, settings.max_batch, settings.max_wait_s, self.limits.max_waiting_images
        )
        self._pool: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        self._pool = ThreadPoolExecutor(self.settings.decode_threads, thread_name_prefix="hpa-decode")
        await self.batcher.start()

    async def stop(self) -> None:
        await self.batcher.stop()
        stats = self.batcher.stats
        if stats.batches:
            log.info(
                "predicted %d images in %d batches (mean %.1f, largest %d; model busy %.1f s)",
                stats.images, stats.batches, stats.images / stats.batches, stats.largest, stats.model_seconds,
            )
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    @property
    def running(self) -> bool:
        return self._pool is not None

    async def off_loop(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on a decoding thread."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, functools.partial(fn, *args))

    async def form(self, request: Request, max_parts: int) -> list[Part]:
        """The request's multipart fields, read within the size and time limits."""
        body = await read_body(
            request.stream(), request.headers.get("content-length"),
            self.limits.max_request_bytes, self.limits.body_timeout_s,
        )
        return await self.off_loop(parse_form, body, request.headers.get("content-type"), max_parts)

    def decode(self, files: dict[str, bytes], name: str, composite: bool) -> Decoded:
        return decode_sample(
            files, self.model.size, self.model.channels, self.limits.max_pixels,
            self.limits.composite_side if composite else None, name,
        )

    async def predict(self, samples: dict[str, dict[str, bytes]], composite: bool) -> list[dict[str, Any]]:
        """Decode ``samples`` on the pool, predict them together, and describe each."""
        decoded = await asyncio.gather(
            *(self.off_loop(self.decode, files, name, composite) for name, files in samples.items())
        )
        probs = await self.batcher.submit(np.stack([d.image for d in decoded]))
        results = [self.describe(p, d) for p, d in zip(probs, decoded)]
        for name, result in zip(samples, results):
            result["id"] = name
        return results

    def describe(self, probs: np.ndarray, decoded: Decoded) -> dict[str, Any]:
        """One image's result: the model's decision, the class names, the size and composite."""
        result = self.model.decide(probs)
        result["names"] = [CLASS_NAMES[c] for c in result["labels"]]
        result["image"] = {"width": decoded.width, "height": decoded.height}
        result["composite"] = decoded.composite
        return result

    def info(self) -> dict[str, Any]:
        """``GET /v1/model``: the model, and what uploads the server reads."""
        info = self.model.info()
        info["uploads"] = {
            "channel_files": list(CHANNELS), "formats": list(FORMATS),
            "multichannel_file": MULTICHANNEL_SUPPORTED,
            "max_request_bytes": self.limits.max_request_bytes, "max_pixels": self.limits.max_pixels,
            "max_batch_images": self.limits.max_batch_images,
        }
        info["token_required"] = self.settings.token is not None
        return info
