"""Worker processes for data work: one set-up for every pool and loader worker.

The package parallelises across samples, one process per core, so each
worker keeps OpenCV from starting threads of its own. Pools start their
processes with ``forkserver`` where the platform has it (a clean process, not
a copy of a parent that may hold threads or CUDA state), else ``spawn``.

>>> worker_count(None, 0) >= 1, worker_count(8, 3), worker_count(2, 100)
(True, 3, 2)
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

import cv2

__all__ = ["init_loader_worker", "init_worker", "process_pool", "worker_count"]


def init_worker() -> None:
    """Start-up of a worker process: OpenCV runs each call on the calling thread."""
    cv2.setNumThreads(0)


def init_loader_worker(worker_id: int) -> None:
    """``worker_init_fn`` of a torch ``DataLoader``: :func:`init_worker` in each worker."""
    init_worker()


def worker_count(workers: int | None, n_tasks: int) -> int:
    """Processes to start: ``workers`` (default one per core), at most one per task, at least 1."""
    return max(1, min(workers or os.cpu_count() or 1, n_tasks))


def process_pool(n_workers: int) -> ProcessPoolExecutor:
    """A pool of ``n_workers`` processes, each started with :func:`init_worker`.

    Use it as a context manager (or call ``shutdown``) so that its processes end.
    """
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    return ProcessPoolExecutor(n_workers, mp_context=context, initializer=init_worker)
