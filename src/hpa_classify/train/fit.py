"""The one entry point of training: a single run, K folds, external images, or a resumed run.

:func:`fit` chooses how to train from its arguments and returns a
:class:`FitResult` whatever it chose, so callers (the ``hpa train`` command, a
notebook) handle one return type.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpa_classify.config import Config
from hpa_classify.data.external import ExternalSummary, add_external, drop_duplicates
from hpa_classify.data.layout import Dataset
from hpa_classify.data.sources import input_folders
from hpa_classify.errors import ConfigError
from hpa_classify.fileio import write_json
from hpa_classify.inference.runs import Run, read_json
from hpa_classify.outputs import check_output_folder
from hpa_classify.progress import Progress
from hpa_classify.train.kfold import KFoldResult, train_kfold
from hpa_classify.train.single import split_dataset, train_run

log = logging.getLogger(__name__)


@dataclass
class FitResult:
    """What :func:`fit` made.

    ``summary`` is the evaluation of the finished run (validation split, or
    out-of-fold probabilities of a merged K-fold run); None when only some
    folds were trained. ``kfold`` is set for K-fold training, ``external``
    when external images were added.
    """

    run_dir: Path
    run: Run | None = None
    kfold: KFoldResult | None = None
    external: ExternalSummary | None = None
    summary: dict[str, Any] | None = None

    @property
    def finished(self) -> bool:
        """Whether a complete run (all folds merged) is in :attr:`run_dir`."""
        return self.summary is not None


def fit(
    cfg: Config,
    data: Dataset,
    run_dir: str | Path,
    *,
    folds: int | None = None,
    fold: int | None = None,
    external: Dataset | None = None,
    resume: bool = False,
    force: bool = False,
    progress: Progress | None = None,
) -> FitResult:
    """Train ``cfg`` on validated, labelled ``data`` into ``run_dir``; evaluate it.

    Parameters
    ----------
    cfg, data
        The resolved config and the labelled dataset.
    run_dir : path
        The run directory to make (or, with ``resume``, to continue).
    folds : int, optional
        Train K models on multilabel-stratified folds; thresholds are tuned on
        their out-of-fold probabilities (:mod:`hpa_classify.train.kfold`).
    fold : int, optional
        With ``folds``: train this fold only; merge later (``hpa merge``).
    external : Dataset, optional
        Extra labelled images added to the training part only (never to
        validation); rows whose Id is in ``data`` are left out.
    resume : bool
        Continue an interrupted run from its last checkpoint.
    force : bool
        Replace an existing run directory.
    progress : Progress, optional
        Reports each phase; also turns on Lightning's progress bar.

    Returns
    -------
    FitResult
    """
    if resume and force:
        raise ConfigError("resume continues a run and force replaces it: choose one")
    if fold is not None and folds is None:
        raise ConfigError("a single fold (fold=i) needs the number of folds (folds=K) too")
    run_dir = Path(run_dir)
    check_output_folder(run_dir, inputs=[data.csv_path, data.image_dir, *input_folders(data)]
                        + ([external.csv_path, external.image_dir] if external is not None else []))
    if folds is not None:
        result = train_kfold(cfg, data, run_dir, folds, fold=fold, external=external,
                             force=force, resume=resume, progress=progress)
        return FitResult(run_dir, kfold=result, external=result.external, summary=result.summary)
    ext_summary = None
    split = None
    if external is not None:
        kept, ext_summary = drop_duplicates(data, external)
        train_part, val_part = split_dataset(data, cfg)
        split = (add_external(train_part, kept), val_part)
    run = train_run(cfg, data, run_dir, force=force, progress=progress, resume=resume, split=split)
    if ext_summary is not None:
        write_json(run_dir / "external.json", ext_summary.as_dict())
    summary_path = run.path / "report" / "summary.json"
    summary = read_json(summary_path) if summary_path.is_file() else None
    return FitResult(run_dir, run=run, external=ext_summary, summary=summary)


def has_resume_point(run_dir: str | Path) -> bool:
    """Whether ``run_dir`` (or one of its folds) holds a ``last.ckpt`` that ``resume`` can continue."""
    run_dir = Path(run_dir)
    return (run_dir / "checkpoints" / "last.ckpt").is_file() or any(run_dir.glob("fold*/checkpoints/last.ckpt"))
