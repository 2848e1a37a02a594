"""A run's evaluation as a self-contained report (``report.html`` + ``report.md``).

The HTML report embeds its figures as base64 ``data:`` URIs, so the one file
can be mailed or attached on its own; the same PNGs are saved under
``figures/`` beside it, which the Markdown report links to. Every file is
written atomically.
"""

from __future__ import annotations

import html
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hpa_classify.evaluate.figures import (
    ExampleMaps,
    require_columns,
    plot_class_f1,
    plot_label_counts,
    plot_pr_curves,
    plot_prediction_examples,
    plot_training_curves,
)
from hpa_classify.evaluate.metrics import binarize
from hpa_classify.fileio import write_text
from hpa_classify.render.html import figure_html, format_value, html_document, html_table
from hpa_classify.render.tables import markdown_table

log = logging.getLogger(__name__)

#: File names under ``figures/`` and their captions, in report order.
FIGURES: dict[str, str] = {
    "training_curves": "Training curves: loss and macro F1 per epoch",
    "class_f1": "F1 per class at the chosen thresholds",
    "label_counts": "True and predicted labels per class",
    "pr_curves": "Precision-recall curve per class (dot: chosen threshold)",
    "examples": "Most confident predictions, right and wrong (RGB composite: red microtubules, "
    "green protein, blue nucleus, yellow ER added to red and green)",
    "example_maps": "The same images with the class activation map of each tile's class (Grad-CAM; "
    "warm: where the model's evidence for that class lies)",
}


