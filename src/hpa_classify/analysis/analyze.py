"""Analyse a dataset into ``OUT/report.html``, ``OUT/stats.json`` and ``OUT/normalization.yaml``.

The report is one self-contained HTML file (figures embedded as base64 PNG,
also saved under ``OUT/figures/``). It has label sections when the CSV has a
``Target`` column and image sections when images are found; a label table on
its own (no images anywhere) gives the label sections only.
"""

from __future__ import annotations

import html
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hpa_classify.analysis import plots
from hpa_classify.analysis.stats import (
    DuplicateGroup,
    LabelStats,
    duplicate_samples,
    file_formats,
    find_duplicate_files,
    label_stats,
    montage_picks,
    random_subset,
    read_pixels,
)
from hpa_classify.classes import CHANNEL_STAINS, CHANNELS, CLASS_NAMES
from hpa_classify.data.intensity import depth_survey, resolve_scaling, suggestion
from hpa_classify.data.io import Scaling
from hpa_classify.data.layout import Dataset, load_dataset, validate
from hpa_classify.errors import DataError
from hpa_classify.render.composite import composite_rgb, green_view
from hpa_classify.render.html import figure_html, format_value, html_document, html_table
from hpa_classify.fileio import write_json, write_text
from hpa_classify.progress import Progress, open_task

log = logging.getLogger(__name__)

#: Figure file names (under ``figures/``) and their captions.
FIGURES: dict[str, str] = {
    "class_frequency": "Images per class (log scale); red: fewer than the --min-count limit",
    "labels_per_image": "Number of labels per image",
    "cooccurrence": "Class co-occurrence: counts (left) and P(j | i) (right)",
    "channel_histograms": "Pixel intensity per channel, and mean ± std (0-1 scale)",
    "montage_rgb": "Examples per class, RGB composite (red microtubules, green protein, "
    "blue nucleus, yellow ER added to red and green; each channel stretched for display)",
    "montage_green": "The same examples, green channel (the protein) alone, stretched for display",
}

#: Problems and duplicate groups listed in stats.json and the report (the counts are complete).
LIST_LIMIT = 1000
_HTML_ROWS = 20

_EXTRA_CSS = """
.warn { background: #fff4e5; border-left: 4px solid #f0a020; padding: .6em 1em; }
.warn li { margin: .2em 0; }
pre { background: #f6f8fa; padding: .8em; overflow-x: auto; }
"""


@dataclass
class Analysis:
    """Where an analysis was written and what it found.

    Attributes
    ----------
    out_dir, html, stats_json : pathlib.Path
    normalization : pathlib.Path or None
        ``normalization.yaml``, when images were read.
    figures : dict of str to pathlib.Path
    stats : dict
        The content of ``stats.json``.
    """

    out_dir: Path
    html: Path
    stats_json: Path
    normalization: Path | None
    figures: dict[str, Path]
    stats: dict[str, Any]

    @property
    def warnings(self) -> list[str]:
        return list(self.stats["warnings"])


def normalization_yaml(mean: np.ndarray, std: np.ndarray, source: str, n_images: int) -> str:
    """A config override file setting ``data.mean`` and ``data.std`` (loadable by ``--config``).

    >>> text = normalization_yaml(np.array([.1, .2, .3, .4]), np.array([.5] * 4), "x.csv", 3)
    >>> import yaml; yaml.safe_load(text)["data"]["mean"]
    [0.1, 0.2, 0.3, 0.4]
    """
    fmt = lambda v: "[" + ", ".join(f"{float(x):.4f}" for x in v) + "]"  # noqa: E731
    return (
        "# Per-channel pixel mean and std on the 0-1 scale (red, green, blue, yellow),\n"
        f"# measured by 'hpa analyze' over {n_images} images of {source}.\n"
        "# Use as a config file (hpa train DATA --config normalization.yaml),\n"
        "# or merge the 'data' keys into your own config.\n"
        "data:\n"
        f"  mean: {fmt(mean)}\n"
        f"  std: {fmt(std)}\n"
    )


def _set_overrides(mean: np.ndarray, std: np.ndarray) -> str:
    fmt = lambda v: "[" + ",".join(f"{float(x):.4f}" for x in v) + "]"  # noqa: E731
    return f"--set 'data.mean={fmt(mean)}' --set 'data.std={fmt(std)}'"


