"""Commands on runs: train, evaluate, report, predict, export, merge."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from hpa_classify.cli.app import (
    ChannelsOpt,
    DataArg,
    DevicesOpt,
    ImagesOpt,
    IntensityOpt,
    MasksOpt,
    NodesOpt,
    PixelSizeOpt,
    SkipOpt,
    app,
    console,
    devices_arg,
    kv_table,
    load_data,
    progress_bars,
    quiet_lightning,
)
from hpa_classify.errors import HPAError


@app.command()
def train(
    data: DataArg,
    images: ImagesOpt = None,
    config: Annotated[Optional[str], typer.Option("--config", "-c", help="YAML file or preset name (e.g. demo-cpu).")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override a config key: --set train.lr=0.001 (repeatable).")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Run directory (default: runs/<name>).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing run directory.")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run from its checkpoints/last.ckpt (same DATA, --config and --set).")] = False,
    skip_invalid: SkipOpt = False,
    devices: DevicesOpt = None,
    num_nodes: NodesOpt = None,
    folds: Annotated[Optional[int], typer.Option("--folds", help="Train K models on multilabel-stratified folds into RUN/fold{i}; thresholds are tuned on their out-of-fold probabilities.")] = None,
    fold: Annotated[Optional[int], typer.Option("--fold", help="With --folds K: train only fold i (0-based), e.g. one per machine; then 'hpa merge RUN'.")] = None,
    external: Annotated[Optional[Path], typer.Option("--external", help="Extra training images: an Id,Target CSV (HPAv18 style, PNG or JPG channels); rows whose Id is in DATA are left out.")] = None,
    external_images: Annotated[Optional[Path], typer.Option("--external-images", help="Image folder of --external (default: beside its CSV).")] = None,
    channels: ChannelsOpt = None,
    task: Annotated[str, typer.Option("--task", help="fields: classify whole fields (default). cells: a cell classifier on the crops of every cell, labelled with its field's labels (fields segmented first, or --masks).")] = "fields",
    masks: MasksOpt = None,
) -> None:
    """Train a classifier by transfer learning; writes a run directory (K of them with --folds).

    With --task cells the crops (data.size px) and label images go beside the
    run, in RUN-crops/.
    """
    from hpa_classify.config import load_config
    from hpa_classify.errors import Interrupted
    from hpa_classify.inference.distributed import is_global_zero
    from hpa_classify.train.fit import fit, has_resume_point

    if resume and force:
        raise HPAError("--resume continues a run and --force replaces it: pass one of them")
    if task not in ("fields", "cells"):
        raise HPAError(f"--task must be fields or cells, got '{task}'")
    if task == "fields" and masks is not None:
        raise HPAError("--masks serves --task cells only")
    if task == "cells" and (folds is not None or external is not None):
        raise HPAError("--task cells trains one run on crops: --folds and --external are for fields")
    if fold is not None and folds is None:
        raise HPAError("--fold i trains one fold of a K-fold run: pass --folds K too")
    scale = ([f"train.devices={devices}"] if devices is not None else []) + (
        [f"train.num_nodes={num_nodes}"] if num_nodes is not None else []
    )
    cfg = load_config(config, (set_ or []) + scale)
    if channels:  # recorded in the run's config.yaml
        from hpa_classify.data.io import parse_channel_map  # lazy for start-up speed

        cfg.data.channel_map = parse_channel_map(channels)
    run_dir = out or Path("runs") / cfg.name
    ds = load_data(data, images, "train", skip_invalid or cfg.data.skip_invalid, require_labels=True,
                   data_cfg=cfg.data)
    ext = None
    if external is not None:
        ext = load_data(external, external_images, "train", skip_invalid or cfg.data.skip_invalid,
                        require_labels=True, data_cfg=cfg.data)
    try:
        if task == "cells":
            from hpa_classify.workflows.cells import train_cells  # lazy for start-up speed

            result = train_cells(cfg, ds, run_dir, masks=masks, force=force, resume=resume,
                                 progress=progress_bars())
        else:
            result = fit(cfg, ds, run_dir, folds=folds, fold=fold, external=ext, resume=resume, force=force,
                         progress=progress_bars())
    except (Interrupted, KeyboardInterrupt) as exc:
        message = str(exc) if isinstance(exc, Interrupted) else "training stopped"
        if has_resume_point(run_dir):
            message += f"\nto continue: {_resume_command()}"
        raise Interrupted(message) from None
    if not is_global_zero():  # the other processes of a distributed run print nothing
        return
    if result.external is not None:
        e = result.external
        console.print(
            f"external: {e.n_used} images added from {e.csv}; "
            f"{e.n_duplicates} rows whose Id is in DATA were left out (kept DATA's rows)"
        )
    if result.summary is not None:
        console.print(kv_table(f"run {run_dir}", result.summary))
    elif result.kfold is not None:
        console.print(
            f"fold {fold} of {folds} done in {run_dir / f'fold{fold}'}; finished folds: "
            f"{result.kfold.finished}. When all {folds} are finished: hpa merge {run_dir}"
        )


def _resume_command() -> str:
    """This command line as typed, with --resume instead of --force."""
    args = [a for a in sys.argv[1:] if a != "--force"]
    if "--resume" not in args:
        args.append("--resume")
    return "hpa " + shlex.join(args)


def _print_eval(run_dir: Path) -> None:
    summary_path = run_dir / "report" / "summary.json"
    if summary_path.is_file():
        summary = json.loads(summary_path.read_text())
        console.print(kv_table(f"run {run_dir}", summary))


@app.command()
def evaluate(
    run: Annotated[Path, typer.Argument(help="Run directory made by 'hpa train' (with --cells: the folder or submission.csv of 'hpa predict --cells').")],
    data: Annotated[Optional[Path], typer.Argument(help="Labelled held-out data (optional; with --cells: the per-cell truth, a folder with cell_labels.csv and {Id}_cells.png, or a dataset whose masks/ holds them).")] = None,
    images: ImagesOpt = None,
    tta: Annotated[Optional[int], typer.Option(help="TTA views (1-8) for DATA.")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Report folder (with --cells: a CSV of the average precision per class).")] = None,
    skip_invalid: SkipOpt = False,
    channels: ChannelsOpt = None,
    cells: Annotated[bool, typer.Option("--cells", help="Score per-cell predictions with the HPA 2021 metric: per class, average precision over cells matched at IoU >= 0.6; the mean over classes.")] = False,
) -> None:
    """Macro F1, per-class table and thresholds; on the validation split or on DATA."""
    from hpa_classify.evaluate.evaluation import evaluate_held_out, tune_thresholds
    from hpa_classify.inference.runs import open_run

    if cells:
        if data is None:
            raise HPAError("--cells needs the per-cell truth as DATA (a folder with cell_labels.csv)")
        _evaluate_cells(run, data, out)
        return

    r = open_run(run)
    if data is None:
        summary = tune_thresholds(r, out_dir=out)
    else:
        ds = load_data(data, images, "train", skip_invalid, require_labels=True, channels=channels,
                       data_cfg=r.cfg.data)
        summary = evaluate_held_out(r, ds, out_dir=out, tta=tta, progress=progress_bars())
    console.print(kv_table(f"evaluation of {run}", summary))


@app.command()
def report(
    run: Annotated[Path, typer.Argument(help="Run directory made by 'hpa train'.")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Report folder (default: RUN/report).")] = None,
) -> None:
    """Regenerate a run's report (curves, per-class F1, PR curves, examples) from its files."""
    from hpa_classify.evaluate.evaluation import report_run
    from hpa_classify.inference.runs import open_run

    summary = report_run(open_run(run), out_dir=out)
    console.print(f"wrote {summary['report']} (macro F1 {summary['macro_f1']:.4f} on the validation split)")