def write_report(
    out_dir: str | os.PathLike[str],
    table: pd.DataFrame,
    summary: Mapping[str, Any],
    y_true: np.ndarray | None = None,
    probs: np.ndarray | None = None,
    thresholds: np.ndarray | float | None = None,
    metrics_csv: str | os.PathLike[str] | None = None,
    title: str = "Evaluation report",
    at_least_one: bool = True,
    ids: list[str] | None = None,
    image_files: Mapping[str, Mapping[str, str | os.PathLike[str]]] | None = None,
    training_log: tuple[str | os.PathLike[str], str] | None = None,
    cam: ExampleMaps | None = None,
) -> Path:
    """Write ``report.html`` and ``report.md`` with summary, figures and per-class table.

    Parameters
    ----------
    out_dir : path-like
        Folder for ``report.html``, ``report.md`` and ``figures/*.png``.
    table : pandas.DataFrame
        Per-class table from :func:`~hpa_classify.evaluate.metrics.class_table`.
    summary : mapping
        Headline numbers shown as a key/value table, e.g. ``macro_f1``,
        ``macro_f1_at_0.5``, ``baseline_macro_f1``, ``n_images``,
        ``threshold_method``.
    y_true, probs : ndarray, shape (N, C), optional
        Labels and probabilities; given together, they add the
        precision-recall and label-count figures.
    thresholds : float or ndarray, shape (C,), optional
        Thresholds for those figures; default: the table's ``threshold`` column.
    metrics_csv : path-like, optional
        A run's ``metrics.csv``; adds the training curves when it has data.
    title : str
        Report heading.
    at_least_one : bool, default True
        Apply the top-1 fallback when counting predicted labels (match the
        setting the table was made with).
    ids : list of str, optional
        Image Ids, one per row of ``y_true``; with ``image_files`` they add the
        figure of example images with their predictions.
    image_files : mapping, optional
        Id -> channel -> file of those images.
    training_log : (path-like, str), optional
        The folder of a run's TensorBoard or MLflow logs and the command that
        opens it; adds a "Training logs" section that links to the folder.
    cam : callable, optional
        Activation maps of the example images (see
        :func:`~hpa_classify.evaluate.figures.plot_prediction_examples`); adds
        the figure of the same examples with their maps.

    Returns
    -------
    pathlib.Path
        The ``report.html`` path.
    """
    require_columns(table, ("name", "support", "f1"))
    if (y_true is None) != (probs is None):
        raise ValueError("give y_true and probs together (or neither)")
    out = Path(out_dir)
    fig_dir = out / "figures"
    figures: list[tuple[str, Path]] = []

    if metrics_csv is not None:
        curves = plot_training_curves(metrics_csv, fig_dir / "training_curves.png")
        if curves is not None:
            figures.append(("training_curves", curves))
    figures.append(("class_f1", plot_class_f1(table, fig_dir / "class_f1.png")))
    if y_true is not None and probs is not None:
        if thresholds is None:
            if "threshold" not in table.columns:
                raise ValueError("no thresholds given and the table has no 'threshold' column")
            thresholds = table["threshold"].to_numpy(dtype=np.float64)
        names = [str(n) for n in table["name"]] if len(table) == np.shape(probs)[-1] else None
        preds, _ = binarize(probs, thresholds, at_least_one=at_least_one)
        figures.append(("label_counts", plot_label_counts(
            y_true, preds, fig_dir / "label_counts.png", class_names=names)))
        figures.append(("pr_curves", plot_pr_curves(
            y_true, probs, thresholds, fig_dir / "pr_curves.png", class_names=names)))
        if ids is not None and image_files is not None:
            examples = plot_prediction_examples(
                list(ids), y_true, preds, probs, image_files, fig_dir / "examples.png",
                class_names=names)
            if examples is not None:
                figures.append(("examples", examples))
            if examples is not None and cam is not None:
                with_maps = plot_prediction_examples(
                    list(ids), y_true, preds, probs, image_files, fig_dir / "example_maps.png",
                    class_names=names, cam=cam)
                if with_maps is not None:
                    figures.append(("example_maps", with_maps))

    summary_rows = [[str(k), format_value(v)] for k, v in summary.items()]
    columns = [str(c) for c in table.columns]
    numeric = [pd.api.types.is_numeric_dtype(table[c]) for c in table.columns]
    table_rows = [[format_value(v) for v in row] for row in table.itertuples(index=False)]

    md = [f"# {title}", "", "## Summary", "", markdown_table(["key", "value"], summary_rows), ""]
    md += ["## Figures", ""]
    for key, path in figures:
        rel = path.relative_to(out).as_posix()
        md += [f"### {FIGURES[key]}", "", f"![{FIGURES[key]}]({rel})", ""]
    log_md, log_html = _training_log_section(out, training_log)
    md += log_md
    md += ["## Per-class metrics", "", markdown_table(columns, table_rows), ""]
    write_text(out / "report.md", "\n".join(md))

    parts = [
        "<h2>Summary</h2>",
        html_table(["key", "value"], summary_rows, [False, True]),
        "<h2>Figures</h2>",
    ]
    parts += [figure_html(path, FIGURES[key]) for key, path in figures]
    parts += log_html
    parts += [
        "<h2>Per-class metrics</h2>",
        html_table(columns, table_rows, numeric),
    ]
    html_path = write_text(out / "report.html", html_document(title, parts))
    log.info("wrote report %s (%d figures)", html_path, len(figures))
    return html_path


def _training_log_section(
    out: Path, training_log: tuple[str | os.PathLike[str], str] | None
) -> tuple[list[str], list[str]]:
    """Markdown lines and HTML parts of the "Training logs" section (none without logs)."""
    if training_log is None:
        return [], []
    folder, command = Path(training_log[0]), training_log[1]
    link = Path(os.path.relpath(folder.resolve(), out.resolve())).as_posix() + "/"
    md = ["## Training logs", "", f"The curves of every epoch are also in [{folder.name}/]({link}); "
          "open them with", "", "```", command, "```", ""]
    parts = [
        "<h2>Training logs</h2>",
        f'<p>The curves of every epoch are also in <a href="{html.escape(link)}">{html.escape(folder.name)}/</a>; '
        "open them with</p>",
        f"<pre><code>{html.escape(command)}</code></pre>",
    ]
    return md, parts