def _warnings(
    labels: LabelStats | None,
    min_count: int,
    n_invalid: int,
    n_samples: int,
    duplicates: list[DuplicateGroup],
    dup_samples: list[list[str]],
    images_found: bool,
) -> list[str]:
    out: list[str] = []
    if labels is not None:
        rare = labels.rare(min_count)
        if rare:
            named = ", ".join(f"{c} {CLASS_NAMES[c]} ({int(labels.counts[c])})" for c in rare)
            out.append(f"{len(rare)} classes have fewer than {min_count} images: {named}")
        absent = labels.absent()
        if absent:
            named = ", ".join(f"{c} {CLASS_NAMES[c]}" for c in absent)
            out.append(f"{len(absent)} classes have no images: {named}")
    if not images_found:
        out.append("no images found: label sections only")
    if n_invalid:
        out.append(f"{n_invalid} of {n_samples} samples are invalid (listed below and in stats.json)")
    if duplicates:
        n_files = sum(len(g.members) for g in duplicates)
        out.append(f"{len(duplicates)} groups of byte-identical image files ({n_files} files)")
    if dup_samples:
        out.append(f"{len(dup_samples)} groups of samples whose four channels are identical: "
                   + "; ".join(", ".join(g) for g in dup_samples[:5])
                   + (" ..." if len(dup_samples) > 5 else ""))
    return out


def analyze(
    data: str | os.PathLike[str] | Dataset,
    out_dir: str | os.PathLike[str],
    images: str | os.PathLike[str] | None = None,
    prefer: str = "train",
    max_images: int = 500,
    min_count: int = 20,
    per_class: int = 6,
    thumb_size: int = 96,
    seed: int = 0,
    workers: int | None = None,
    progress: Progress | None = None,
    intensity: str | None = None,
) -> Analysis:
    """Analyse a dataset and write the report, ``stats.json`` and ``normalization.yaml``.

    Parameters
    ----------
    data : path-like or Dataset
        DATA as on the command line (a Kaggle root, a folder with a CSV beside
        its images, or a CSV path), or a dataset already loaded.
    out_dir : path-like
        Output folder (created; files in it are replaced).
    images : path-like, optional
        Image folder, when DATA is a CSV whose images live elsewhere.
    prefer : str
        Which CSV of a Kaggle root: ``train`` or ``test``.
    max_images : int
        Images decoded for the intensity statistics (a random sample).
    min_count : int
        Warn about classes with fewer images than this.
    per_class : int
        Example images per class in the montages.
    thumb_size : int
        Side of a montage tile, px.
    seed : int
        Seed of the random choices (same seed, same report).
    workers : int, optional
        Threads for reading and hashing files.
    progress : Progress, optional
        Reports the image pass.

    Returns
    -------
    Analysis

    Raises
    ------
    DataError
        When the CSV cannot be read, or there are neither labels nor images.
    """
    t0 = time.perf_counter()
    ds = data if isinstance(data, Dataset) else load_dataset(data, images, prefer=prefer)
    if max_images < 0 or min_count < 0 or per_class < 0:
        raise DataError("--max-images, --min-count and --per-class must not be negative")
    out = Path(out_dir)
    fig_dir = out / "figures"
    images_found = any(ds.files)
    if ds.labels is None and not images_found:
        raise DataError(
            f"{ds.csv_path}: nothing to analyse: no 'Target' column and no images in {ds.image_dir}"
        )
    figures: dict[str, Path] = {}
    stats: dict[str, Any] = {
        "source": {"csv": str(ds.csv_path), "image_dir": str(ds.image_dir), "n_samples": len(ds)},
        "settings": {"max_images": max_images, "min_count": min_count, "per_class": per_class,
                     "seed": seed},
    }

    labels = label_stats(ds.labels) if ds.labels is not None else None
    stats["labels"] = labels.to_json() if labels is not None else None
    if labels is not None:
        figures["class_frequency"] = plots.plot_class_frequency(
            labels, fig_dir / "class_frequency.png", min_count)
        figures["labels_per_image"] = plots.plot_labels_per_image(
            labels, fig_dir / "labels_per_image.png")
        figures["cooccurrence"] = plots.plot_cooccurrence(labels, fig_dir / "cooccurrence.png")

    if images_found:
        part = _image_pass(ds, out, labels, stats, figures, max_images, per_class, thumb_size, seed,
                           workers, progress)
    else:
        stats["images"] = None
        part = _ImagePart()
    problems, duplicates, dup_samples, normalization = (
        part.problems, part.duplicates, part.dup_samples, part.normalization)

    bad_ids = list(dict.fromkeys(i for i, _ in problems))
    stats["invalid"] = {
        "count": len(bad_ids),
        "problems": [{"Id": i, "problem": m} for i, m in problems[:LIST_LIMIT]],
    }
    stats["duplicates"] = {
        "file_groups": [g.to_json() for g in duplicates[:LIST_LIMIT]],
        "n_file_groups": len(duplicates),
        "sample_groups": dup_samples[:LIST_LIMIT],
    }
    stats["warnings"] = _warnings(labels, min_count, len(bad_ids), len(ds), duplicates,
                                  dup_samples, images_found)
    stats["bit_depth"] = _bit_depth(ds, intensity, seed) if images_found and not bad_ids else None
    if stats["bit_depth"] and stats["bit_depth"].get("suggested"):
        depth = stats["bit_depth"]
        stats["warnings"].append(
            f"values reach {depth['max_value']} ({depth['value_bits']} bits) in {depth['container_bits']}-bit "
            f"files read as {depth['chosen']['spec']}: images look dark; consider "
            f"--set data.intensity={depth['suggested']}")
    stats["figures"] = {k: p.relative_to(out).as_posix() for k, p in figures.items()}
    stats["seconds"] = round(time.perf_counter() - t0, 2)
    stats_json = write_json(out / "stats.json", stats)
    html_path = write_text(out / "report.html", _render(ds, stats, figures, labels, normalization))
    for warning in stats["warnings"]:
        log.info("%s", warning)
    log.info("wrote %s in %.1f s", html_path, time.perf_counter() - t0)
    return Analysis(out_dir=out, html=html_path, stats_json=stats_json,
                    normalization=normalization, figures=figures, stats=stats)


