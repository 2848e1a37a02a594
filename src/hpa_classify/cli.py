"""The ``hpa`` command line: parse, call the package, print. No logic of its own."""

from __future__ import annotations

import importlib
import logging
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hpa_classify.errors import HPAError

app = typer.Typer(
    name="hpa",
    help="Classify protein localisation in Human Protein Atlas images (28 classes, macro F1).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)
_state = {"debug": False}

DataArg = Annotated[Path, typer.Argument(help="Kaggle root (train.csv + train/, or sample_submission.csv + test/) or a CSV path.")]
ImagesOpt = Annotated[Optional[Path], typer.Option("--images", help="Image folder (default: beside the CSV, or train/ / test/).")]
SkipOpt = Annotated[bool, typer.Option("--skip-invalid", help="Leave out invalid samples (listed in the run) instead of stopping.")]
DevicesOpt = Annotated[Optional[str], typer.Option("--devices", help="Devices (processes) per machine: a number, 'auto' or a list like 0,1; several run DDP.")]
NodesOpt = Annotated[Optional[int], typer.Option("--num-nodes", min=1, help="Machines of a distributed job (started by torchrun or SLURM).")]


def _devices(text: Optional[str]) -> int | str:
    """``--devices`` as Lightning takes it: a count, or 'auto' / a device list as given."""
    if text is None:
        return 1
    return int(text) if text.strip().isdigit() else text.strip()


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log more.")] = False,
) -> None:
    from rich.logging import RichHandler

    _state["debug"] = debug
    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(message)s", handlers=[RichHandler(console=err_console, show_path=False)])
    _state["verbose"] = verbose


def _quiet_lightning() -> None:
    """Lightning sets its loggers to INFO on import; keep them at the CLI's level."""
    import lightning.pytorch  # noqa: F401  (import first, so its set-up runs before ours)

    level = logging.INFO if _state.get("verbose") or _state["debug"] else logging.WARNING
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        lg = logging.getLogger(name)
        lg.setLevel(level)
        lg.handlers.clear()
        lg.propagate = True


def _load(data: Path, images: Optional[Path], prefer: str, skip_invalid: bool, require_labels: bool = False):
    from hpa_classify.data.layout import checked, load_dataset
    from hpa_classify.data.pack import is_pack, open_pack

    if is_pack(data):  # a cache made by 'hpa pack': validated when it was packed
        ds = open_pack(data, require_labels=require_labels)
        _quiet_lightning()
        return ds

    ds = checked(load_dataset(data, images, prefer=prefer, require_labels=require_labels), skip_invalid=skip_invalid)
    _quiet_lightning()  # after the checks: bad data is reported before torch and Lightning load
    return ds


def _kv_table(title: str, rows: dict) -> Table:
    table = Table(title=title, show_header=False)
    table.add_column(style="bold")
    table.add_column()
    for k, v in rows.items():
        table.add_row(str(k), str(v))
    return table


@app.command()
def synth(
    out: Annotated[Path, typer.Argument(help="Folder to write the Kaggle-layout dataset into.")],
    n: Annotated[int, typer.Option("--n", help="Training images.")] = 800,
    n_test: Annotated[int, typer.Option("--n-test", help="Test images (labels in test_labels.csv).")] = 200,
    size: Annotated[int, typer.Option(help="Image side, px.")] = 128,
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same bytes.")] = 0,
    class_alpha: Annotated[float, typer.Option(help="Class frequency exponent: 1 = real HPA imbalance, 0 = uniform.")] = 0.5,
    min_per_class: Annotated[int, typer.Option(help="Every class at least this often per split.")] = 2,
    workers: Annotated[Optional[int], typer.Option(help="Processes (default: all cores).")] = None,
    preview: Annotated[bool, typer.Option("--preview", help="Also write OUT/preview.png: one example per class.")] = False,
) -> None:
    """Write a synthetic HPA-like dataset in Kaggle layout (no download needed)."""
    from hpa_classify.data import synth as synth_mod

    summary = synth_mod.generate(
        out, n_train=n, n_test=n_test, size=size, seed=seed, class_alpha=class_alpha,
        min_per_class=min_per_class, workers=workers,
    )
    console.print(f"wrote {summary.n_train} train and {summary.n_test} test images ({size} px) to {out}")
    if preview:
        png = synth_mod.preview(Path(out) / "preview.png", size=max(size, 128), seed=seed)
        console.print(f"contact sheet: {png}")


