"""Compare finished runs: what changed in their configs, and what it did to the scores.

:func:`compare_runs` gives one row per run: the config keys whose values
differ between the runs, macro F1 and its change against the first run,
macro F1 at 0.5 and with prior-matched thresholds, training time and speed,
and each class's F1 and its change against the first run. Scores are
computed from each run's held-out probabilities (``val_probs.csv``, or
``oof_probs.csv`` of a K-fold run) and saved ``thresholds.json``, the numbers
``hpa evaluate`` reports; runs compare image for image when they share a
split (same data, ``seed`` and ``data.val_fraction``).

:func:`plot_curves` draws the runs' validation curves together;
:func:`write_comparison` writes the table as CSV and Markdown beside that plot.

Examples
--------
>>> _label_runs([Path("runs/a"), Path("other/a"), Path("runs/b")])
['runs/a', 'other/a', 'b']
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from matplotlib.ticker import MaxNLocator

from hpa_classify.classes import CLASS_NAMES, NUM_CLASSES, to_multihot
from hpa_classify.config import flat_config
from hpa_classify.errors import RunError
from hpa_classify.evaluate.metrics import binarize, macro_f1, per_class_f1
from hpa_classify.evaluate.thresholds import load_thresholds, prior_matching_thresholds
from hpa_classify.fileio import write_csv, write_text
from hpa_classify.inference.runs import Run, fold_runs, open_run
from hpa_classify.render.figures import new_figure, save_figure
from hpa_classify.render.tables import markdown_table as _markdown

log = logging.getLogger(__name__)

#: Columns of :func:`compare_runs` after the config keys, before the per-class ones.
SCORE_COLUMNS = (
    "evaluated_on", "n_images", "macro_f1", "delta_macro_f1", "macro_f1_at_0.5",
    "macro_f1_prior", "epochs", "wall_s", "images_per_s",
)
#: Config keys left out of the comparison: labels, not recipe.
IGNORED_KEYS = ("name",)


def f1_column(class_id: int) -> str:
    """Column of class ``class_id``'s F1, e.g. ``f1:Nucleoplasm``."""
    return f"f1:{CLASS_NAMES[class_id]}"


def delta_column(class_id: int) -> str:
    """Column of the change of class ``class_id``'s F1 against the first run."""
    return f"delta_f1:{CLASS_NAMES[class_id]}"


def _label_runs(paths: Sequence[Path]) -> list[str]:
    """Short unique labels: the folder name, or the path where names repeat (``#k`` for a repeat).

    >>> _label_runs([Path("runs/a"), Path("runs/a")])
    ['runs/a', 'runs/a #2']
    """
    names = [p.name for p in paths]
    labels = [p.name if names.count(p.name) == 1 else str(p) for p in paths]
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        out.append(label if seen[label] == 1 else f"{label} #{seen[label]}")
    return out


def _metrics(run: Run) -> pd.DataFrame | None:
    """The run's ``metrics.csv``; for a K-fold run the mean over folds per epoch, seconds summed."""
    frames = []
    for r in fold_runs(run):
        path = r.path / "metrics.csv"
        if path.is_file():
            try:
                frames.append(pd.read_csv(path))
            except (OSError, ValueError, pd.errors.EmptyDataError) as exc:
                log.warning("%s: unreadable (%s)", path, exc)
    frames = [f for f in frames if "epoch" in f and len(f)]
    if not frames:
        return None
    joined = pd.concat(frames)
    mean = joined.groupby("epoch").mean(numeric_only=True).reset_index()
    if "seconds" in joined:
        mean["seconds"] = joined.groupby("epoch")["seconds"].sum().to_numpy()
    return mean


