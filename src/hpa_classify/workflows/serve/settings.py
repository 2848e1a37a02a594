"""What a server accepts and where it may listen: limits, bind check, bearer token.

Every limit here is one a client meets as a 4xx answer with a message, never a
crash or a held model: the size of a request body, the pixels an image header
may claim, the images of one batch request, the time a client may take to send
its body, and the images that may wait for the model at once.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from dataclasses import dataclass, field

from hpa_classify.errors import DataError, HPAError

#: The host ``hpa serve`` binds by default: this machine only.
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
#: Shortest bearer token accepted (a token is required on any non-loopback host).
MIN_TOKEN_LENGTH = 16


class RequestError(HPAError):
    """A request the server refuses; ``status`` is its HTTP status (4xx, or 503 when busy)."""

    status = 400


class Unauthorized(RequestError):
    """No bearer token, or the wrong one."""

    status = 401


class SlowUpload(RequestError):
    """The client did not send its whole body in time."""

    status = 408


class TooLarge(RequestError):
    """A body, or a batch, larger than the server accepts."""

    status = 413


class UnsupportedUpload(RequestError):
    """A request body that is not ``multipart/form-data``, or an upload kind not read yet."""

    status = 415


class Busy(RequestError):
    """Too many images already wait for the model."""

    status = 503


def http_status(exc: HPAError) -> int:
    """The HTTP status that answers ``exc``: its own, 413 for a too large image, else 422 or 400.

    >>> http_status(TooLarge("x")), http_status(DataError("red: empty file (0 bytes)"))
    (413, 422)
    >>> http_status(HPAError("x"))
    400
    """
    if isinstance(exc, RequestError):
        return exc.status
    if isinstance(exc, DataError):
        return 422
    return 400


@dataclass(frozen=True)
class Limits:
    """What one request may ask of the server.

    Attributes
    ----------
    max_request_bytes : int
        Largest request body (all files of the request together).
    max_pixels : int
        Largest image a file header may claim, in pixels per channel
        (full-size HPA fields are at most 3072 x 3072).
    max_batch_images : int
        Most samples in one ``/v1/predict/batch`` request.
    body_timeout_s : float
        Time a client has to send its whole body.
    max_waiting_images : int
        Images that may wait for the model at once; beyond it requests get 503.
    composite_side : int
        Longest side of the composite returned for display.
    """

    max_request_bytes: int = 64 * 2**20
    max_pixels: int = 4096 * 4096
    max_batch_images: int = 32
    body_timeout_s: float = 30.0
    max_waiting_images: int = 256
    composite_side: int = 512


@dataclass(frozen=True)
class ServeSettings:
    """How a server batches requests on the model, and what it accepts.

    Attributes
    ----------
    token : str or None
        Bearer token required on ``/v1/`` (None: no token).
    max_batch : int
        Most images the model predicts in one batch.
    max_wait_s : float
        Longest time the first image of a batch waits for others to join it.
    decode_threads : int
        Threads that parse and decode uploads, off the event loop.
    limits : Limits
        Request limits.
    """

    token: str | None = None
    max_batch: int = 16
    max_wait_s: float = 0.010
    decode_threads: int = 2
    limits: Limits = field(default_factory=Limits)


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only: ``localhost`` or a loopback address.

    >>> [is_loopback(h) for h in ("127.0.0.1", "::1", "[::1]", "localhost", "0.0.0.0", "example.org")]
    [True, True, True, True, False, False]
    """
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse to listen beyond this machine without a token, and refuse a short token.

    Raises
    ------
    HPAError
        ``host`` is not a loopback address and ``token`` is empty, or ``token``
        is shorter than :data:`MIN_TOKEN_LENGTH`.

    Examples
    --------
    >>> check_bind("127.0.0.1", None)
    >>> check_bind("0.0.0.0", None)
    Traceback (most recent call last):
    ...
    hpa_classify.errors.HPAError: --host 0.0.0.0 listens beyond this machine: pass --token (or set HPA_SERVE_TOKEN) so that only clients with the token can use the API
    """
    if token is not None and len(token) < MIN_TOKEN_LENGTH:
        raise HPAError(f"--token must be at least {MIN_TOKEN_LENGTH} characters, got {len(token)}")
    if not is_loopback(host) and not token:
        raise HPAError(
            f"--host {host} listens beyond this machine: pass --token (or set HPA_SERVE_TOKEN) "
            "so that only clients with the token can use the API"
        )


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).digest()


def check_token(authorization: str | None, token: str | None) -> None:
    """Accept ``Authorization: Bearer <token>``; compared in constant time.

    Both sides are hashed first, so the comparison takes the same time
    whatever the length of the token given.

    >>> check_token(None, None)
    >>> check_token("Bearer s3cret-token-0123456", "s3cret-token-0123456")
    >>> check_token("Bearer wrong", "s3cret-token-0123456")
    Traceback (most recent call last):
    ...
    hpa_classify.workflows.serve.settings.Unauthorized: a valid bearer token is required (Authorization: Bearer TOKEN)
    """
    if token is None:
        return
    scheme, _, given = (authorization or "").partition(" ")
    ok = hmac.compare_digest(_digest(given.strip()), _digest(token))
    if not ok or scheme.lower() != "bearer":
        raise Unauthorized("a valid bearer token is required (Authorization: Bearer TOKEN)")