@app.command()
def validate(
    data: DataArg,
    images: ImagesOpt = None,
    deep: Annotated[bool, typer.Option("--deep", help="Decode every image, not just headers and file ends.")] = False,
    split: Annotated[str, typer.Option(help="Which CSV of a Kaggle root to check: train or test.")] = "train",
) -> None:
    """Check a dataset (CSV, labels, every channel file) without changing anything."""
    from hpa_classify.data.layout import load_dataset, require_images
    from hpa_classify.data.layout import validate as run_validate

    t0 = time.perf_counter()
    ds = load_dataset(data, images, prefer=split)
    require_images(ds)
    report = run_validate(ds, deep=deep)
    sizes = ", ".join(f"{w}x{h}: {c}" for (w, h), c in sorted(report.sizes.items()))
    console.print(f"{ds.csv_path}: {len(ds)} samples, images in {ds.image_dir}; sizes {sizes or '-'} "
                  f"({time.perf_counter() - t0:.1f} s)")
    if not report.ok:
        raise HPAError(report.message())
    console.print("[green]all samples valid[/green]")


@app.command()
def pack(
    data: Annotated[Path, typer.Argument(help="Dataset to pack (as for 'hpa train'); with --verify, the pack folder.")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Pack folder to write (resumes an unfinished one).")] = None,
    size: Annotated[int, typer.Option(help="Side every image is resized to, px (use the data.size you train at).")] = 512,
    images: ImagesOpt = None,
    split: Annotated[str, typer.Option(help="Which CSV of a Kaggle root to pack: train or test.")] = "train",
    workers: Annotated[Optional[int], typer.Option(help="Decoding processes (default: all cores).")] = None,
    shard_mb: Annotated[int, typer.Option("--shard-mb", help="Largest shard file, MiB.")] = 1024,
    force: Annotated[bool, typer.Option("--force", help="Replace a pack of other data or another size in OUT.")] = False,
    verify: Annotated[bool, typer.Option("--verify", help="Check DATA, a pack folder, against its checksums; write nothing.")] = False,
    skip_invalid: SkipOpt = False,
) -> None:
    """Decode and resize a dataset once into memory-mapped uint8 shards, for fast training and prediction."""
    from hpa_classify.data import pack as pack_mod

    if verify:
        meta = pack_mod.open_pack(data)
        bad = pack_mod.verify_pack(data)
        if bad:
            raise HPAError(f"{data}: {len(bad)} shards do not match their checksums: {', '.join(bad)}; pack again with --force")
        console.print(f"{data}: {len(meta)} samples at {meta.side} px, all {len(meta.shard_files)} shards match their checksums")
        return
    if out is None:
        raise HPAError("hpa pack needs --out/-o, the pack folder to write")
    ds = _load(data, images, split, skip_invalid)
    t0 = time.perf_counter()
    s = pack_mod.pack(ds, out, size=size, workers=workers, shard_bytes=shard_mb << 20, force=force)
    dt = time.perf_counter() - t0
    kept = f", {s.kept_shards} kept from an earlier run" if s.kept_shards else ""
    console.print(f"packed {s.n_samples} samples at {s.size} px into {s.root} ({s.n_shards} shards, "
                  f"{s.bytes / 2**30:.2f} GiB{kept}) in {dt:.1f} s; use it as DATA for 'hpa train' and 'hpa predict'")


@app.command()
def analyze(
    data: DataArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for report.html, stats.json, normalization.yaml, figures/.")],
    images: ImagesOpt = None,
    max_images: Annotated[int, typer.Option("--max-images", help="Images decoded (at random) for the intensity statistics.")] = 500,
    min_count: Annotated[int, typer.Option("--min-count", help="Warn about classes with fewer images (20: under 4 per fold in 5-fold CV).")] = 20,
    per_class: Annotated[int, typer.Option("--per-class", help="Example images per class in the montages.")] = 6,
    split: Annotated[str, typer.Option(help="Which CSV of a Kaggle root: train or test.")] = "train",
    seed: Annotated[int, typer.Option(help="Seed of the random choices.")] = 0,
) -> None:
    """Analyse a dataset (labels, and images when found) into a self-contained HTML report."""
    from hpa_classify.analysis.report import analyze as run_analyze

    result = run_analyze(data, out, images=images, prefer=split, max_images=max_images,
                         min_count=min_count, per_class=per_class, seed=seed, progress=True)
    source = result.stats["source"]
    console.print(f"{source['csv']}: {source['n_samples']} samples; analysed in {result.stats['seconds']:.1f} s")
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/yellow] {escape(warning)}", highlight=False)
    console.print(f"wrote {result.html} and {result.stats_json}"
                  + (f"; normalisation: {result.normalization}" if result.normalization else ""))


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
) -> None:
    """Train a classifier by transfer learning; writes a run directory (K of them with --folds)."""
    from hpa_classify.config import load_config
    from hpa_classify.distributed import is_global_zero
    from hpa_classify.errors import Interrupted

    if resume and force:
        raise HPAError("--resume continues a run and --force replaces it: pass one of them")
    if fold is not None and folds is None:
        raise HPAError("--fold i trains one fold of a K-fold run: pass --folds K too")
    scale = ([f"train.devices={devices}"] if devices is not None else []) + (
        [f"train.num_nodes={num_nodes}"] if num_nodes is not None else []
    )
    cfg = load_config(config, (set_ or []) + scale)
    run_dir = out or Path("runs") / cfg.name
    ds = _load(data, images, "train", skip_invalid or cfg.data.skip_invalid, require_labels=True)
    ext = None
    if external is not None:
        ext = _load(external, external_images, "train", skip_invalid or cfg.data.skip_invalid, require_labels=True)
    from hpa_classify.train.kfold import train_kfold, train_with_external
    from hpa_classify.train.run import train as run_train

    try:
        if folds is not None:
            result = train_kfold(cfg, ds, run_dir, folds, fold=fold, external=ext, force=force,
                                 resume=resume, console=console)
            ext_summary = result.external
        elif ext is not None:
            run, ext_summary = train_with_external(cfg, ds, ext, run_dir, force=force, resume=resume)
        else:
            run, ext_summary = run_train(cfg, ds, run_dir, force=force, resume=resume), None
    except (Interrupted, KeyboardInterrupt) as exc:
        message = str(exc) if isinstance(exc, Interrupted) else "training stopped"
        if (run_dir / "checkpoints" / "last.ckpt").is_file() or any(run_dir.glob("fold*/checkpoints/last.ckpt")):
            message += f"\nto continue: {_resume_command()}"
        raise Interrupted(message) from None
    if not is_global_zero():  # the other processes of a distributed run print nothing
        return
    if ext_summary is not None:
        console.print(
            f"external: {ext_summary.n_used} images added from {ext_summary.csv}; "
            f"{ext_summary.n_duplicates} rows whose Id is in DATA were left out (kept DATA's rows)"
        )
    if folds is None:
        _print_eval(run.path)
    elif result.summary is not None:
        _print_eval(run_dir)
    else:
        console.print(
            f"fold {fold} of {folds} done in {run_dir / f'fold{fold}'}; finished folds: "
            f"{result.finished}. When all {folds} are finished: hpa merge {run_dir}"
        )


