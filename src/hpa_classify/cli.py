"""The ``hpa`` command line: parse, call the package, print. No logic of its own."""

from __future__ import annotations

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

    _quiet_lightning()

    ds = load_dataset(data, images, prefer=prefer, require_labels=require_labels)
    return checked(ds, skip_invalid=skip_invalid)


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
    from hpa_classify.data.layout import load_dataset
    from hpa_classify.data.layout import validate as run_validate

    t0 = time.perf_counter()
    ds = load_dataset(data, images, prefer=split)
    report = run_validate(ds, deep=deep)
    sizes = ", ".join(f"{w}x{h}: {c}" for (w, h), c in sorted(report.sizes.items()))
    console.print(f"{ds.csv_path}: {len(ds)} samples, images in {ds.image_dir}; sizes {sizes or '-'} "
                  f"({time.perf_counter() - t0:.1f} s)")
    if not report.ok:
        raise HPAError(report.message())
    console.print("[green]all samples valid[/green]")


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
    skip_invalid: SkipOpt = False,
) -> None:
    """Train a classifier by transfer learning; writes a run directory."""
    from hpa_classify.config import load_config
    from hpa_classify.train.run import train as run_train

    cfg = load_config(config, set_ or [])
    run_dir = out or Path("runs") / cfg.name
    ds = _load(data, images, "train", skip_invalid or cfg.data.skip_invalid, require_labels=True)
    run = run_train(cfg, ds, run_dir, force=force)
    _print_eval(run.path)


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
    run: Annotated[Path, typer.Argument(help="Run directory made by 'hpa train'.")],
    data: DataArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="Submission CSV (Id,Predicted).")] = Path("submission.csv"),
    images: ImagesOpt = None,
    tta: Annotated[Optional[int], typer.Option(help="TTA views: flips and 90-degree rotations (1-8).")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Images per batch.")] = None,
    skip_invalid: SkipOpt = False,
) -> None:
    """Predict labels into a Kaggle submission; probabilities go beside it."""
    from hpa_classify.predict import predict_run
    from hpa_classify.runs import open_run

    r = open_run(run)
    if tta is not None and not 1 <= tta <= 8:
        raise HPAError(f"--tta must be 1-8, got {tta}")
    ds = _load(data, images, "test", skip_invalid)
    s = predict_run(r, ds, out, tta=tta, batch_size=batch_size)
    console.print(
        f"wrote {s.submission} ({s.n_images} images, TTA x{s.tta}, {s.mean_labels:.2f} labels per image; "
        f"{s.n_fallback} images took the top-1 fallback) and {s.probabilities}"
    )
    if ds.skipped:
        console.print(f"[yellow]{len({i for i, _ in ds.skipped})} invalid images were left out[/yellow]")


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


def main() -> None:
    """Entry point: user errors exit 2 without a traceback, internal faults 1."""
    try:
        app(standalone_mode=False)
    except HPAError as exc:
        if _state["debug"]:
            raise
        err_console.print(f"[bold red]error:[/bold red] {escape(str(exc))}", highlight=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/yellow]")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # click usage errors and internal faults
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, click.exceptions.Abort):
            sys.exit(130)
        if _state["debug"]:
            raise
        err_console.print(
            f"[bold red]internal error:[/bold red] {type(exc).__name__}: {escape(str(exc))} "
            "(rerun with --debug for the traceback)",
            highlight=False,
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
