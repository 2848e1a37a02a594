"""Commands that explain a run: explain (Grad-CAM), embed (features, UMAP), neighbours."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hpa_classify.cli.app import (
    DataArg,
    ImagesOpt,
    MasksOpt,
    SkipOpt,
    SplitOpt,
    app,
    console,
    load_data,
    progress_bars,
)
from hpa_classify.cli.cells_commands import cut_cells
from hpa_classify.errors import HPAError

RunArg = Annotated[Path, typer.Argument(help="Run directory made by 'hpa train'.")]
DeviceOpt = Annotated[str | None, typer.Option("--device", help="cpu, cuda or cuda:N (default: a GPU if there is one).")]
BatchOpt = Annotated[int, typer.Option("--batch-size", min=1, help="Images per batch.")]


def _device(text: str | None):
    import torch  # lazy for start-up speed: 'hpa --help' loads no torch

    return torch.device(text) if text else None


def _split(text: str | None) -> list[str]:
    return [p for part in (text or "").split(",") for p in [part.strip()] if p]


@app.command()
def explain(
    run: RunArg,
    data: DataArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for explain.html.")],
    ids: Annotated[str | None, typer.Option("--ids", help="Comma-separated Ids (default: every image).")] = None,
    classes: Annotated[str | None, typer.Option("--classes", help="Comma-separated class numbers (default: the predicted ones).")] = None,
    images: ImagesOpt = None,
    split: SplitOpt = "train",
    batch_size: BatchOpt = 8,
    device: DeviceOpt = None,
    skip_invalid: SkipOpt = False,
    layer: Annotated[str, typer.Option("--layer", help="Feature map: auto (deepest at least 8 cells a side), last, or a stride such as 16.")] = "auto",
) -> None:
    """Class activation maps (Grad-CAM) of the predicted or given classes, over the composite and the green channel."""
    # lazy for start-up speed: data are checked before torch loads
    from hpa_classify.classes import NUM_CLASSES
    from hpa_classify.explain.page import explain_run
    from hpa_classify.inference.runs import open_run

    if layer not in ("auto", "last") and not layer.isdigit():
        raise typer.BadParameter("auto, last or a stride such as 16", param_hint="--layer")
    wanted = [int(c) for c in _split(classes)]
    if any(not 0 <= c < NUM_CLASSES for c in wanted):
        raise typer.BadParameter(f"classes are 0-{NUM_CLASSES - 1}", param_hint="--classes")
    ds = load_data(data, images, split, skip_invalid, data_cfg=open_run(run).cfg.data)
    result = explain_run(run, ds, out, ids=_split(ids) or None, classes=wanted or None,
                         batch_size=batch_size, device=_device(device), progress=progress_bars(),
                         layer=int(layer) if layer.isdigit() else layer)
    n_maps = sum(len(c) for c in result.classes)
    console.print(f"{n_maps} maps of {len(result.ids)} images: {result.page}")


@app.command()
def embed(
    run: RunArg,
    data: DataArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for embedding.npz, embedding.h5ad, umap.png, umap.html.")],
    images: ImagesOpt = None,
    split: SplitOpt = "train",
    no_umap: Annotated[bool, typer.Option("--no-umap", help="Write the features only.")] = False,
    batch_size: BatchOpt = 16,
    device: DeviceOpt = None,
    skip_invalid: SkipOpt = False,
    cells: Annotated[bool, typer.Option("--cells", help="Embed every cell instead of every field: cells cut out (as 'hpa crops' does, at the run's data.size) into OUT-crops/, then embedded; Ids {field Id}-c{cell:05d}.")] = False,
    masks: MasksOpt = None,
) -> None:
    """Pooled features of every image (NumPy and AnnData), a UMAP as PNG and as an interactive page."""
    # lazy for start-up speed: data are checked before torch loads
    from hpa_classify.explain.embed import embed_dataset
    from hpa_classify.inference.runs import open_run

    if masks is not None and not cells:
        raise HPAError("--masks serves --cells only")
    cfg = open_run(run).cfg
    ds = load_data(data, images, split, skip_invalid, data_cfg=cfg.data)
    if cells:
        ds = cut_cells(ds, out.with_name(out.name + "-crops"), cfg.data.size, masks, None, None)
    written = embed_dataset(run, ds, out, batch_size=batch_size, with_umap=not no_umap,
                            device=_device(device), progress=progress_bars())
    for kind, path in written.items():
        console.print(f"{kind}: {path}")


@app.command()
def neighbours(
    run: RunArg,
    data: DataArg,
    sample_id: Annotated[str, typer.Option("--id", help="Id of the query image.")],
    k: Annotated[int, typer.Option("-k", min=1, help="How many neighbours.")] = 8,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Contact sheet PNG (default: neighbours_ID.png).")] = None,
    images: ImagesOpt = None,
    split: SplitOpt = "train",
    batch_size: BatchOpt = 16,
    device: DeviceOpt = None,
    skip_invalid: SkipOpt = False,
) -> None:
    """The k images most like one image, by cosine similarity of the run's features, as a contact sheet."""
    # lazy for start-up speed: data are checked before torch loads
    from hpa_classify.explain.embed import neighbours_sheet
    from hpa_classify.inference.runs import open_run

    ds = load_data(data, images, split, skip_invalid, data_cfg=open_run(run).cfg.data)
    png = out or Path(f"neighbours_{sample_id}.png")
    found = neighbours_sheet(run, ds, sample_id, png, k=k, batch_size=batch_size,
                             device=_device(device), progress=progress_bars())
    for other, sim in found:
        console.print(f"{other}\t{sim:.4f}")
    console.print(f"contact sheet: {png}")
