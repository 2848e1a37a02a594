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

DataArg = Annotated[Path, typer.Argument(help="Kaggle root (train.csv + train/, or sample_submission.csv + test/) or a CSV path.")]
ImagesOpt = Annotated[Optional[Path], typer.Option("--images", help="Image folder (default: beside the CSV, or train/ / test/).")]
SkipOpt = Annotated[bool, typer.Option("--skip-invalid", help="Leave out invalid samples (listed in the run) instead of stopping.")]
DevicesOpt = Annotated[Optional[str], typer.Option("--devices", help="Devices (processes) per machine: a number, 'auto' or a list like 0,1; several run DDP.")]
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


def load_data(data: Path, images: Optional[Path], prefer: str, skip_invalid: bool, require_labels: bool = False):
    # lazy for start-up speed: data are checked before torch and Lightning load
    from hpa_classify.data.layout import checked, load_dataset
    from hpa_classify.data.pack import is_pack, open_pack

    if is_pack(data):  # a cache made by 'hpa pack': validated when it was packed
        ds = open_pack(data, require_labels=require_labels)
        quiet_lightning()
        return ds

    ds = checked(load_dataset(data, images, prefer=prefer, require_labels=require_labels), skip_invalid=skip_invalid)
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


