"""Commands on single cells: segment, crops."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.table import Table

from hpa_classify.cli.app import (
    DataArg,
    ImagesOpt,
    MasksOpt,
    PixelSizeOpt,
    SkipOpt,
    SplitOpt,
    app,
    console,
    progress_bars,
)
from hpa_classify.errors import HPAError


@app.command()
def segment(
    data: DataArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for {Id}_nuclei.png, {Id}_cells.png (uint16 labels) and cells.csv.")],
    images: ImagesOpt = None,
    split: SplitOpt = "train",
    pixel_size: PixelSizeOpt = None,
    masks: MasksOpt = None,
    truth: Annotated[Optional[Path], typer.Option("--eval", help="Folder of true {Id}_nuclei.png / {Id}_cells.png: print the average precision of the result.")] = None,
    overlays: Annotated[bool, typer.Option("--overlays", help="Also write OUT/overlays/{Id}.png: outlines on the composite.")] = False,
    workers: Annotated[Optional[int], typer.Option(help="Processes (default: all cores).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace results in OUT made with other settings or masks.")] = False,
    skip_invalid: SkipOpt = False,
) -> None:
    """Segment nuclei and cells of every field (no weights needed), or take label images made elsewhere."""
    # lazy for start-up speed: 'hpa --help' stays fast
    from hpa_classify.cells.batch import segment_dataset
    from hpa_classify.cells.evaluation import evaluate_by_density
    from hpa_classify.cells.segment import SegmentSettings
    from hpa_classify.data.layout import checked, load_dataset

    settings = SegmentSettings(pixel_size=pixel_size)
    ds = checked(load_dataset(data, images, prefer=split), skip_invalid=skip_invalid)
    s = segment_dataset(ds, out, settings=settings, masks=masks, overlays=overlays, workers=workers,
                        force=force, progress=progress_bars(), reads=[truth] if truth else [])
    kept = f" ({s.n_resumed} kept from an earlier run)" if s.n_resumed else ""
    source = "taken from " + str(masks) if masks is not None else "segmented"
    console.print(f"{s.n_fields} fields {source}{kept}: {s.n_cells} cells in {s.seconds:.1f} s; "
                  f"wrote labels and {s.csv}")
    if s.empty:
        console.print(f"[yellow]{len(s.empty)} fields without cells[/yellow]")
    if truth is None:
        return
    scores = evaluate_by_density(out, truth, ds.ids, progress=progress_bars())
    table = Table(title=f"Average precision against {truth}")
    for column in ("fields", "objects", "AP@0.5", "AP@0.5:0.95", "true", "found", "TP@0.5", "FP@0.5", "FN@0.5"):
        table.add_column(column, justify="left" if column in ("fields", "objects") else "right")
    for group, kinds in scores.items():
        for kind, counts in kinds.items():
            m = counts.summary()
            table.add_row(group, kind, f"{m['ap50']:.3f}", f"{m['map']:.3f}", str(m["n_true"]), str(m["n_pred"]),
                          str(m["tp50"]), str(m["fp50"]), str(m["fn50"]))
    console.print(table)


@app.command()
def crops(
    data: DataArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the crop set: train.csv, train/{Id}_{channel}.png, crops.csv; the label images in OUT/masks.")],
    images: ImagesOpt = None,
    split: SplitOpt = "train",
    size: Annotated[int, typer.Option(help="Side of every crop, px.")] = 128,
    masks: MasksOpt = None,
    pixel_size: PixelSizeOpt = None,
    workers: Annotated[Optional[int], typer.Option(help="Processes for segmenting (default: all cores).")] = None,
    skip_invalid: SkipOpt = False,
) -> None:
    """Cut every cell into its own image (others' pixels blanked): a dataset that hpa embed, explain and predict read.

    Crop Ids are {field Id}-c{cell:05d}; crops.csv names each crop's field and cell.
    """
    from hpa_classify.data.layout import checked, load_dataset  # lazy for start-up speed

    if not 8 <= size <= 1024:
        raise HPAError(f"--size must be 8-1024 px, got {size}")
    ds = checked(load_dataset(data, images, prefer=split), skip_invalid=skip_invalid)
    cropset = cut_cells(ds, out, size, masks, pixel_size, workers)
    console.print(f"{len(cropset)} cells of {len(ds)} fields cut into {out} ({size} px); "
                  f"next: hpa embed RUN {out} -o EMBEDDING")


def cut_cells(ds: Any, out: Path, size: int, masks: Optional[Path], pixel_size: Optional[float],
              workers: Optional[int]) -> Any:
    """The crop set of every cell of ``ds`` in ``out`` (label images in ``out/masks``)."""
    # lazy for start-up speed: 'hpa --help' stays fast
    from hpa_classify.cells.batch import segment_dataset
    from hpa_classify.cells.cropset import write_cropset
    from hpa_classify.cells.segment import SegmentSettings
    from hpa_classify.outputs import check_output_folder

    check_output_folder(out, [ds.csv_path, ds.image_dir] + ([masks] if masks else []))
    segment_dataset(ds, out / "masks", settings=SegmentSettings(pixel_size=pixel_size), masks=masks,
                    workers=workers, progress=progress_bars())
    return write_cropset(ds, out / "masks", out, size, for_training=False, progress=progress_bars())
