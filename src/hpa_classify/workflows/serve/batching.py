"""Requests that arrive together share one batch on the model.

:class:`MicroBatcher` queues images from many requests. Its loop takes the
first waiting image, lets others join for at most ``max_wait_s`` (or until
``max_batch`` are there), and predicts them in one call on a thread of its
own, so the event loop keeps serving while the model works. It only ever
touches decoded arrays: a slow or vanished client cannot hold the model, and a
request that was cancelled while it waited is dropped from its batch.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from hpa_classify.workflows.serve.settings import Busy

log = logging.getLogger(__name__)


@dataclass
class _Item:
    image: np.ndarray
    future: asyncio.Future[np.ndarray]


@dataclass
class BatchStats:
    """Counts since start: batches run, images predicted, the largest batch."""

    batches: int = 0
    images: int = 0
    largest: int = 0
    model_seconds: float = 0.0
    sizes: dict[int, int] = field(default_factory=dict)

    def add(self, n: int, seconds: float) -> None:
        self.batches += 1
        self.images += n
        self.largest = max(self.largest, n)
        self.model_seconds += seconds
        self.sizes[n] = self.sizes.get(n, 0) + 1


class MicroBatcher:
    """Collect images from concurrent requests into batches for ``predict``.

    Parameters
    ----------
    predict : callable
        ``(N, C, S, S)`` uint8 -> ``(N, K)`` array; called on one worker thread.
    max_batch : int
        Most images per call of ``predict``.
    max_wait_s : float
        Longest time the first image of a batch waits for more.
    max_waiting : int
        Images that may wait at once; :meth:`submit` raises :class:`Busy` beyond it.
    """

    def __init__(
        self,
        predict: Callable[[np.ndarray], np.ndarray],
        max_batch: int = 16,
        max_wait_s: float = 0.010,
        max_waiting: int = 256,
    ) -> None:
        if max_batch < 1 or max_wait_s < 0 or max_waiting < 1:
            raise ValueError("max_batch and max_waiting must be >= 1 and max_wait_s >= 0")
        self.predict = predict
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.max_waiting = max_waiting
        self.stats = BatchStats()
        self._waiting: deque[_Item] = deque()
        self._arrived = asyncio.Event()
        self._executor: ThreadPoolExecutor | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start the batching loop on the running event loop."""
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hpa-model")
        self._arrived = asyncio.Event()
        self._task = asyncio.create_task(self._loop(), name="hpa-batcher")

    async def stop(self) -> None:
        """Stop the loop; images still waiting fail with :class:`Busy`."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        while self._waiting:
            item = self._waiting.popleft()
            if not item.future.done():
                item.future.set_exception(Busy("the server is shutting down"))
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    async def submit(self, images: np.ndarray) -> np.ndarray:
        """Probabilities of ``images`` ``(n, C, S, S)``, predicted in batches with other requests.

        Raises
        ------
        Busy
            More than ``max_waiting`` images would wait, or the loop is not running.
        """
        if self._task is None or self._task.done():
            raise Busy("the model is not running")
        if len(self._waiting) + len(images) > self.max_waiting:
            raise Busy(f"{len(self._waiting)} images are waiting for the model; try again shortly")
        loop = asyncio.get_running_loop()
        items = [_Item(image, loop.create_future()) for image in images]
        self._waiting.extend(items)
        self._arrived.set()
        try:
            return np.stack(await asyncio.gather(*(i.future for i in items)))
        except asyncio.CancelledError:  # the client went away: its images leave the queue
            for item in items:
                item.future.cancel()
            raise

    async def _collect(self) -> list[_Item]:
        while not self._waiting:
            self._arrived.clear()
            await self._arrived.wait()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait_s
        while len(self._waiting) < self.max_batch and (remaining := deadline - loop.time()) > 0:
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                break
        batch = []
        while self._waiting and len(batch) < self.max_batch:
            item = self._waiting.popleft()
            if not item.future.done():  # cancelled while waiting
                batch.append(item)
        return batch

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            if not batch:
                continue
            started = time.perf_counter()
            try:
                probs = await loop.run_in_executor(
                    self._executor, self.predict, np.stack([i.image for i in batch])
                )
            except asyncio.CancelledError:  # stopping: nobody will hand these results over
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(Busy("the server is shutting down"))
                raise
            except Exception as exc:  # noqa: BLE001 - handed to every request of the batch
                log.exception("prediction of a batch of %d failed", len(batch))
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(exc)
                continue
            self.stats.add(len(batch), time.perf_counter() - started)
            for item, p in zip(batch, probs):
                if not item.future.done():
                    item.future.set_result(p)
