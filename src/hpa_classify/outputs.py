"""Where a command may write: never over one of its inputs or a label table, never inside a run.

Every command that takes ``-o`` checks its output paths here before any work
starts, so a mistyped ``-o`` is refused at once with the path named, and no
input, checkpoint or label table is ever overwritten.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> (d / "train.csv").write_text("Id,Target\\n")
10
>>> check_output_files([d / "train.csv"], inputs=[d / "train.csv"])
Traceback (most recent call last):
...
hpa_classify.errors.HPAError: ... is an input of this command; writing it would destroy it: choose another -o
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from hpa_classify.errors import HPAError


def _real(path: str | os.PathLike[str]) -> str:
    return os.path.realpath(os.fspath(path))


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def check_output_files(
    outputs: Sequence[str | os.PathLike[str]],
    inputs: Iterable[str | os.PathLike[str]] = (),
    protected: Iterable[str | os.PathLike[str]] = (),
    allowed: Iterable[str | os.PathLike[str]] = (),
) -> None:
    """Refuse output files that are folders, inputs of the command, or inside a protected folder.

    Parameters
    ----------
    outputs
        The files the command will write.
    inputs
        Files the command reads (its CSV, its images); compared after
        resolving links, so another spelling of the same file is caught.
    protected
        Folders nothing may be written into (the runs the command reads, a pack).
    allowed
        Files inside a protected folder that the tool itself keeps there
        (for example a run's own ``model.onnx``).

    Raises
    ------
    HPAError
        Naming the output and why it is refused.
    """
    real_outputs = [(Path(o), _real(o)) for o in outputs]
    for out, real in real_outputs:
        if os.path.isdir(real):
            raise HPAError(f"{out}: is a folder; -o names the file to write")
    names = {Path(real).name for _, real in real_outputs}
    reads = {_real(p) for p in inputs if Path(p).name in names}
    kept = {_real(p) for p in allowed}
    folders = [_real(f) for f in protected]
    for out, real in real_outputs:
        if real in reads:
            raise HPAError(f"{out}: is an input of this command; writing it would destroy it: choose another -o")
        if _is_label_table(real):
            raise HPAError(f"{out}: is a label table (it has a Target or Label column); it is never overwritten: "
                           "choose another -o")
        if real in kept:
            continue
        for folder in folders:
            if _inside(real, folder):
                raise HPAError(
                    f"{out}: lies inside {folder}, which this command reads and never writes into: "
                    "choose a path outside it"
                )


def _is_label_table(path: str) -> bool:
    """Whether ``path`` is an existing CSV whose header names a ``Target`` or ``Label`` column."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return False
    first = head.split(b"\n", 1)[0].decode("utf-8", "replace").lstrip("\ufeff")
    return any(c.strip().strip('"').lower() in ("target", "label") for c in first.split(","))


def check_output_folder(out: str | os.PathLike[str], inputs: Iterable[str | os.PathLike[str]] = ()) -> None:
    """Refuse an output folder that is an existing file, or that is or holds one of ``inputs``.

    ``inputs`` are the files and folders the command reads; the output folder
    may not be one of them, nor a folder that contains one (its files would
    be mixed with, or replace, the inputs). A new folder inside an input
    folder is allowed.
    """
    real = _real(out)
    if os.path.exists(real) and not os.path.isdir(real):
        raise HPAError(f"{out}: exists and is a file; -o names a folder")
    for p in inputs:
        if _inside(_real(p), real):
            raise HPAError(f"{out}: is or holds the input {p}: choose another -o")
