"""Worker processes for data work: one set-up for every pool and loader worker.

The package parallelises across samples, one process per core, so each
worker keeps OpenCV from starting threads of its own. Pools start their
processes with ``forkserver`` where the platform has it (a clean process, not
a copy of a parent that may hold threads or CUDA state), else ``spawn``.

>>> worker_count(None, 0) >= 1, worker_count(8, 3), worker_count(2, 100)
(True, 3, 2)
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.connection import wait as wait_for

import cv2

__all__ = ["die_with_parent", "init_loader_worker", "init_worker", "process_pool", "worker_count"]


def init_worker() -> None:
    """Start-up of a worker process: OpenCV runs each call on the calling thread, and the
    worker ends when its parent does (:func:`die_with_parent`)."""
    cv2.setNumThreads(0)
    die_with_parent()


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


def die_with_parent() -> None:
    """End this process when the process that started it ends; for a worker pool's initializer.

    Two guards, for every start method: on Linux the kernel sends SIGKILL
    when the OS parent exits (``prctl(PR_SET_PDEATHSIG)``: the main process
    for fork and spawn); and a daemon thread waits on the multiprocessing
    parent's sentinel, a pipe that reaches its end when the main process is
    gone (for a forkserver's workers, whose OS parent is the forkserver: it
    outlives the main process while any of its children is alive). Without a
    multiprocessing parent the thread checks the parent pid every second. A
    worker killed mid-shard leaves no ``.done`` marker, so its shard is packed
    again on the next run.
    """
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(1, int(signal.SIGKILL), 0, 0, 0) == 0 and os.getppid() != parent:  # 1: PR_SET_PDEATHSIG
                os._exit(1)  # the parent ended before prctl took effect
        except (OSError, AttributeError):
            pass
    process = multiprocessing.parent_process()
    sentinel = getattr(process, "sentinel", None) if process is not None else None
    threading.Thread(target=_watch_parent, args=(parent, sentinel), name="watch-parent", daemon=True).start()


def _watch_parent(parent: int, sentinel: int | None) -> None:
    if sentinel is not None:
        wait_for([sentinel])  # readable at end of file: the parent is gone
        os._exit(1)
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(1)
