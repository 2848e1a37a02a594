"""The web app of ``hpa serve``: a page, a JSON API over one loaded model, and its documentation.

Routes: ``GET /`` (the page), ``POST /v1/predict``, ``POST /v1/predict/batch``,
``GET /v1/model``, ``GET /healthz``, ``GET /docs`` (OpenAPI, served without a
CDN). With a token, every ``/v1/`` route wants ``Authorization: Bearer TOKEN``.
Errors are JSON ``{"detail": message}`` with a 4xx status (503 when busy); the
message is the command line's for the same fault.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi_offline import FastAPIOffline

from hpa_classify import __version__
from hpa_classify.classes import CHANNELS
from hpa_classify.errors import HPAError
from hpa_classify.workflows.serve.model import ServedModel
from hpa_classify.workflows.serve.schemas import BatchPrediction, ErrorBody, Health, ModelInfo, Prediction
from hpa_classify.workflows.serve.service import MULTICHANNEL_FIELD, Service, batch_samples, single_sample
from hpa_classify.workflows.serve.settings import ServeSettings, check_token, http_status

log = logging.getLogger(__name__)

PAGE_DIR = Path(__file__).with_name("page")
PAGE_FILES = {"/": ("index.html", "text/html"), "/page.css": ("page.css", "text/css"),
              "/page.js": ("page.js", "text/javascript")}
#: The page loads nothing from elsewhere; images are data URLs or local blobs.
PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
            "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'")
SECURITY_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
                    (b"x-frame-options", b"DENY")]
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": what} for code, what in (
        (401, "no or wrong bearer token"), (408, "the body came too slowly"),
        (413, "body, image or batch too large"), (415, "not multipart/form-data, or a multi-channel file"),
        (422, "not a readable image, a missing channel, an unexpected field"), (503, "too many images waiting"),
    )
}


def _form(fields: dict[str, str]) -> dict[str, Any]:
    """OpenAPI request body of a multipart form with file fields (the body is parsed by hand)."""
    props = {name: {"type": "string", "format": "binary", "description": what} for name, what in fields.items()}
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "properties": props}}}}}


SINGLE_FORM = _form({c: f"{c} channel: PNG, JPEG or TIFF, one grey image" for c in CHANNELS}
                    | {MULTICHANNEL_FIELD: "one file holding all channels (not read yet: see GET /v1/model)"})
BATCH_FORM = _form({f"sample1_{c}": f"{c} channel of the sample 'sample1'; repeat for each sample"
                    for c in CHANNELS})


class SecurityHeaders:
    """ASGI middleware: headers that keep browsers from sniffing types or framing the app."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(model: ServedModel, settings: ServeSettings | None = None) -> FastAPI:
    """The app for ``model``; the batcher and decoding threads start with its lifespan."""
    settings = settings or ServeSettings()
    service = Service(model, settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    app = FastAPIOffline(
        title="hpa-classify", version=__version__, lifespan=lifespan, redoc_url=None,
        description="Protein localisation in Human Protein Atlas images: upload the four channels "
                    "(red, green, blue, yellow) of a field and get the 28 classes' probabilities and decisions.",
    )
    app.state.service = service
    app.add_middleware(SecurityHeaders)
    _errors(app)
    _pages(app)
    _routes(app, service)
    return app


def _error(status: int, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"detail": message}, status_code=status, headers=headers)


def _errors(app: FastAPI) -> None:
    @app.exception_handler(HPAError)
    async def user_error(_: Request, exc: HPAError) -> JSONResponse:
        status = http_status(exc)
        log.info("refused with %d: %s", status, exc)
        return _error(status, str(exc))

    @app.exception_handler(Exception)
    async def internal_error(_: Request, exc: Exception) -> JSONResponse:
        log.error("internal error: %s: %s", type(exc).__name__, exc, exc_info=exc)
        return _error(500, f"internal error ({type(exc).__name__}); the server's log has the details")

    @app.exception_handler(RequestValidationError)
    async def bad_parameter(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return _error(422, problems)


def _pages(app: FastAPI) -> None:
    pages = {route: ((PAGE_DIR / name).read_bytes(), kind) for route, (name, kind) in PAGE_FILES.items()}

    async def page(request: Request) -> Response:
        body, kind = pages[request.url.path]
        headers = {"Content-Security-Policy": PAGE_CSP, "Cache-Control": "no-cache"}
        return Response(body, media_type=kind, headers=headers)

    for route in pages:
        app.add_api_route(route, page, methods=["GET"], include_in_schema=False)


def _routes(app: FastAPI, service: Service) -> None:
    bearer = HTTPBearer(auto_error=False, description="the token given to 'hpa serve --token'")

    def authorized(request: Request, _: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        check_token(request.headers.get("authorization"), service.settings.token)

    composite_query = Query(False, description="also return the RGB composite as a PNG data URL")
    secured = {"dependencies": [Depends(authorized)], "responses": ERRORS}

    @app.get("/healthz", response_model=Health, tags=["service"])
    async def healthz() -> JSONResponse | dict[str, str]:
        """Whether the model is loaded and the batcher runs (no token needed)."""
        if not service.running:
            return _error(503, "starting or stopping")
        return {"status": "ok"}

    @app.get("/v1/model", response_model=ModelInfo, tags=["model"], **secured)
    async def model_info() -> dict[str, Any]:
        """The run, its classes and thresholds, the input size, the versions, the upload rules."""
        return service.info()

    @app.post("/v1/predict", response_model=Prediction, tags=["predict"], openapi_extra=SINGLE_FORM, **secured)
    async def predict(request: Request, composite: bool = composite_query) -> dict[str, Any]:
        """Classify one field of view from its four channel files (form fields red, green, blue, yellow).

        A class is predicted where its probability is at or above its threshold;
        when none is, the most probable class is (``fallback``), as in ``hpa predict``.
        """
        parts = await service.form(request, max_parts=len(CHANNELS) + 4)
        (result,) = await service.predict({"sample": single_sample(parts)}, composite)
        result["id"] = None
        return result

    @app.post("/v1/predict/batch", response_model=BatchPrediction, tags=["predict"],
              openapi_extra=BATCH_FORM, **secured)
    async def predict_batch(request: Request, composite: bool = composite_query) -> dict[str, Any]:
        """Classify several fields: form fields ``<name>_<channel>``, e.g. ``a_red``, ``a_green``, ...

        Results come in the order the samples first appear in the form, each with its ``id``.
        """
        limit = service.limits.max_batch_images
        parts = await service.form(request, max_parts=limit * len(CHANNELS))
        return {"results": await service.predict(batch_samples(parts, limit), composite)}