def _bit_depth(ds: Dataset, intensity: str | None, seed: int) -> dict[str, Any]:
    """The depth found in a few fields, the scaling chosen (``intensity``, else the dataset's own)
    and a better one when values fill a small part of their container."""
    chosen = resolve_scaling(ds, intensity) if intensity else (ds.reading.scaling or Scaling())
    survey = depth_survey(ds, seed=seed)
    better = suggestion(survey) if chosen.kind == "auto" else None
    return {**survey, "chosen": chosen.as_dict(), "suggested": better}


@dataclass
class _ImagePart:
    """What the image pass of :func:`analyze` found."""

    problems: list[tuple[str, str]] = field(default_factory=list)
    duplicates: list[DuplicateGroup] = field(default_factory=list)
    dup_samples: list[list[str]] = field(default_factory=list)
    normalization: Path | None = None


def _image_pass(
    ds: Dataset, out: Path, labels: LabelStats | None, stats: dict[str, Any], figures: dict[str, Path],
    max_images: int, per_class: int, thumb_size: int, seed: int, workers: int | None,
    progress: Progress | None,
) -> _ImagePart:
    """Validate, hash and read the images; fill ``stats["images"]`` and ``figures``."""
    fig_dir = out / "figures"
    normalization: Path | None = None
    report = validate(ds, workers=workers or 8)
    problems = list(report.problems)
    bad = set(report.bad_ids)
    valid = [i for i, sample_id in enumerate(ds.ids) if sample_id not in bad]
    duplicates = find_duplicate_files(ds.ids, ds.files, workers=workers)
    dup_samples = duplicate_samples(duplicates)
    stats_index = random_subset(len(valid), max_images, seed)
    stats_index = [valid[i] for i in stats_index]
    picks = montage_picks(ds.labels, valid, per_class, seed) if per_class else {}
    thumb_index = sorted({i for idx in picks.values() for i in idx})
    todo = len(set(stats_index) | set(thumb_index))
    task = open_task(progress, f"reading {todo} images", todo)
    try:
        pixel_pass = read_pixels(ds.ids, ds.files, stats_index, thumb_index, thumb_size, workers, task.advance)
    finally:
        task.close()
    problems += pixel_pass.problems
    stats["images"] = {
        "samples_with_files": sum(1 for f in ds.files if f),
        "valid_samples": len(valid) - len(pixel_pass.problems),
        "sizes": [{"width": w, "height": h, "count": n}
                  for (w, h), n in sorted(report.sizes.items(), key=lambda kv: -kv[1])],
        "formats": file_formats(ds.files),
        "pixels": pixel_pass.pixels.to_json() if pixel_pass.pixels else None,
    }
    if pixel_pass.pixels is not None:
        px = pixel_pass.pixels
        figures["channel_histograms"] = plots.plot_channel_histograms(
            px, fig_dir / "channel_histograms.png")
        normalization = write_text(
            out / "normalization.yaml",
            normalization_yaml(px.mean, px.std, str(ds.csv_path), px.n_images),
        )
    rows_rgb, rows_green = _montage_rows(picks, pixel_pass.thumbnails, labels)
    stats["images"]["montage"] = {
        "classes_shown": [c for c, idx in picks.items() if idx and c >= 0],
        "examples": {str(c): [ds.ids[i] for i in idx] for c, idx in picks.items() if idx},
    }
    if rows_rgb:
        columns = max(len(images) for _, images in rows_rgb)
        figures["montage_rgb"] = plots.plot_montage(
            rows_rgb, fig_dir / "montage_rgb.png", columns,
            "Examples per class: RGB composite (yellow ER added to red and green)")
        figures["montage_green"] = plots.plot_montage(
            rows_green, fig_dir / "montage_green.png", columns,
            "Examples per class: green channel (protein of interest) alone")
    return _ImagePart(problems, duplicates, dup_samples, normalization)