@app.command()
def predict(
    run: Annotated[list[Path], typer.Argument(help="Run directory made by 'hpa train'; several make an ensemble (RUN [RUN...] DATA).", show_default=False)],
    data: DataArg,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Submission CSV (Id,Predicted); with --cells a folder (default: cells).", show_default="submission.csv")] = None,
    images: ImagesOpt = None,
    tta: Annotated[Optional[int], typer.Option(help="TTA views: flips and 90-degree rotations (1-8).")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Images per batch.")] = None,
    skip_invalid: SkipOpt = False,
    backend: Annotated[str, typer.Option(help="torch, or onnx (onnxruntime; exports RUN/model.onnx when needed).")] = "torch",
    devices: DevicesOpt = None,
    num_nodes: NodesOpt = None,
    weights: Annotated[Optional[str], typer.Option("--weights", help="Ensemble weights, one per RUN, e.g. 2,1 (default: equal).")] = None,
    channels: ChannelsOpt = None,
    intensity: IntensityOpt = None,
    cells: Annotated[bool, typer.Option("--cells", help="Classify every cell (HPA 2021, 19 classes): field runs give each cell their field's probabilities, a run trained with --task cells scores each crop; with both, the combination. Writes OUT/submission.csv (Kaggle 2021 format), cells.csv, cell_probs.csv, masks/ and overlays/.")] = False,
    masks: MasksOpt = None,
    cell_weight: Annotated[float, typer.Option("--cell-weight", help="With --cells and both kinds of run: the cell's weight w in field^(1-w) * cell^w.")] = 0.5,
    pixel_size: PixelSizeOpt = None,
) -> None:
    """Predict labels into a Kaggle submission; probabilities go beside it.

    A K-fold run predicts with the mean of its folds; several runs with the
    weighted mean of their probabilities. With --cells, every cell of every
    field is classified instead (see docs/cells.md).
    """
    if cells:
        _predict_cells(run, data, out or Path("cells"), images, tta, skip_invalid, masks, cell_weight,
                       pixel_size, channels, intensity)
        return
    if masks is not None or pixel_size is not None:
        raise HPAError("--masks and --pixel-size serve --cells only")
    out = out or Path("submission.csv")
    from hpa_classify.inference.members import parse_weights
    from hpa_classify.inference.runs import open_run
    from hpa_classify.workflows.submission import predict_run

    runs = [open_run(r) for r in run]
    from hpa_classify.workflows.cells import is_cell_run  # lazy for start-up speed

    cell_runs = [str(r.path) for r in runs if is_cell_run(r)]
    if cell_runs:
        raise HPAError(f"{', '.join(cell_runs)}: a cell classifier (trained with --task cells) scores cell crops, "
                       "not fields: predict with --cells")
    w = parse_weights(weights, len(runs)) if weights is not None else None
    if tta is not None and not 1 <= tta <= 8:
        raise HPAError(f"--tta must be 1-8, got {tta}")
    if backend not in ("torch", "onnx"):
        raise HPAError(f"--backend must be torch or onnx, got '{backend}'")
    ds = load_data(data, images, "test", skip_invalid, channels=channels, data_cfg=runs[0].cfg.data,
                   intensity=intensity)
    s = predict_run(runs[0] if len(runs) == 1 else runs, ds, out, tta=tta, batch_size=batch_size,
                    backend=backend, devices=devices_arg(devices), num_nodes=num_nodes or 1, weights=w,
                    progress=progress_bars())
    if s is None:  # another process of a sharded prediction: rank 0 writes and reports
        return
    console.print(
        f"wrote {s.submission} ({s.n_images} images, TTA x{s.tta}, {s.mean_labels:.2f} labels per image; "
        f"{s.n_fallback} images took the top-1 fallback) and {s.probabilities}"
    )
    if s.n_models > 1:
        console.print(f"mean of {s.n_models} models; thresholds: {s.thresholds_source}"
                      + (f" ({s.thresholds_path})" if s.thresholds_path else ""))
    if ds.skipped:
        console.print(f"[yellow]{len({i for i, _ in ds.skipped})} invalid images were left out[/yellow]")


@app.command()
def export(
    run: Annotated[Path, typer.Argument(help="Run directory made by 'hpa train'.")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="ONNX file (default: RUN/model.onnx), or the package zip with --format bioimageio (default: RUNNAME.bioimageio.zip).")] = None,
    format_: Annotated[str, typer.Option("--format", help="onnx, or bioimageio (a bioimage.io model package for deepImageJ, ilastik, QuPath).")] = "onnx",
    author: Annotated[Optional[list[str]], typer.Option("--author", help="With --format bioimageio: an author's name (repeatable).")] = None,
    license_: Annotated[str, typer.Option("--license", help="With --format bioimageio: SPDX licence of the weights.")] = "MIT",
) -> None:
    """Export a run's model to ONNX (dynamic batch), or as a bioimage.io model package."""
    from hpa_classify.inference.runs import open_run

    if format_ not in ("onnx", "bioimageio"):
        raise HPAError(f"--format must be onnx or bioimageio, got '{format_}'")
    r = open_run(run)
    if format_ == "bioimageio":
        from hpa_classify.inference.bioimageio import export_bioimageio  # lazy for start-up speed

        path = export_bioimageio(r, out or Path(f"{r.path.resolve().name}.bioimageio.zip"),
                                 authors=author or ("hpa-classify",), license=license_)
        console.print(f"wrote {path} (bioimage.io model package: TorchScript and ONNX weights, "
                      "output 'probabilities' N x 28)")
        return
    from hpa_classify.inference.onnx import export_onnx

    path = export_onnx(r, out)
    console.print(f"wrote {path} (input 'image' N x C x S x S float32, normalised; output 'logits' N x 28)")


