"""A run directory ``runs/<name>/``: what a training run wrote, and reading it back.

Layout: ``config.yaml`` (fully resolved), ``env.json`` (versions, git commit,
data fingerprint), ``split.csv``, ``checkpoints/{best,last}.ckpt``,
``metrics.csv``, ``val_probs.csv``, ``thresholds.json``, ``report/``.
"""

from __future__ import annotations

import json
import logging
import platform
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hpa_classify import __version__
from hpa_classify.config import Config, read_run_config
from hpa_classify.errors import RunError
from hpa_classify.fileio import write_json
from hpa_classify.models import build_model

log = logging.getLogger(__name__)


@dataclass
class Run:
    """An existing run directory and its configuration."""

    path: Path
    cfg: Config

    @property
    def checkpoint(self) -> Path:
        for name in ("best.ckpt", "last.ckpt"):
            p = self.path / "checkpoints" / name
            if p.is_file():
                return p
        if self.is_kfold:
            raise RunError(f"{self.path}: a K-fold run; its models are in {self.path}/fold*/ (see fold_runs)")
        raise RunError(f"{self.path}: no checkpoint in {self.path / 'checkpoints'} (did training finish?)")

    @property
    def thresholds_path(self) -> Path:
        return self.path / "thresholds.json"

    @property
    def val_probs_path(self) -> Path:
        return self.path / "val_probs.csv"

    @property
    def is_kfold(self) -> bool:
        """A K-fold run: ``kfold.json`` here and one normal run per fold in ``fold{i}/``."""
        return (self.path / "kfold.json").is_file()

    @property
    def oof_probs_path(self) -> Path:
        return self.path / "oof_probs.csv"

    @property
    def tuning_probs_path(self) -> Path:
        """The labelled probabilities thresholds are tuned on: out-of-fold or validation."""
        return self.oof_probs_path if self.is_kfold else self.val_probs_path

    def tuning_probs(self) -> tuple[list[str], np.ndarray, list[list[int]]]:
        """Ids, probabilities and labels of :attr:`tuning_probs_path`; a RunError if unusable."""
        from hpa_classify.predict import read_probs

        path = self.tuning_probs_path
        if not path.is_file():
            hint = f"run 'hpa merge {self.path}'" if self.is_kfold else "did training finish?"
            raise RunError(f"{path}: not found ({hint})")
        ids, probs, labels = read_probs(path)
        if labels is None:
            raise RunError(f"{path}: has no Target column")
        return ids, probs, labels


def fold_runs(run: Run) -> list[Run]:
    """The fold runs of a K-fold run, in fold order; ``[run]`` for a plain run.

    Raises
    ------
    RunError
        If a fold has no run directory yet (``hpa train DATA --folds K --fold i``).
    """
    if not run.is_kfold:
        return [run]
    info = read_json(run.path / "kfold.json")
    folds = int(info["folds"])
    missing = [i for i in range(folds) if not (run.path / f"fold{i}" / "config.yaml").is_file()]
    if missing:
        raise RunError(
            f"{run.path}: folds {missing} of {folds} have not been trained "
            f"(hpa train DATA --folds {folds} --fold i -o {run.path})"
        )
    return [open_run(run.path / f"fold{i}") for i in range(folds)]


def open_run(path: str | Path) -> Run:
    """Open a run directory; a clear :class:`RunError` if it is not one."""
    path = Path(path)
    if not path.is_dir():
        raise RunError(f"{path}: no such run directory")
    cfg_path = path / "config.yaml"
    if not cfg_path.is_file():
        raise RunError(f"{path}: not a run directory (no config.yaml); runs are made by 'hpa train'")
    return Run(path=path, cfg=read_run_config(cfg_path))


def prepare_run_dir(path: Path, force: bool) -> Path:
    """Create ``path`` for a new run; refuse to overwrite an existing one without ``force``."""
    if path.exists() and any(path.iterdir()):
        if not force:
            if (path / "checkpoints" / "last.ckpt").is_file() and not (path / "thresholds.json").is_file():
                raise RunError(
                    f"{path}: holds an unfinished run; pass --resume to continue it "
                    "or --force to overwrite it"
                )
            raise RunError(f"{path}: run directory exists; pass --force to overwrite it")
        if not (path / "config.yaml").is_file():
            raise RunError(f"{path}: exists and is not a run directory; refusing to overwrite it")
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    return path


def load_model(run: Run, device: str | torch.device = "cpu") -> nn.Module:
    """The run's trained network (best checkpoint), in eval mode."""
    ckpt = run.checkpoint
    try:
        obj = torch.load(ckpt, map_location="cpu", weights_only=False)
        state = obj["state_dict"]
    except Exception as exc:
        raise RunError(f"{ckpt}: unreadable checkpoint ({type(exc).__name__}); is it truncated?") from None
    state = {k[len("model.") :]: v for k, v in state.items() if k.startswith("model.")}
    m = run.cfg.model
    model = build_model(
        m.name, "none", drop_rate=m.drop_rate, channels=run.cfg.data.channels, global_pool=m.global_pool
    )
    model.load_state_dict(state)
    return model.to(device).eval()


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
    import importlib

    try:
        return str(importlib.import_module(module).__version__)
    except Exception:  # not installed, or no version attribute
        return None


def environment(data_fingerprint: dict[str, Any] | None = None) -> dict[str, Any]:
    """Versions, git commit, hardware and the data fingerprint, for ``env.json``."""
    import lightning
    import timm

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
    env = environment(data_fingerprint)
    env["config"] = cfg.model_dump(mode="json")
    env["data_profile"] = data_profile
    return write_json(run_dir / "env.json", env)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunError(f"{path}: not found") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise RunError(f"{path}: unreadable ({exc})") from None