def _resume_command() -> str:
    """This command line as typed, with --resume instead of --force."""
    import shlex

    args = [a for a in sys.argv[1:] if a != "--force"]
    if "--resume" not in args:
        args.append("--resume")
    return "hpa " + shlex.join(args)


def _print_eval(run_dir: Path) -> None:
    import json

    summary_path = run_dir / "report" / "summary.json"
    if summary_path.is_file():
        summary = json.loads(summary_path.read_text())
        console.print(_kv_table(f"run {run_dir}", summary))


@app.command()
def evaluate(
    run: Annotated[Path, typer.Argument(help="Run directory made by 'hpa train'.")],
    data: Annotated[Optional[Path], typer.Argument(help="Labelled held-out data (optional).")] = None,
    images: ImagesOpt = None,
    tta: Annotated[Optional[int], typer.Option(help="TTA views (1-8) for DATA.")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Report folder.")] = None,
    skip_invalid: SkipOpt = False,
) -> None:
    """Macro F1, per-class table and thresholds; on the validation split or on DATA."""
    from hpa_classify.evaluate.run import evaluate_run
    from hpa_classify.runs import open_run

    r = open_run(run)
    ds = _load(data, images, "train", skip_invalid, require_labels=True) if data is not None else None
    summary = evaluate_run(r, ds, out_dir=out, tta=tta)
    console.print(_kv_table(f"evaluation of {run}", summary))


@app.command()
def report(
    run: Annotated[Path, typer.Argument(help="Run directory made by 'hpa train'.")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Report folder (default: RUN/report).")] = None,
) -> None:
    """Regenerate a run's report (curves, per-class F1, PR curves, examples) from its files."""
    from hpa_classify.evaluate.run import report_run
    from hpa_classify.runs import open_run

    summary = report_run(open_run(run), out_dir=out)
    console.print(f"wrote {summary['report']} (macro F1 {summary['macro_f1']:.4f} on the validation split)")


@app.command()
def predict(
    run: Annotated[list[Path], typer.Argument(help="Run directory made by 'hpa train'; several make an ensemble (RUN [RUN...] DATA).", show_default=False)],
    data: DataArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="Submission CSV (Id,Predicted).")] = Path("submission.csv"),
    images: ImagesOpt = None,
    tta: Annotated[Optional[int], typer.Option(help="TTA views: flips and 90-degree rotations (1-8).")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Images per batch.")] = None,
    skip_invalid: SkipOpt = False,
    backend: Annotated[str, typer.Option(help="torch, or onnx (onnxruntime; exports RUN/model.onnx when needed).")] = "torch",
    devices: DevicesOpt = None,
    num_nodes: NodesOpt = None,
    weights: Annotated[Optional[str], typer.Option("--weights", help="Ensemble weights, one per RUN, e.g. 2,1 (default: equal).")] = None,
) -> None:
    """Predict labels into a Kaggle submission; probabilities go beside it.

    A K-fold run predicts with the mean of its folds; several runs with the
    weighted mean of their probabilities.
    """
    from hpa_classify.ensemble import parse_weights
    from hpa_classify.predict import predict_run
    from hpa_classify.runs import open_run

    runs = [open_run(r) for r in run]
    w = parse_weights(weights, len(runs)) if weights is not None else None
    if tta is not None and not 1 <= tta <= 8:
        raise HPAError(f"--tta must be 1-8, got {tta}")
    if backend not in ("torch", "onnx"):
        raise HPAError(f"--backend must be torch or onnx, got '{backend}'")
    ds = _load(data, images, "test", skip_invalid)
    s = predict_run(runs[0] if len(runs) == 1 else runs, ds, out, tta=tta, batch_size=batch_size,
                    backend=backend, devices=_devices(devices), num_nodes=num_nodes or 1, weights=w)
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
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="ONNX file (default: RUN/model.onnx).")] = None,
) -> None:
    """Export a run's model to ONNX (dynamic batch), for onnxruntime on machines without a GPU."""
    from hpa_classify.export import export_onnx
    from hpa_classify.runs import open_run

    path = export_onnx(open_run(run), out)
    console.print(f"wrote {path} (input 'image' N x C x S x S float32, normalised; output 'logits' N x 28)")


