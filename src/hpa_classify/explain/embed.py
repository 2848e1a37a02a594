"""``hpa embed`` and ``hpa neighbours``: pooled features of every image, a UMAP, nearest images."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import anndata
import cv2
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
import umap
from matplotlib import colormaps
from sklearn.metrics.pairwise import cosine_similarity

from hpa_classify.classes import CLASS_NAMES, format_target
from hpa_classify.data.layout import Dataset
from hpa_classify.errors import DataError
from hpa_classify.explain.cam import data_inputs, load_batch, pooled_features
from hpa_classify.explain.page import png_data_uri
from hpa_classify.fileio import atomic_path
from hpa_classify.inference.predict import default_device
from hpa_classify.inference.runs import load_model, open_run
from hpa_classify.outputs import check_output_folder
from hpa_classify.progress import Progress, open_task
from hpa_classify.render.composite import composite_rgb
from hpa_classify.render.figures import new_figure, save_figure

log = logging.getLogger(__name__)

THUMB = 96  # px of the hover thumbnails


@dataclass
class Embedding:
    """Features ``(N, D)`` of a dataset's images, their Ids and labels (None when unknown)."""

    ids: list[str]
    features: np.ndarray
    labels: list[list[int]] | None
    thumbs: list[np.ndarray]


def compute_embedding(
    model: torch.nn.Module, data: Dataset, cfg, batch_size: int = 16, device: torch.device | None = None,
    progress: Progress | None = None,
) -> Embedding:
    """Pooled features of every image of ``data`` under ``model`` (and RGB thumbnails)."""
    device = device or default_device()
    model = model.to(device).eval()
    feats, thumbs = [], []
    task = open_task(progress, f"embedding {len(data)} images", len(data))
    for start in range(0, len(data), batch_size):
        chunk = list(range(start, min(start + batch_size, len(data))))
        raw, x = load_batch(data, chunk, cfg, device)
        feats.append(pooled_features(model, x).cpu().numpy())
        thumbs += [_thumb(r) for r in raw]
        task.advance(len(chunk))
    task.close()
    features = np.concatenate(feats) if feats else np.zeros((0, 0), np.float32)
    return Embedding(list(data.ids), features.astype(np.float32), data.labels, thumbs)


def _thumb(raw: np.ndarray) -> np.ndarray:
    return cv2.resize(composite_rgb(raw), (THUMB, THUMB), interpolation=cv2.INTER_AREA)


def _targets(emb: Embedding) -> list[str]:
    return [format_target(s) for s in emb.labels] if emb.labels is not None else [""] * len(emb.ids)


def _first_class(emb: Embedding) -> list[str]:
    if emb.labels is None:
        return ["unknown"] * len(emb.ids)
    return [CLASS_NAMES[min(s)] if s else "none" for s in emb.labels]


def write_tables(emb: Embedding, out: Path, meta: dict[str, str]) -> tuple[Path, Path]:
    """``embedding.npz`` (ids, features, targets) and ``embedding.h5ad`` (labels in ``obs``)."""
    targets = _targets(emb)
    npz = out / "embedding.npz"
    with atomic_path(npz) as tmp, tmp.open("wb") as f:
        np.savez(f, ids=np.array(emb.ids), features=emb.features, targets=np.array(targets))
    obs = pd.DataFrame({"Target": targets, "first_class": _first_class(emb)}, index=pd.Index(emb.ids, name="Id"))
    if emb.labels is not None:
        for c, name in enumerate(CLASS_NAMES):
            obs[name] = [c in s for s in emb.labels]
    adata = anndata.AnnData(X=emb.features, obs=obs, uns={"hpa": dict(meta)})
    h5ad = out / "embedding.h5ad"
    with atomic_path(h5ad) as tmp:
        adata.write_h5ad(tmp)
    return npz, h5ad


def umap_2d(features: np.ndarray, seed: int = 0) -> np.ndarray:
    """A 2-D UMAP of ``features`` (cosine metric); a tiny set gets fewer neighbours."""
    n = len(features)
    if n < 4:
        return np.zeros((n, 2), np.float32)
    reducer = umap.UMAP(n_neighbors=min(15, n - 1), metric="cosine", random_state=seed, init="random", n_jobs=1)
    return reducer.fit_transform(features).astype(np.float32)


def write_umap_png(emb: Embedding, xy: np.ndarray, out_png: Path) -> Path:
    """The UMAP coloured by each image's first class."""
    fig = new_figure(7, 6)
    ax = fig.add_subplot(1, 1, 1)
    groups = _first_class(emb)
    names = sorted(set(groups))
    cmap = colormaps["tab20"]
    for k, name in enumerate(names):
        pts = xy[[g == name for g in groups]]
        ax.scatter(pts[:, 0], pts[:, 1], s=14, color=cmap(k % 20), label=name)
    ax.set_xlabel("UMAP 1")
    ax.set_ylabel("UMAP 2")
    ax.set_title(f"{len(emb.ids)} images, coloured by first class")
    if len(names) <= 30:
        ax.legend(fontsize=6, markerscale=0.8, loc="best", ncol=2)
    return save_figure(fig, out_png)


