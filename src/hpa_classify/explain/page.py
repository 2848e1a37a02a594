"""``hpa explain``: Grad-CAM maps of a run's predicted (or asked) classes, on one HTML page."""

from __future__ import annotations

import base64
import html
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from matplotlib import colormaps

from hpa_classify.classes import CLASS_NAMES
from hpa_classify.data.layout import Dataset
from hpa_classify.errors import DataError
from hpa_classify.evaluate.thresholds import load_thresholds
from hpa_classify.explain.cam import data_inputs, grad_cam, load_batch, stage_for
from hpa_classify.fileio import atomic_path
from hpa_classify.inference.predict import default_device
from hpa_classify.inference.runs import load_model, open_run
from hpa_classify.outputs import check_output_folder
from hpa_classify.progress import Progress, open_task
from hpa_classify.render.composite import composite_rgb, green_view
from hpa_classify.render.html import html_document

log = logging.getLogger(__name__)

_CSS = """
.sample { margin: 1.5em 0; border-top: 1px solid #ddd; padding-top: .5em; }
.maps { display: flex; flex-wrap: wrap; gap: 8px; }
.maps figure { margin: 0; width: 192px; }
.maps img { width: 192px; height: 192px; image-rendering: pixelated; }
"""


@dataclass
class Explained:
    """What :func:`explain_run` wrote: the page, and the maps per (Id, class)."""

    page: Path
    ids: list[str]
    classes: list[list[int]]
    probs: np.ndarray


def overlay(rgb: np.ndarray, cam: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """``cam`` (values in [0, 1]) drawn in the jet colour map over an RGB image.

    >>> overlay(np.zeros((2, 2, 3), np.uint8), np.ones((2, 2))).shape
    (2, 2, 3)
    """
    heat = colormaps["jet"](np.clip(cam, 0, 1))[..., :3] * 255
    return np.clip((1 - alpha) * rgb + alpha * heat + 0.5, 0, 255).astype(np.uint8)


def png_data_uri(rgb: np.ndarray) -> str:
    """An RGB image as a ``data:image/png;base64`` URI."""
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise DataError("could not encode a PNG")
    return "data:image/png;base64," + base64.b64encode(buf.tobytes()).decode("ascii")


def _figure(rgb: np.ndarray, caption: str) -> str:
    text = html.escape(caption)
    return f'<figure><img src="{png_data_uri(rgb)}" alt="{text}"><figcaption>{text}</figcaption></figure>'


def _sample_html(sample_id: str, raw: np.ndarray, maps: dict[int, np.ndarray], probs: np.ndarray) -> str:
    comp, green = composite_rgb(raw), green_view(raw)
    figs = [_figure(comp, "composite"), _figure(green, "green (protein)")]
    for c, cam in maps.items():
        name = f"{c} {CLASS_NAMES[c]} (p={probs[c]:.2f})"
        figs += [_figure(overlay(comp, cam), f"{name} on composite"), _figure(overlay(green, cam), f"{name} on green")]
    return f'<div class="sample"><h2>{html.escape(sample_id)}</h2><div class="maps">{"".join(figs)}</div></div>'


def _select(data: Dataset, ids: Sequence[str] | None) -> list[int]:
    if not ids:
        return list(range(len(data)))
    where = {s: i for i, s in enumerate(data.ids)}
    missing = [s for s in ids if s not in where]
    if missing:
        raise DataError(f"Ids not in the data: {', '.join(missing[:5])}")
    return [where[s] for s in ids]


def explain_run(
    run_dir: str | Path,
    data: Dataset,
    out: str | Path,
    ids: Sequence[str] | None = None,
    classes: Sequence[int] | None = None,
    batch_size: int = 8,
    device: torch.device | None = None,
    progress: Progress | None = None,
    layer: str | int = "auto",
) -> Explained:
    """Write ``OUT/explain.html``: per image, a Grad-CAM map for each class predicted by the
    run's thresholds (the most probable one if none passes), or for ``classes`` if given.

    ``layer`` picks the feature map (:func:`~hpa_classify.explain.cam.stage_for`):
    by default the deepest one at least 8 cells a side at the run's image size.
    """
    run = open_run(run_dir)
    out = Path(out)
    check_output_folder(out, [run.path, *data_inputs(data)])
    device = device or default_device()
    model = load_model(run, device)
    thresholds = load_thresholds(run.thresholds_path)
    index = _select(data, ids)
    parts, all_classes, all_probs = [], [], []
    task = open_task(progress, f"explaining {len(index)} images", len(index))
    for start in range(0, len(index), batch_size):
        chunk = index[start : start + batch_size]
        raw, x = load_batch(data, chunk, run.cfg, device)
        with torch.inference_mode():
            probs = torch.sigmoid(model(x).float()).cpu().numpy()
        wanted = [list(classes) if classes else (np.flatnonzero(p >= thresholds).tolist() or [int(p.argmax())])
                  for p in probs]
        _, maps = grad_cam(model, x, wanted, layer)
        for i, k in enumerate(chunk):
            parts.append(_sample_html(data.ids[k], raw[i], maps[i], probs[i]))
        all_classes += wanted
        all_probs.append(probs)
        task.advance(len(chunk))
    task.close()
    out.mkdir(parents=True, exist_ok=True)
    stage = stage_for(model, run.cfg.data.size, layer)
    where = "the last feature map" if stage is None else f"the stride-{model.feature_info[stage]['reduction']} feature map"
    intro = (f"<p>Grad-CAM on {where} of {html.escape(run.cfg.model.name)} "
             f"({html.escape(str(run.path))}), {len(index)} images; warm colours: where the class's evidence lies.</p>")
    page = out / "explain.html"
    with atomic_path(page) as tmp:
        tmp.write_text(html_document("Class activation maps", [intro, *parts], css=_CSS), encoding="utf-8")
    log.info("wrote %s", page)
    probs_all = np.concatenate(all_probs) if all_probs else np.zeros((0, len(CLASS_NAMES)), np.float32)
    return Explained(page, [data.ids[k] for k in index], all_classes, probs_all)