@app.command()
def merge(
    run: Annotated[Path, typer.Argument(help="K-fold run directory whose folds are all trained.")],
) -> None:
    """Assemble a K-fold run's out-of-fold probabilities; tune thresholds on them and report."""
    from hpa_classify.train.kfold import merge_folds

    _quiet_lightning()
    merge_folds(run)
    _print_eval(run)


def _frame_table(title: str, frame) -> Table:
    from hpa_classify.compare import format_table

    header, rows = format_table(frame)
    table = Table(title=title)
    for k, name in enumerate(header):
        table.add_column(escape(name), justify="left" if k == 0 else "right")
    for row in rows:
        table.add_row(*(escape(c) for c in row))
    return table


@app.command()
def compare(
    runs: Annotated[list[Path], typer.Argument(help="Finished run directories; deltas are against the first.", show_default=False)],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Folder for compare.md, compare.csv and curves.png.")] = None,
) -> None:
    """Compare runs: config keys that differ, macro F1, per-class F1 deltas, time, images/s."""
    from hpa_classify import compare as cmp

    frame = cmp.compare_runs(runs)
    summary = cmp.summary_table(frame).T
    summary.index.name = "run"
    console.print(_frame_table("runs (deltas against the first)", summary))
    console.print(_frame_table("per-class F1 (deltas against the first run)", cmp.class_table(frame)))
    if out is not None:
        paths = cmp.write_comparison(runs, out, frame)
        console.print(f"wrote {paths['markdown']}, {paths['csv']} and {paths['png']}")


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for data, run and submission.")] = Path("demo"),
    n: Annotated[int, typer.Option("--n", help="Synthetic training images.")] = 800,
    n_test: Annotated[int, typer.Option("--n-test", help="Synthetic test images.")] = 200,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override a demo-cpu config key.")] = None,
) -> None:
    """Synthesise data, train EfficientNet-Lite0 (bundled ImageNet weights), evaluate, predict."""
    from hpa_classify.demo import run_demo

    _quiet_lightning()
    result = run_demo(out, n_train=n, n_test=n_test, overrides=set_ or [], console=console)
    console.print(_kv_table("demo", result))