def _montage_rows(
    picks: dict[int, list[int]],
    thumbs: dict[int, np.ndarray],
    labels: LabelStats | None,
) -> tuple[list[tuple[str, list[np.ndarray]]], list[tuple[str, list[np.ndarray]]]]:
    rows_rgb: list[tuple[str, list[np.ndarray]]] = []
    rows_green: list[tuple[str, list[np.ndarray]]] = []
    for c, index in picks.items():
        shown = [thumbs[i] for i in index if i in thumbs]
        if not shown:
            continue
        if c < 0:
            label = "random samples"
        else:
            n = int(labels.counts[c]) if labels is not None else 0
            label = f"{c} {CLASS_NAMES[c]} (n={n:,})"
        rows_rgb.append((label, [composite_rgb(t) for t in shown]))
        rows_green.append((label, [green_view(t) for t in shown]))
    return rows_rgb, rows_green


def _render(
    ds: Dataset,
    stats: dict[str, Any],
    figures: dict[str, Path],
    labels: LabelStats | None,
    normalization: Path | None,
) -> str:
    esc = html.escape
    summary: dict[str, Any] = {
        "CSV": ds.csv_path,
        "image folder": ds.image_dir if stats["images"] else f"{ds.image_dir} (no images found)",
        "samples": len(ds),
    }
    if labels is not None:
        summary["labels"] = int(labels.counts.sum())
        summary["mean labels per image"] = f"{labels.mean_labels:.2f}"
        summary["classes present"] = f"{len(labels.counts) - len(labels.absent())} of {len(labels.counts)}"
    if stats["images"]:
        pixels = stats["images"]["pixels"]
        summary["images read for pixel statistics"] = pixels["n_images"] if pixels else 0
        summary["invalid samples"] = stats["invalid"]["count"]
    summary["seconds"] = f"{stats['seconds']:.1f}"
    body = ["<h2>Summary</h2>",
            html_table(["item", "value"], [[str(k), format_value(v)] for k, v in summary.items()],
                       [False, False])]

    body.append("<h2>Warnings</h2>")
    if stats["warnings"]:
        body.append('<div class="warn"><ul>'
                    + "".join(f"<li>{esc(w)}</li>" for w in stats["warnings"]) + "</ul></div>")
    else:
        body.append("<p>None.</p>")

    if labels is not None:
        body.append("<h2>Labels</h2>")
        for key in ("class_frequency", "labels_per_image", "cooccurrence"):
            body.append(figure_html(figures[key], FIGURES[key]))
        rows = [[str(c), CLASS_NAMES[c], f"{int(labels.counts[c]):,}",
                 f"{100.0 * labels.counts[c] / max(labels.n_images, 1):.3g}%"]
                for c in range(len(labels.counts))]
        body.append(html_table(["id", "class", "images", "share"], rows,
                               [True, False, True, True]))

    if stats["images"]:
        body += _images_html(stats["images"], figures, labels, normalization)
    body += _problems_html(stats)
    title = f"Dataset analysis: {ds.csv_path.name}"
    return html_document(title, body, css=_EXTRA_CSS)


