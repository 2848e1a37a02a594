"""``hpa serve``: the web page and API over a run's model."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Optional

import typer

from hpa_classify.cli.app import app, console, quiet_lightning


@app.command()
def serve(
    run: Annotated[Path, typer.Argument(help="Run directory made by 'hpa train' (a K-fold run serves the mean of its folds).")],
    host: Annotated[str, typer.Option(help="Address to listen on; anything but a loopback address needs --token.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8000,
    backend: Annotated[str, typer.Option(help="torch, or onnx (onnxruntime; exports RUN/model.onnx when needed).")] = "torch",
    token: Annotated[Optional[str], typer.Option(envvar="HPA_SERVE_TOKEN", show_default=False, help="Bearer token the API requires (at least 16 characters); also read from HPA_SERVE_TOKEN.")] = None,
    tta: Annotated[Optional[int], typer.Option(help="TTA views (1-8); default the run's predict.tta.")] = None,
    max_batch: Annotated[int, typer.Option(min=1, max=1024, help="Most images the model predicts at once.")] = 16,
    max_wait_ms: Annotated[float, typer.Option(min=0, max=1000, help="Longest wait for a batch to fill, ms.")] = 10.0,
    max_upload_mb: Annotated[int, typer.Option(min=1, max=4096, help="Largest request body, MiB.")] = 64,
) -> None:
    """Serve a web page and an API that classify new images with RUN's model (Ctrl-C stops)."""
    # lazy for start-up speed: the address is checked before torch and FastAPI load
    from hpa_classify.workflows.serve.settings import Limits, ServeSettings, check_bind

    check_bind(host, token)
    settings = ServeSettings(token=token, max_batch=max_batch, max_wait_s=max_wait_ms / 1000,
                             limits=Limits(max_request_bytes=max_upload_mb * 2**20))
    from hpa_classify.inference.runs import open_run
    from hpa_classify.workflows.serve import load_served_model
    from hpa_classify.workflows.serve import serve as run_server

    quiet_lightning()
    model = load_served_model(open_run(run), backend=backend, tta=tta)
    for name in ("uvicorn", "hpa_classify.workflows.serve"):
        logging.getLogger(name).setLevel(logging.INFO)
    shown = f"[{host}]" if ":" in host else host
    console.print(f"serving {run} ({model.run.cfg.model.name}, {model.size} px, TTA x{model.tta}, {backend}) "
                  f"on http://{shown}:{port}/ - API docs at /docs; Ctrl-C stops")
    run_server(model, settings, host, port)