bench_app = typer.Typer(help="Benchmarks on the synthetic dataset.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")


@bench_app.command("quality")
def bench_quality(
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Folder for runs, results.csv and quality.md.")] = None,
    cache: Annotated[Optional[Path], typer.Option(help="Folder for the synthetic dataset (default: OUT/data).")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="Smoke run: 64 px, 48 images, 1 epoch, 1 seed.")] = False,
    epochs: Annotated[Optional[int], typer.Option(help="Training epochs of every run.")] = None,
    seeds: Annotated[Optional[str], typer.Option(help="Seeds of the default and random init, e.g. 0,1,2.")] = None,
    ablation_seeds: Annotated[Optional[str], typer.Option(help="Seeds of the other ablations, e.g. 0,1.")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override a config key in every run.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Keep runs already finished in OUT with the same config.")] = False,
    threads: Annotated[Optional[int], typer.Option(help="torch threads (default: one per core; 1 is faster on a busy machine).")] = None,
) -> None:
    """Held-out macro F1 of the default recipe and its ablations, over seeds; prints a Markdown table."""
    from hpa_classify.bench import FULL, QUICK, run_quality, with_changes

    _quiet_lightning()
    spec = with_changes(QUICK if quick else FULL, epochs, seeds, ablation_seeds, set_ or [])
    out = out or Path("runs") / ("bench-quality-quick" if quick else "bench-quality")
    command = " ".join(["hpa", *sys.argv[1:]])
    result = run_quality(spec, out, cache=cache, resume=resume, command=command, threads=threads, console=console)
    console.print(result.table, markup=False, highlight=False, soft_wrap=True)
    console.print(f"{result.markdown_path} and {result.csv_path} ({result.wall_seconds / 60:.1f} min)")


def _printable(text: str) -> str:
    """``text`` with the undecodable bytes of non-UTF-8 file names shown as ``\\xNN``."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _click_classes() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    """Click's usage-error and abort classes: those of click itself and of the copy newer
    typer releases carry inside them (``typer._click``), which raises its own."""
    errors: list[type[BaseException]] = []
    aborts: list[type[BaseException]] = [typer.Abort]
    for name in ("click.exceptions", "typer._click.exceptions"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        errors.append(module.ClickException)
        if hasattr(module, "Abort"):  # typer's bundled copy keeps Abort in typer.exceptions
            aborts.append(module.Abort)
    return tuple(errors), tuple(aborts)


def main() -> None:
    """Entry point: user errors exit 2 without a traceback, internal faults 1, Ctrl-C 130."""
    for stream in (sys.stdout, sys.stderr):  # a non-UTF-8 file name must not crash a print
        if getattr(stream, "errors", None) == "strict":
            try:
                stream.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
            except (AttributeError, ValueError):
                pass
    try:
        app(standalone_mode=False)
    except HPAError as exc:
        if _state["debug"]:
            raise
        label = "[yellow]interrupted:[/yellow]" if exc.exit_code == 130 else "[bold red]error:[/bold red]"
        err_console.print(f"{label} {escape(_printable(str(exc)))}", highlight=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/yellow]")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # click usage errors and internal faults
        click_error, abort = _click_classes()
        if isinstance(exc, click_error):
            exc.show()  # type: ignore[attr-defined]
            sys.exit(exc.exit_code)  # type: ignore[attr-defined]
        if isinstance(exc, abort):
            sys.exit(130)
        if _state["debug"]:
            raise
        err_console.print(
            f"[bold red]internal error:[/bold red] {type(exc).__name__}: {escape(_printable(str(exc)))} "
            "(rerun with --debug for the traceback)",
            highlight=False,
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
