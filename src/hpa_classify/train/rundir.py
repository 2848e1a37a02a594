"""Making a run directory: refusing to overwrite, ``env.json``, ``train_prior.json``.

The layout of a run and how to open one are in :mod:`hpa_classify.inference.runs`.
"""

from __future__ import annotations

import importlib
import json
import logging
import platform
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning
import timm
import torch

from hpa_classify import __version__
from hpa_classify.classes import to_multihot
from hpa_classify.config import Config
from hpa_classify.errors import RunError
from hpa_classify.fileio import write_json
from hpa_classify.inference.runs import TRAIN_PRIOR_FILE

log = logging.getLogger(__name__)


#: The format tag of ``env.json``: marks a folder as a run this tool made.
RUN_FORMAT = "hpa-classify run 1"


def made_by_this_tool(path: Path) -> bool:
    """Whether ``path`` is a run folder this tool wrote (``config.yaml`` and its own ``env.json``)."""
    if not (path / "config.yaml").is_file():
        return False
    try:
        env = json.loads((path / "env.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(env, dict) and (env.get("format") == RUN_FORMAT or "hpa_classify" in env)


def prepare_run_dir(path: Path, force: bool) -> Path:
    """Create ``path`` for a new run; refuse to overwrite an existing one without ``force``.

    ``force`` replaces only a run folder this tool made (:func:`made_by_this_tool`);
    any other non-empty folder is refused, whatever the flags.
    """
    if path.is_file():
        raise RunError(f"{path}: exists and is a file; the run directory must be a folder")
    if path.exists() and any(path.iterdir()):
        if not force:
            if (path / "checkpoints" / "last.ckpt").is_file() and not (path / "thresholds.json").is_file():
                raise RunError(
                    f"{path}: holds an unfinished run; pass --resume to continue it "
                    "or --force to overwrite it"
                )
            raise RunError(f"{path}: run directory exists; pass --force to overwrite it")
        if not made_by_this_tool(path):
            raise RunError(
                f"{path}: exists and is not a run folder made by 'hpa train' (no config.yaml and "
                "env.json of its own); --force replaces only those: choose another -o"
            )
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _git_commit() -> str | None:
    return _git("rev-parse", "HEAD") or None


def _git_dirty() -> bool | None:
    """Whether the package's git checkout has uncommitted changes to tracked files."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    return None if status is None else bool(status)


def _version(module: str) -> str | None:
    try:
        return str(importlib.import_module(module).__version__)
    except Exception:  # not installed, or no version attribute
        return None


def environment(data_fingerprint: dict[str, Any] | None = None) -> dict[str, Any]:
    """Versions, git commit, hardware and the data fingerprint, for ``env.json``."""
    return {
        "hpa_classify": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "timm": timm.__version__,
        "lightning": lightning.__version__,
        "torchvision": _version("torchvision"),
        "numpy": _version("numpy"),
        "albumentations": _version("albumentations"),
        "opencv": _version("cv2"),
        "platform": platform.platform(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch_threads": torch.get_num_threads(),
        "git_commit": _git_commit(),
        "git_dirty": _git_dirty(),
        "data": data_fingerprint,
    }


def write_env(
    run_dir: Path,
    cfg: Config,
    data_fingerprint: dict[str, Any],
    data_profile: dict[str, Any] | None = None,
) -> Path:
    """Write ``env.json``: :func:`environment`, the resolved config and the data's profile."""
    env = {"format": RUN_FORMAT, **environment(data_fingerprint)}
    env["config"] = cfg.model_dump(mode="json")
    env["data_profile"] = data_profile
    return write_json(run_dir / "env.json", env)


def write_train_prior(run_dir: Path, labels: Sequence[Sequence[int]]) -> Path:
    """Write ``train_prior.json``: the class frequencies of the training images."""
    freq = to_multihot(labels).mean(0)
    return write_json(run_dir / TRAIN_PRIOR_FILE, {"class_frequency": freq.tolist(), "n_images": len(labels)})
