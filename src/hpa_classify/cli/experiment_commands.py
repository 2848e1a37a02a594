"""Commands across runs: compare, demo, bench quality."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from hpa_classify.cli.app import (
    app,
    console,
    kv_table,
    progress_bars,
    quiet_lightning,
)


def _frame_table(title: str, frame) -> Table:
    from hpa_classify.workflows.compare import format_table

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
    from hpa_classify.workflows import compare as cmp

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
    from hpa_classify.workflows.demo import run_demo

    quiet_lightning()
    result = run_demo(out, n_train=n, n_test=n_test, overrides=set_ or [], progress=progress_bars())
    console.print(kv_table("demo", result))


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
    only: Annotated[Optional[str], typer.Option("--only", help="Recipes to run, e.g. default,rgb-only (default: all).")] = None,
    synth_version: Annotated[Optional[int], typer.Option("--synth-version", help="Synthetic data version: 2 (default, crowded fields, yellow needed) or 1.")] = None,
) -> None:
    """Held-out macro F1 of the default recipe and its ablations, over seeds; prints a Markdown table."""
    from hpa_classify.workflows.bench import FULL, QUICK, with_changes
    from hpa_classify.workflows.quality import run_quality

    quiet_lightning()
    spec = with_changes(QUICK if quick else FULL, epochs, seeds, ablation_seeds, set_ or [], only=only,
                        synth_version=synth_version)
    out = out or Path("runs") / ("bench-quality-quick" if quick else "bench-quality")
    command = " ".join(["hpa", *sys.argv[1:]])
    result = run_quality(spec, out, cache=cache, resume=resume, command=command, threads=threads,
                         progress=progress_bars())
    console.print(result.table, markup=False, highlight=False, soft_wrap=True)
    console.print(f"{result.markdown_path} and {result.csv_path} ({result.wall_seconds / 60:.1f} min)")


@bench_app.command("cells")
def bench_cells(
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Folder for data, runs, results.csv and cells.md.")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="Smoke run: a few 128 px fields, 1 epoch, 1 seed.")] = False,
    seeds: Annotated[Optional[str], typer.Option(help="Seeds, e.g. 0,1,2.")] = None,
    n_train: Annotated[Optional[int], typer.Option("--n-train", help="Training fields.")] = None,
    n_test: Annotated[Optional[int], typer.Option("--n-test", help="Test fields.")] = None,
    field_epochs: Annotated[Optional[int], typer.Option("--field-epochs", help="Epochs of the field classifier.")] = None,
    cell_epochs: Annotated[Optional[int], typer.Option("--cell-epochs", help="Epochs of the cell classifier.")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override a config key in every run.")] = None,
) -> None:
    """Per-cell mAP (HPA 2021 metric) of broadcast, cell-crop and combined scores, over seeds."""
    from hpa_classify.workflows.cellbench import CELL_FULL, CELL_QUICK, run_cell_bench, with_changes

    quiet_lightning()
    spec = with_changes(CELL_QUICK if quick else CELL_FULL, seeds, set_ or [], n_train=n_train, n_test=n_test,
                        field_epochs=field_epochs, cell_epochs=cell_epochs)
    out = out or Path("runs") / ("bench-cells-quick" if quick else "bench-cells")
    _, table, md = run_cell_bench(spec, out, command=" ".join(["hpa", *sys.argv[1:]]), progress=progress_bars())
    console.print(table, markup=False, highlight=False, soft_wrap=True)
    console.print(f"{md} and {md.with_name('results.csv')}")