def _images_html(
    images: dict[str, Any], figures: dict[str, Path], labels: LabelStats | None, normalization: Path | None
) -> list[str]:
    """The report's Images section: sizes, formats, intensity, normalisation, montages."""
    esc = html.escape
    body: list[str] = []
    body.append("<h2>Images</h2>")
    sizes = [[f"{s['width']}x{s['height']}", f"{s['count']:,}"] for s in images["sizes"]]
    body.append("<h3>Sizes (valid samples) and file formats (channel files)</h3>")
    body.append(html_table(["size", "samples"], sizes or [["-", "0"]], [False, True]))
    body.append(html_table(["format", "files"],
                           [[k, f"{v:,}"] for k, v in images["formats"].items()],
                           [False, True]))
    if "channel_histograms" in figures:
        body.append("<h3>Intensity</h3>")
        body.append(figure_html(figures["channel_histograms"], FIGURES["channel_histograms"]))
        ch = images["pixels"]["channels"]
        body.append(html_table(
            ["channel", "stains", "mean", "std"],
            [[c, CHANNEL_STAINS[c], f"{ch[c]['mean']:.4f}", f"{ch[c]['std']:.4f}"]
             for c in CHANNELS],
            [False, False, True, True]))
    if normalization is not None:
        mean = np.array([images["pixels"]["channels"][c]["mean"] for c in CHANNELS])
        std = np.array([images["pixels"]["channels"][c]["std"] for c in CHANNELS])
        body.append(
            f"<p>Saved as <code>{esc(normalization.name)}</code> beside this report; train "
            f"with these values by <code>hpa train DATA --config {esc(normalization.name)}"
            f"</code> or <code>{esc(_set_overrides(mean, std))}</code>:</p>")
        body.append(f"<pre>{esc(normalization.read_text(encoding='utf-8'))}</pre>")
    for key in ("montage_rgb", "montage_green"):
        if key in figures:
            body.append(figure_html(figures[key], FIGURES[key]))
    if labels is not None and "montage" in images:
        shown = set(images["montage"]["classes_shown"])
        missing = [f"{c} {CLASS_NAMES[c]}" for c in range(len(CLASS_NAMES)) if c not in shown]
        if missing:
            body.append(f"<p>No valid image to show for: {esc(', '.join(missing))}.</p>")
    return body


def _problems_html(stats: dict[str, Any]) -> list[str]:
    """The report's sections on invalid samples and byte-identical files."""
    body: list[str] = []
    invalid = stats["invalid"]
    if invalid["count"]:
        body.append(f"<h2>Invalid samples ({invalid['count']:,})</h2>")
        body.append(html_table(["Id", "problem"],
                               [[p["Id"], p["problem"]] for p in invalid["problems"][:_HTML_ROWS]],
                               [False, False]))
        if len(invalid["problems"]) > _HTML_ROWS:
            body.append(f"<p>First {_HTML_ROWS} shown; stats.json lists up to {LIST_LIMIT}.</p>")
    dups = stats["duplicates"]
    if dups["n_file_groups"]:
        body.append(f"<h2>Byte-identical image files ({dups['n_file_groups']:,} groups)</h2>")
        rows = [[g["sha256"][:12], f"{g['bytes']:,}",
                 ", ".join(f"{i} {c}" for i, c in g["members"][:8])
                 + (" ..." if len(g["members"]) > 8 else "")]
                for g in dups["file_groups"][:_HTML_ROWS]]
        body.append(html_table(["sha256", "bytes", "files (Id channel)"], rows,
                               [False, True, False]))
    return body