def _scores(run: Run) -> dict[str, Any]:
    """Macro and per-class F1 from the run's held-out probabilities and thresholds."""
    _, probs, labels = run.tuning_probs()
    y = to_multihot(labels)
    preds, _ = binarize(probs, load_thresholds(run.thresholds_path), at_least_one=True)
    half, _ = binarize(probs, np.full(NUM_CLASSES, 0.5), at_least_one=True)
    matched, _ = binarize(probs, prior_matching_thresholds(probs, run.train_prior()), at_least_one=True)
    return {
        "evaluated_on": "out-of-fold" if run.is_kfold else "validation",
        "n_images": len(y),
        "macro_f1": macro_f1(y, preds),
        "macro_f1_at_0.5": macro_f1(y, half),
        "macro_f1_prior": macro_f1(y, matched),
        "per_class": per_class_f1(y, preds),
    }


def _cell(value: Any) -> Any:
    """Config values as table cells: mappings and lists become short text."""
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return value


def compare_runs(paths: Sequence[str | os.PathLike[str]]) -> pd.DataFrame:
    """One row per run: differing config keys, scores, speed, per-class F1 and deltas.

    Parameters
    ----------
    paths : sequence of path-like
        Finished run directories (plain or K-fold); the first is the reference
        for every ``delta_*`` column.

    Returns
    -------
    pandas.DataFrame
        Indexed by a short run label (``run``). Columns: ``path``, the config
        keys that differ between the runs (dotted names, ``name`` left out),
        ``folds``, then :data:`SCORE_COLUMNS` (``wall_s`` is the summed
        duration of the training epochs, ``images_per_s`` their mean training
        throughput, both from ``metrics.csv``), then ``f1:<class>`` and
        ``delta_f1:<class>`` for each of the 28 classes.

    Raises
    ------
    RunError
        If a path is not a finished run.
    """
    if not paths:
        raise RunError("compare needs at least one run")
    dirs = [Path(p) for p in paths]
    runs = [open_run(p) for p in dirs]
    configs = [flat_config(r.cfg) for r in runs]
    keys = sorted(set().union(*configs))
    differing = [
        k for k in keys
        if k not in IGNORED_KEYS and len({repr(c.get(k)) for c in configs}) > 1
    ]
    rows: list[dict[str, Any]] = []
    for run, cfg in zip(runs, configs):
        scores = _scores(run)
        metrics = _metrics(run)
        row: dict[str, Any] = {"path": str(run.path)}
        row.update({k: _cell(cfg.get(k)) for k in differing})
        row["folds"] = len(fold_runs(run))
        row.update({k: scores[k] for k in ("evaluated_on", "n_images", "macro_f1")})
        row["macro_f1_at_0.5"] = scores["macro_f1_at_0.5"]
        row["macro_f1_prior"] = scores["macro_f1_prior"]
        if metrics is not None:
            row["epochs"] = int(metrics["epoch"].max())
            row["wall_s"] = float(metrics["seconds"].sum()) if "seconds" in metrics else math.nan
            row["images_per_s"] = float(metrics["images_per_s"].mean()) if "images_per_s" in metrics else math.nan
        else:
            row.update(epochs=math.nan, wall_s=math.nan, images_per_s=math.nan)
        for c in range(NUM_CLASSES):
            row[f1_column(c)] = float(scores["per_class"][c])
        rows.append(row)
    frame = pd.DataFrame(rows, index=pd.Index(_label_runs(dirs), name="run"))
    frame.insert(frame.columns.get_loc("macro_f1") + 1, "delta_macro_f1",
                 frame["macro_f1"] - frame["macro_f1"].iloc[0])
    for c in range(NUM_CLASSES):
        frame[delta_column(c)] = frame[f1_column(c)] - frame[f1_column(c)].iloc[0]
    shared = {frozenset(pd.read_csv(r.tuning_probs_path, usecols=["Id"], dtype=str)["Id"]) for r in runs}
    if len(shared) > 1:
        log.warning("the runs were scored on different images; deltas compare different held-out sets")
    return frame


