"""K-fold training with out-of-fold probabilities, and training with external images.

A K-fold run directory ``RUN/`` holds

* ``config.yaml``, ``env.json``: as for any run; every fold trains with this config;
* ``kfold.json``: the number of folds, the seed, the sample count and the
  external data, if any;
* ``folds.csv``: ``Id,Target,fold``, the fold that holds out each image
  (multilabel-stratified, :func:`hpa_classify.data.splits.kfold_splits`);
* ``fold{i}/``: a normal run trained on the other folds and validated on fold ``i``;

and, once every fold is trained and merged (:func:`merge_folds`),

* ``oof_probs.csv``: every training image's probabilities from the fold model
  that did not see it (out of fold), in the format of ``val_probs.csv``;
* ``train_prior.json``: the class frequencies of the whole training set;
* ``thresholds.json``: tuned on the out-of-fold probabilities;
* ``report/``: the evaluation of the out-of-fold probabilities.

The folds depend only on the labels, K and ``seed``, so ``--fold i`` can
train one fold on each of several machines; copy the ``fold{i}/`` folders
into one ``RUN/`` and run ``hpa merge RUN``. ``hpa predict`` and
``hpa evaluate`` use a K-fold run like any other: its prediction is the mean
of its folds' models.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hpa_classify.classes import NUM_CLASSES, format_target
from hpa_classify.config import Config, changed_keys, save_config
from hpa_classify.data.external import ExternalSummary, add_external, drop_duplicates
from hpa_classify.data.layout import Dataset
from hpa_classify.data.splits import kfold_splits
from hpa_classify.errors import ConfigError, DataError, RunError
from hpa_classify.evaluate.evaluation import tune_thresholds
from hpa_classify.fileio import write_csv, write_json
from hpa_classify.inference.distributed import is_global_zero
from hpa_classify.inference.probs import probs_frame, read_probs
from hpa_classify.inference.runs import open_run, read_json
from hpa_classify.progress import Progress, open_task
from hpa_classify.train.rundir import prepare_run_dir, write_env, write_train_prior
from hpa_classify.train.single import train_run

log = logging.getLogger(__name__)

KFOLD_FILE = "kfold.json"
FOLDS_FILE = "folds.csv"


def fold_dir(run_dir: str | Path, fold: int) -> Path:
    """The run directory of fold ``fold``: ``RUN/fold{fold}``."""
    return Path(run_dir) / f"fold{fold}"


def assign_folds(data: Dataset, folds: int, seed: int = 0) -> np.ndarray:
    """The fold (0..K-1) that holds out each sample, stratified over the 28 classes.

    Raises
    ------
    ConfigError
        If ``folds`` < 2.
    DataError
        If ``data`` has no labels or fewer than two samples per fold.
    """
    if folds < 2:
        raise ConfigError(f"--folds must be at least 2, got {folds}")
    if data.labels is None:
        raise DataError(f"{data.csv_path}: K-fold training needs a 'Target' column")
    if len(data) < 2 * folds:
        raise DataError(f"{data.csv_path}: {len(data)} samples are too few for {folds} folds")
    fold = np.full(len(data), -1, dtype=np.int64)
    for i, (_, held_out) in enumerate(kfold_splits(data.labels, folds, seed)):
        fold[held_out] = i
    return fold


def _folds_frame(data: Dataset, fold: np.ndarray) -> pd.DataFrame:
    assert data.labels is not None
    return pd.DataFrame(
        {"Id": data.ids, "Target": [format_target(t) for t in data.labels], "fold": fold}
    )


def _read_folds(run_dir: Path) -> pd.DataFrame:
    path = run_dir / FOLDS_FILE
    try:
        return pd.read_csv(path, dtype={"Id": str, "Target": str}, keep_default_na=False)
    except FileNotFoundError:
        raise RunError(f"{path}: not found; is {run_dir} a K-fold run?") from None


def _check_same(run_dir: Path, cfg: Config, folds: int, frame: pd.DataFrame,
                external: dict[str, Any] | None) -> None:
    """Refuse to add a fold to a K-fold run made with another config, K, data or external set."""
    info = read_json(run_dir / KFOLD_FILE)
    if int(info.get("folds", -1)) != folds:
        raise RunError(f"{run_dir}: a {info.get('folds')}-fold run; --folds {folds} does not match")
    detail = changed_keys(open_run(run_dir).cfg, cfg)
    if detail:
        raise ConfigError(
            f"{run_dir / 'config.yaml'}: every fold must train with the run's config, but {detail} differ"
        )
    saved = _read_folds(run_dir)
    if saved["Id"].tolist() != frame["Id"].tolist() or saved["fold"].tolist() != frame["fold"].tolist():
        raise RunError(
            f"{run_dir / FOLDS_FILE}: the folds differ from those of this data; "
            "every fold must train on the same CSV"
        )
    if info.get("external") != external:
        raise RunError(
            f"{run_dir / KFOLD_FILE}: the run's external data ({info.get('external')}) differ from "
            f"this command's ({external}); pass the same --external as for the other folds"
        )


def _start(run_dir: Path, cfg: Config, data: Dataset, folds: int, frame: pd.DataFrame,
           external: dict[str, Any] | None, force: bool) -> None:
    prepare_run_dir(run_dir, force)
    save_config(cfg, run_dir / "config.yaml")
    write_env(run_dir, cfg, data.fingerprint())
    write_csv(run_dir / FOLDS_FILE, frame)
    write_json(run_dir / KFOLD_FILE, {
        "folds": folds, "seed": cfg.seed, "n_samples": len(data), "external": external,
    })
    if data.skipped:
        write_csv(run_dir / "skipped.csv", pd.DataFrame(data.skipped, columns=["Id", "problem"]))


def _finished(path: Path) -> bool:
    return (path / "val_probs.csv").is_file() and (path / "thresholds.json").is_file()


@dataclass
class KFoldResult:
    """What :func:`train_kfold` did; ``summary`` is the OOF evaluation once all folds are merged."""

    run_dir: Path
    folds: int
    trained: list[int]
    finished: list[int]
    summary: dict[str, Any] | None = None
    external: ExternalSummary | None = None
    skipped_folds: list[int] = field(default_factory=list)


def train_kfold(
    cfg: Config,
    data: Dataset,
    run_dir: str | Path,
    folds: int,
    fold: int | None = None,
    external: Dataset | None = None,
    force: bool = False,
    resume: bool = False,
    progress: Progress | None = None,
) -> KFoldResult:
    """Train ``folds`` models on multilabel-stratified folds of ``data`` into ``run_dir``.

    Parameters
    ----------
    cfg, data
        The config every fold trains with, and the validated labelled data.
    run_dir : path
        The K-fold run directory; fold ``i`` trains in ``run_dir/fold{i}``.
    folds : int
        K, at least 2.
    fold : int, optional
        Train this fold only (into an existing K-fold run of the same config
        and data, or a new one). Without it every fold trains and the folds
        are merged (:func:`merge_folds`).
    external : Dataset, optional
        Extra labelled images added to every fold's training part (never to
        its validation part); rows whose Id is a Kaggle Id are left out.
    force : bool
        Replace an existing run (all of it; with ``fold``, that fold's directory).
    resume : bool
        Keep finished folds, continue interrupted ones from their last
        checkpoint, train the others.

    Returns
    -------
    KFoldResult
    """
    run_dir = Path(run_dir)
    assignment = assign_folds(data, folds, cfg.seed)
    frame = _folds_frame(data, assignment)
    kept, ext_summary = (None, None) if external is None else drop_duplicates(data, external)
    ext_info = ext_summary.as_dict() if ext_summary is not None else None
    if fold is not None and not 0 <= fold < folds:
        raise ConfigError(f"--fold must be 0-{folds - 1} for --folds {folds}, got {fold}")

    is_kfold = (run_dir / KFOLD_FILE).is_file()
    if is_kfold and (resume or fold is not None) and not (force and fold is None):
        _check_same(run_dir, cfg, folds, frame, ext_info)
    elif resume:
        raise RunError(f"{run_dir}: not a K-fold run to resume (no {KFOLD_FILE}); start it without --resume")
    elif is_global_zero():  # the other processes of a distributed run write nothing
        _start(run_dir, cfg, data, folds, frame, ext_info, force)

    todo = range(folds) if fold is None else [fold]
    trained: list[int] = []
    skipped: list[int] = []
    for i in todo:
        path = fold_dir(run_dir, i)
        if resume and _finished(path):
            skipped.append(i)
            continue
        go_on = resume and (path / "checkpoints" / "last.ckpt").is_file()
        train_part = data.subset(np.flatnonzero(assignment != i))
        val_part = data.subset(np.flatnonzero(assignment == i))
        train_part = add_external(train_part, kept)
        phase = open_task(progress, f"fold {i + 1} of {folds}: training on {len(train_part)} images, "
                          f"validating on {len(val_part)}{' (resumed)' if go_on else ''}", None)
        train_run(
            cfg, data, path,
            force=force or (resume and not go_on),
            progress=progress,
            resume=go_on,
            split=(train_part, val_part),
        )
        phase.close()
        trained.append(i)

    finished = [i for i in range(folds) if _finished(fold_dir(run_dir, i))]
    summary = merge_folds(run_dir) if fold is None and is_global_zero() else None
    return KFoldResult(run_dir, folds, trained, finished, summary, ext_summary, skipped)


def merge_folds(run_dir: str | Path) -> dict[str, Any]:
    """Assemble the folds' validation probabilities into ``oof_probs.csv``; tune thresholds on them.

    Writes ``oof_probs.csv``, ``train_prior.json``, ``thresholds.json`` and
    ``report/`` in ``run_dir`` and returns the evaluation summary, with each
    fold's own validation macro F1 added.

    Raises
    ------
    RunError
        If ``run_dir`` is not a K-fold run, a fold is missing or unfinished, or
        a fold's validation images are not the ones ``folds.csv`` gives it.
    """
    run_dir = Path(run_dir)
    run = open_run(run_dir)
    if not run.is_kfold:
        raise RunError(f"{run_dir}: not a K-fold run (no {KFOLD_FILE}); 'hpa merge' needs one")
    folds = int(read_json(run_dir / KFOLD_FILE)["folds"])
    frame = _read_folds(run_dir)
    missing = [i for i in range(folds) if not _finished(fold_dir(run_dir, i))]
    if missing:
        raise RunError(
            f"{run_dir}: folds {missing} of {folds} are not finished (no val_probs.csv and "
            f"thresholds.json); train them with 'hpa train DATA --folds {folds} --fold i -o {run_dir}'"
        )
    pos = {sample_id: k for k, sample_id in enumerate(frame["Id"])}
    probs = np.full((len(frame), NUM_CLASSES), np.nan, dtype=np.float32)
    labels: list[list[int]] = [[] for _ in range(len(frame))]
    fold_f1: list[float] = []
    for i in range(folds):
        path = fold_dir(run_dir, i) / "val_probs.csv"
        ids, p, lab = read_probs(path)
        expected = set(frame["Id"][frame["fold"] == i])
        if set(ids) != expected or len(ids) != len(expected):
            raise RunError(
                f"{path}: holds {len(ids)} images, not the {len(expected)} that {FOLDS_FILE} "
                f"assigns to fold {i}; was the fold trained for another run?"
            )
        rows = [pos[s] for s in ids]
        probs[rows] = p
        for r, t in zip(rows, lab or []):
            labels[r] = list(t)
        fold_summary = fold_dir(run_dir, i) / "report" / "summary.json"
        if fold_summary.is_file():
            fold_f1.append(float(read_json(fold_summary).get("macro_f1", float("nan"))))
    ids = frame["Id"].tolist()
    write_csv(run.oof_probs_path, probs_frame(ids, probs, labels))
    write_train_prior(run_dir, labels)
    summary = tune_thresholds(run)
    summary["folds"] = folds
    if len(fold_f1) == folds:
        summary["fold_val_macro_f1"] = ", ".join(f"{f:.4f}" for f in fold_f1)
    write_json(run_dir / "report" / "summary.json", {k: v for k, v in summary.items() if k != "report"})
    return summary