@app.command()
def merge(
    run: Annotated[Path, typer.Argument(help="K-fold run directory whose folds are all trained.")],
) -> None:
    """Assemble a K-fold run's out-of-fold probabilities; tune thresholds on them and report."""
    from hpa_classify.train.kfold import merge_folds

    quiet_lightning()
    merge_folds(run)
    _print_eval(run)


def _predict_cells(
    run: list[Path], data: Path, out: Path, images: Optional[Path], tta: Optional[int], skip_invalid: bool,
    masks: Optional[Path], weight: float, pixel_size: Optional[float], channels: Optional[str],
    intensity: Optional[str],
) -> None:
    # lazy for start-up speed: data are checked before torch loads
    from hpa_classify.cells.segment import SegmentSettings
    from hpa_classify.inference.runs import open_run
    from hpa_classify.workflows.cells import predict_cells

    if tta is not None and not 1 <= tta <= 8:
        raise HPAError(f"--tta must be 1-8, got {tta}")
    if not 0.0 <= weight <= 1.0:
        raise HPAError(f"--cell-weight must be in 0-1, got {weight}")
    runs = [open_run(r) for r in run]
    ds = load_data(data, images, "test", skip_invalid, channels=channels, data_cfg=runs[0].cfg.data,
                   intensity=intensity)
    p = predict_cells(runs, ds, out, masks=masks, settings=SegmentSettings(pixel_size=pixel_size), weight=weight,
                      tta=tta, progress=progress_bars())
    console.print(
        f"{p.n_cells} cells in {p.n_fields} fields scored ({p.method}) in {p.seconds:.1f} s; wrote "
        + ", ".join(str(f) for f in p.files.values())
    )
    if p.empty:
        console.print(f"[yellow]{len(p.empty)} fields without cells (empty PredictionString)[/yellow]")


