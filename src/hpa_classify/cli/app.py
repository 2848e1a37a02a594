"""The ``hpa`` application: options shared by every command, console, loading data, errors and exit codes.

This module owns the console: results go to standard output, progress bars
and messages to standard error (through :class:`RichProgress` and logging).
The package is imported inside each command, not here, to keep start-up fast
(``hpa --help`` loads no torch) and so that data are checked before torch and
Lightning load: those imports are lazy for start-up speed only.
"""

from __future__ import annotations

import importlib
import logging
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hpa_classify.cli.progress import RichProgress
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

DataArg = Annotated[Path, typer.Argument(help="Kaggle root (train.csv + train/, or sample_submission.csv + test/), a CSV path, or a folder of images without a CSV (fields found from the file names).")]
ImagesOpt = Annotated[Optional[Path], typer.Option("--images", help="Image folder (default: beside the CSV, or train/ / test/).")]
SkipOpt = Annotated[bool, typer.Option("--skip-invalid", help="Leave out invalid samples (listed in the run) instead of stopping.")]
SplitOpt = Annotated[str, typer.Option(help="Which CSV of a Kaggle root: train or test.")]
MasksOpt = Annotated[Optional[Path], typer.Option("--masks", help="Label images made elsewhere (Cellpose, HPA-Cell-Segmentation, by hand), DIR/{Id}_cells.png (or .tif), optionally {Id}_nuclei.png, used instead of segmenting.")]
PixelSizeOpt = Annotated[Optional[float], typer.Option("--pixel-size", help="Pixel size of the images for segmenting, um/px (default: 163.84 um / image side; 0.08 at 2048 px, 0.32 at 512 px).")]
DevicesOpt = Annotated[Optional[str], typer.Option("--devices", help="Devices (processes) per machine: a number, 'auto' or a list like 0,1; several run DDP.")]
ChannelsOpt = Annotated[Optional[str], typer.Option("--channels", help="Planes of multi-channel TIFFs: red=0,green=1,blue=2,yellow=3 (default: data.channel_map, OME channel names, else plane order).")]
IntensityOpt = Annotated[Optional[str], typer.Option("--intensity", help="More than 8 bits to 8: auto, bits:12, range:0,4095 or percentile:0.1,99.9 (default: data.intensity).")]
NodesOpt = Annotated[Optional[int], typer.Option("--num-nodes", min=1, help="Machines of a distributed job (started by torchrun or SLURM).")]


def progress_bars() -> RichProgress:
    """Progress bars on standard error, for one command."""
    return RichProgress(err_console)


def devices_arg(text: Optional[str]) -> int | str:
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


def quiet_lightning() -> None:
    """Lightning sets its loggers to INFO on import; keep them at the CLI's level."""
    import lightning.pytorch  # noqa: F401  (import first, so its set-up runs before ours)

    level = logging.INFO if _state.get("verbose") or _state["debug"] else logging.WARNING
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        lg = logging.getLogger(name)
        lg.setLevel(level)
        lg.handlers.clear()
        lg.propagate = True


def load_data(
    data: Path,
    images: Optional[Path],
    prefer: str,
    skip_invalid: bool,
    require_labels: bool = False,
    channels: Optional[str] = None,
    data_cfg=None,
    intensity: Optional[str] = None,
):
    """DATA as a checked dataset; with ``data_cfg`` (a config's ``data``), read with its channel
    map and intensity scaling, and holding the channels its model reads."""
    # lazy for start-up speed: data are checked before torch and Lightning load
    from hpa_classify.data.intensity import resolve_scaling, with_scaling
    from hpa_classify.data.io import parse_channel_map
    from hpa_classify.data.layout import checked, load_dataset
    from hpa_classify.data.pack import is_pack, open_pack
    from hpa_classify.errors import DataError

    if is_pack(data):  # a cache made by 'hpa pack': validated when it was packed
        ds = open_pack(data, require_labels=require_labels)
        quiet_lightning()
        return ds
    channel_map = parse_channel_map(channels) if channels else None
    if channel_map is None and data_cfg is not None and data_cfg.channel_map:
        channel_map = dict(data_cfg.channel_map)
    ds = load_dataset(data, images, prefer=prefer, require_labels=require_labels, channel_map=channel_map)
    ds = checked(ds, skip_invalid=skip_invalid)
    spec = intensity or (data_cfg.intensity if data_cfg is not None else "auto")
    with_scaling(ds, resolve_scaling(ds, spec))
    if data_cfg is not None:
        lacking = [c for c in data_cfg.channels if c not in ds.reading.channels]
        if lacking:
            raise DataError(
                f"{data}: the model reads the {', '.join(lacking)} channel, which these data do not hold "
                f"(they hold {', '.join(ds.reading.channels)}); train with data.channels=[{', '.join(ds.reading.channels)}]"
            )
    quiet_lightning()  # after the checks: bad data is reported before torch and Lightning load
    return ds


def kv_table(title: str, rows: dict) -> Table:
    table = Table(title=title, show_header=False)
    table.add_column(style="bold")
    table.add_column()
    for k, v in rows.items():
        table.add_row(str(k), str(v))
    return table


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


