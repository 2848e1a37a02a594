"""Running a pack's chunk tasks (decode, re-hash, re-read) in the worker pool."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import numpy as np

from hpa_classify.classes import CHANNELS
from hpa_classify.data.io import load_sample_digests, read_file
from hpa_classify.data.layout import CONTENT_HASH, Dataset, fingerprint_line
from hpa_classify.data.pack._dataset import META_NAME, _done_path
from hpa_classify.data.pack._plan import _inputs_digest
from hpa_classify.data.workers import process_pool, worker_count
from hpa_classify.errors import DiskFullError, HPAError
from hpa_classify.fileio import existing_parent, file_digest, format_bytes, write_json, write_text
from hpa_classify.progress import Progress, open_task


def _pack_chunk(task: tuple[str, int, list[dict[str, str]], int]) -> tuple[int, str]:
    """Decode samples into rows ``start...`` of one shard.

    Returns how many were written and their files' fingerprint lines, hashed
    from the very bytes decoded.
    """
    path, start, files, size = task
    arr = np.load(path, mmap_mode="r+")
    lines = []
    for k, sample_files in enumerate(files):
        image, digests = load_sample_digests(sample_files, size, CONTENT_HASH)
        arr[start + k] = image
        lines.extend(fingerprint_line(sample_files[c], *digests[c]) for c in CHANNELS)
    arr.flush()
    del arr
    return len(files), "".join(lines)


def _hash_chunk(files: list[dict[str, str]]) -> tuple[int, str]:
    """The fingerprint lines of some samples' files (a finished shard's inputs, checked again)."""
    lines = []
    for sample_files in files:
        for c in CHANNELS:
            data = read_file(Path(sample_files[c]))
            lines.append(fingerprint_line(sample_files[c], len(data), hashlib.new(CONTENT_HASH, data).hexdigest()))
    return len(files), "".join(lines)


def _hash_shard(path: str) -> str:
    return file_digest(path, "sha256")


def _read_chunk_task(task: tuple[str, int, list[int], int, Dataset]) -> tuple[int, str]:
    """Like :func:`_pack_chunk`, for a source that is itself a pack (re-packing at another side)."""
    path, start, indices, size, data = task
    arr = np.load(path, mmap_mode="r+")
    for k, i in enumerate(indices):
        arr[start + k] = data.read(i, size)
    arr.flush()
    del arr
    return len(indices), ""


def _do(kind: str, args: tuple) -> tuple[int, str]:
    if kind == "files":
        return _pack_chunk(args)
    if kind == "hash":
        return _hash_chunk(*args)
    return _read_chunk_task(args)


def _worker_died(root: Path) -> HPAError:
    """The error for a pool whose worker ended abruptly (killed, out of memory, SIGBUS)."""
    try:
        free = shutil.disk_usage(existing_parent(root)).free
    except OSError:
        free = None
    if free is not None and free < (64 << 20):
        return DiskFullError(
            f"{root}: a packing process ended abruptly with {format_bytes(free)} free on that disk "
            "(disk full?); free some space and run the same command again to resume"
        )
    return HPAError(
        f"{root}: a packing process ended abruptly (killed, or out of memory?); "
        "run the same command again to resume, or with fewer --workers"
    )


def _run(
    tasks: Sequence[tuple[int, int, tuple]],
    plan: dict[str, Any],
    root: Path,
    workers: int | None,
    progress: Progress | None,
    total: int,
    description: str = "packing",
    seal: bool = True,
) -> dict[int, str]:
    """Run chunk tasks ``(shard, first row, (kind, args))``; returns each shard's fingerprint lines.

    With ``seal``, a shard whose chunks are all written is hashed (in the
    pool) and gets its ``.done`` marker and ``pack.json`` entry.
    """
    remaining = {k: 0 for k, _, _ in tasks}
    for k, _, _ in tasks:
        remaining[k] += 1
    parts: dict[int, dict[int, str]] = {k: {} for k in remaining}

    def landed(k: int, start: int, result: tuple[int, str]) -> bool:
        """Record a chunk's result; whether it was the shard's last."""
        n, text = result
        advance(n)
        parts[k][start] = text
        remaining[k] -= 1
        return remaining[k] == 0

    def shard_lines(k: int) -> str:
        return "".join(parts[k][start] for start in sorted(parts[k]))

    def finish(k: int, digest: str) -> None:
        shard = plan["shards"][k]
        shard["sha256"] = digest
        shard["inputs"] = _inputs_digest(shard_lines(k))
        write_text(_done_path(root / shard["file"]), f"{digest}\n{shard['inputs'] or ''}\n")
        write_json(root / META_NAME, plan)  # progress survives an interruption

    n_workers = worker_count(workers, len(tasks))
    task = open_task(progress, description, total)
    advance = task.advance
    try:
        if n_workers <= 1:
            for k, start, (kind, args) in tasks:
                if landed(k, start, _do(kind, args)) and seal:
                    finish(k, _hash_shard(str(root / plan["shards"][k]["file"])))
            return {k: shard_lines(k) for k in parts}
        pool = process_pool(n_workers)
        try:
            pending: dict[Future, tuple[str, int, int]] = {}
            queue: Iterator[tuple[int, int, tuple]] = iter(tasks)
            # keep the pool a few tasks ahead, not the whole list in flight
            for k, start, (kind, args) in _take(queue, 4 * n_workers):
                pending[pool.submit(_do, kind, args)] = ("chunk", k, start)
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    what, k, start = pending.pop(fut)
                    try:
                        result = fut.result()  # re-raises a worker's DataError
                    except BrokenProcessPool:
                        raise _worker_died(root) from None
                    if what == "chunk":
                        if landed(k, start, result) and seal:
                            path = str(root / plan["shards"][k]["file"])
                            pending[pool.submit(_hash_shard, path)] = ("hash", k, 0)
                        for k2, start2, (kind, args) in _take(queue, 1):
                            pending[pool.submit(_do, kind, args)] = ("chunk", k2, start2)
                    else:
                        finish(k, result)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    finally:
        task.close()
    return {k: shard_lines(k) for k in parts}


def _take(it: Iterator[tuple[int, int, tuple]], n: int) -> list[tuple[int, int, tuple]]:
    out = []
    for _ in range(n):
        try:
            out.append(next(it))
        except StopIteration:
            break
    return out