def _evaluate_cells(predictions: Path, truth: Path, out: Optional[Path]) -> None:
    import pandas as pd  # lazy for start-up speed

    from hpa_classify.cells.judge import score_submission
    from hpa_classify.classes import CLASS_NAMES_2021
    from hpa_classify.fileio import write_csv

    submission = predictions / "submission.csv" if predictions.is_dir() else predictions
    if not submission.is_file():
        raise HPAError(f"{submission}: not found (the submission.csv of 'hpa predict --cells')")
    result = score_submission(submission, truth)
    frame = pd.DataFrame({"class": range(len(CLASS_NAMES_2021)), "name": CLASS_NAMES_2021,
                          "true_cells": result.n_true, "ap": result.ap})
    table = Table(title=f"HPA 2021 metric of {submission} against {truth} ({result.n_images} fields)")
    for column in ("class", "true cells", "AP"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for row in frame.itertuples():
        ap = "-" if row.true_cells == 0 else f"{row.ap:.3f}"
        table.add_row(f"{row[1]} {row.name}", str(row.true_cells), ap)
    console.print(table)
    console.print(f"mAP over the {int((frame.true_cells > 0).sum())} classes with true cells: {result.mean_ap:.4f}")
    if out is not None:
        console.print(f"wrote {write_csv(out, frame)}")