_HOVER_JS = """
var plot = document.getElementById('{plot_id}');
plot.on('plotly_hover', function (ev) {
  var p = ev.points[0];
  document.getElementById('thumb').src = p.customdata[0];
  document.getElementById('thumb-text').textContent = p.customdata[1] + '  ' + p.customdata[2];
});
"""


def write_umap_html(emb: Embedding, xy: np.ndarray, out_html: Path) -> Path:
    """An interactive UMAP (plotly.js embedded, no network): hovering shows the thumbnail, Id, labels."""
    groups, targets = _first_class(emb), _targets(emb)
    fig = go.Figure()
    for name in sorted(set(groups)):
        sel = [i for i, g in enumerate(groups) if g == name]
        names = [" ".join(CLASS_NAMES[c] for c in emb.labels[i]) if emb.labels else "" for i in sel]
        fig.add_trace(go.Scattergl(
            x=xy[sel, 0], y=xy[sel, 1], mode="markers", name=name, marker={"size": 7},
            customdata=[[png_data_uri(emb.thumbs[i]), emb.ids[i], f"{targets[i]} ({n})"] for i, n in zip(sel, names)],
            hovertemplate="%{customdata[1]}<br>%{customdata[2]}<extra></extra>",
        ))
    fig.update_layout(title=f"UMAP of {len(emb.ids)} images", xaxis_title="UMAP 1", yaxis_title="UMAP 2",
                      width=900, height=700, template="plotly_white")
    div = fig.to_html(full_html=False, include_plotlyjs=True, div_id="umap", post_script=_HOVER_JS.replace("{plot_id}", "umap"))
    page = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Embedding</title></head><body>'
        '<div style="display:flex;gap:1em;align-items:flex-start">' + div +
        '<div><img id="thumb" width="192" height="192" alt="hovered image" style="border:1px solid #ccc">'
        '<p id="thumb-text" style="font-family:sans-serif">hover over a point</p></div></div></body></html>'
    )
    with atomic_path(out_html) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return out_html


def _model_for(run_dir: str | Path, device: torch.device):
    run = open_run(run_dir)
    return run, load_model(run, device)


def embed_dataset(
    run_dir: str | Path, data: Dataset, out: str | Path, batch_size: int = 16, with_umap: bool = True,
    device: torch.device | None = None, progress: Progress | None = None,
) -> dict[str, Path]:
    """Write OUT/embedding.npz, embedding.h5ad, and (``with_umap``) umap.png and umap.html."""
    device = device or default_device()
    run, model = _model_for(run_dir, device)
    out = Path(out)
    check_output_folder(out, [run.path, *data_inputs(data)])
    emb = compute_embedding(model, data, run.cfg, batch_size, device, progress)
    out.mkdir(parents=True, exist_ok=True)
    npz, h5ad = write_tables(emb, out, {"run": str(run.path), "model": run.cfg.model.name, "data": str(getattr(data, "csv_path", ""))})
    written = {"npz": npz, "h5ad": h5ad}
    if with_umap:
        xy = umap_2d(emb.features, seed=run.cfg.seed)
        written["png"] = write_umap_png(emb, xy, out / "umap.png")
        written["html"] = write_umap_html(emb, xy, out / "umap.html")
    return written


def nearest(features: np.ndarray, query: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and cosine similarities of the ``k`` images most like ``query`` (itself left out).

    >>> nearest(np.array([[1.0, 0], [0.9, 0.1], [0, 1]]), 0, 1)[0].tolist()
    [1]
    """
    sim = cosine_similarity(features[query : query + 1], features)[0]
    sim[query] = -np.inf
    order = np.argsort(-sim, kind="stable")[:k]
    return order, sim[order]


def neighbours_sheet(
    run_dir: str | Path, data: Dataset, sample_id: str, out_png: str | Path, k: int = 8,
    batch_size: int = 16, device: torch.device | None = None, progress: Progress | None = None,
) -> list[tuple[str, float]]:
    """Write a contact sheet PNG: the query image, then its ``k`` nearest by cosine similarity."""
    if sample_id not in data.ids:
        raise DataError(f"{sample_id} is not in the data")
    device = device or default_device()
    run, model = _model_for(run_dir, device)
    out_png = Path(out_png)
    check_output_folder(out_png.parent, [run.path, *data_inputs(data)])
    emb = compute_embedding(model, data, run.cfg, batch_size, device, progress)
    q = emb.ids.index(sample_id)
    order, sims = nearest(emb.features, q, k)
    tiles = [emb.thumbs[q], *(emb.thumbs[i] for i in order)]
    columns = min(len(tiles), 5)
    n_rows = -(-len(tiles) // columns)
    fig = new_figure(2 * columns, 2.2 * n_rows)
    for n, tile in enumerate(tiles):
        ax = fig.add_subplot(n_rows, columns, n + 1)
        ax.imshow(tile)
        ax.set_axis_off()
        title = f"query {sample_id}" if n == 0 else f"{emb.ids[order[n - 1]]}\ncos {sims[n - 1]:.3f}"
        if emb.labels is not None:
            idx = q if n == 0 else order[n - 1]
            title += "\n" + format_target(emb.labels[idx])
        ax.set_title(title, fontsize=7)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, out_png)
    return [(emb.ids[i], float(s)) for i, s in zip(order, sims)]