def summary_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The headline columns of :func:`compare_runs`: config differences, scores, speed."""
    per_class = [c for c in frame.columns if c.startswith(("f1:", "delta_f1:"))]
    return frame.drop(columns=["path", *per_class])


def class_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Classes as rows: the first run's F1, then each other run's change against it."""
    first = frame.index[0]
    out = pd.DataFrame(index=pd.Index(list(CLASS_NAMES), name="class"))
    out[f"f1 {first}"] = [frame.loc[first, f1_column(c)] for c in range(NUM_CLASSES)]
    for label in frame.index[1:]:
        out[f"delta {label}"] = [frame.loc[label, delta_column(c)] for c in range(NUM_CLASSES)]
    return out


def _fmt(value: Any, signed: bool = False) -> str:
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return "-"
        return f"{value:+.4f}" if signed else f"{value:.4f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def format_table(table: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Header and text rows of a table (index first); rows or columns named ``delta...`` get a sign."""
    header = [str(table.index.name or ""), *map(str, table.columns)]
    rows = []
    for label, values in table.iterrows():
        signed_row = str(label).startswith("delta")
        rows.append([str(label)] + [
            _fmt(v, signed_row or str(c).startswith("delta")) for c, v in values.items()
        ])
    return header, rows


def markdown_table(table: pd.DataFrame) -> str:
    """A GitHub Markdown table of ``table`` (index first)."""
    return _markdown(*format_table(table))


def plot_curves(paths: Sequence[str | os.PathLike[str]], out_png: str | os.PathLike[str]) -> Path:
    """Validation macro F1 (at 0.5) and loss per epoch of every run, on one PNG.

    A K-fold run is drawn as the mean of its folds. Returns the PNG path.
    """
    dirs = [Path(p) for p in paths]
    labels = _label_runs(dirs)
    fig = new_figure(10, 3.8)
    ax_f1, ax_loss = fig.subplots(1, 2)
    drawn = 0
    for label, path in zip(labels, dirs):
        metrics = _metrics(open_run(path))
        if metrics is None:
            log.warning("%s: no metrics.csv; left out of the curves", path)
            continue
        line = ax_f1.plot(metrics["epoch"], metrics["val_f1"], marker="o", label=label)[0]
        ax_loss.plot(metrics["epoch"], metrics["val_loss"], marker="o", color=line.get_color(), label=label)
        if "train_loss" in metrics:
            ax_loss.plot(metrics["epoch"], metrics["train_loss"], ls="--", color=line.get_color(), alpha=0.6)
        drawn += 1
    ax_f1.set(title="validation macro F1 (at 0.5)", xlabel="epoch", ylabel="macro F1")
    ax_loss.set(title="loss (validation solid, training dashed)", xlabel="epoch", ylabel="loss")
    for ax in (ax_f1, ax_loss):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if drawn:
        ax_f1.legend(fontsize="small")
    return save_figure(fig, out_png)


def write_comparison(
    paths: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    frame: pd.DataFrame | None = None,
) -> dict[str, Path]:
    """Write ``compare.csv`` (every column), ``compare.md`` (both tables) and ``curves.png``.

    ``frame`` is :func:`compare_runs` of ``paths`` when already computed.
    Returns the paths by kind: ``csv``, ``markdown``, ``png``.
    """
    out = Path(out_dir)
    frame = compare_runs(paths) if frame is None else frame
    csv_path = write_csv(out / "compare.csv", frame.reset_index())
    png = plot_curves(paths, out / "curves.png")
    runs = "\n".join(f"- `{label}`: `{path}`" for label, path in zip(frame.index, frame["path"]))
    md = "\n\n".join([
        "# Run comparison",
        f"Runs (deltas against the first):\n\n{runs}",
        "## Summary\n\nConfig keys that differ, macro F1 on each run's held-out images "
        "(with its saved thresholds, at 0.5, and with prior-matched thresholds), training "
        "epochs, time (s) and images/s.",
        markdown_table(summary_table(frame)),
        "## Per-class F1",
        markdown_table(class_table(frame)),
        f"![validation curves]({png.name})",
        "",
    ])
    md_path = write_text(out / "compare.md", md)
    return {"csv": csv_path, "markdown": md_path, "png": png}
