"""Running the app on uvicorn: one process, one loaded model, bounded connections and timeouts."""

from __future__ import annotations

import logging
import socket

import uvicorn

from hpa_classify.workflows.serve.app import create_app
from hpa_classify.workflows.serve.model import ServedModel
from hpa_classify.workflows.serve.settings import ServeSettings, check_bind

log = logging.getLogger(__name__)

#: Connections served at once; more are answered 503 by uvicorn.
MAX_CONNECTIONS = 128
#: Seconds an idle keep-alive connection is kept open.
KEEP_ALIVE_S = 5
#: Largest request line and headers, bytes.
MAX_HEADER_BYTES = 16 * 1024


def server_config(model: ServedModel, settings: ServeSettings, host: str, port: int) -> uvicorn.Config:
    """uvicorn's settings for ``hpa serve``: the app, the address and the connection limits.

    Raises
    ------
    HPAError
        A non-loopback ``host`` without a token (see :func:`check_bind`).
    """
    check_bind(host, settings.token)
    return uvicorn.Config(
        create_app(model, settings),
        host=host,
        port=port,
        workers=1,
        limit_concurrency=MAX_CONNECTIONS,
        timeout_keep_alive=KEEP_ALIVE_S,
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
        server_header=False,
        proxy_headers=False,
        log_config=None,  # the caller's logging set-up is kept
    )


def serve(
    model: ServedModel,
    settings: ServeSettings,
    host: str,
    port: int,
    sock: socket.socket | None = None,
) -> None:
    """Serve until interrupted (Ctrl-C or SIGTERM); ``sock`` is an already bound socket, if any."""
    server = uvicorn.Server(server_config(model, settings, host, port))
    log.info("serving %s on http://%s:%d/", model.run.path, host, port)
    server.run(sockets=[sock] if sock is not None else None)
