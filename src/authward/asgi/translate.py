"""The one translation between Starlette and the core: requests in, responses out, and the one
place where an unexpected exception becomes a JSON ``server_error``.

Spec: RFC 9110 §5 (fields), §15.5.6 (405 and ``Allow``), §15.5.14 (413); RFC 6749 §5.2 (JSON
errors), §3.1/§3.2 and Appendix B (``application/x-www-form-urlencoded`` bodies, UTF-8);
ASGI HTTP connection scope (``root_path``: where the app is mounted).

Requests: method, the absolute URL the client used (scheme and ``Host`` as received, the mount
point from ``root_path`` included), the peer address (the host part of the ASGI ``client``
pair, which uvicorn ``--proxy-headers`` rewrites from trusted proxies; ``None`` when the
server gives none), headers, the query (``parse_qsl``, blank values kept,
duplicates kept) and, only for ``application/x-www-form-urlencoded``, the form body (parsed
strictly, duplicates kept). Other bodies are read (for the size limit) and ignored; core never
sees JSON bodies from here. A body over the limit is ``invalid_request`` with 413; a body or
query that is not UTF-8 or not form syntax is ``invalid_request`` with 400. Proxy headers
(``Forwarded``, ``X-Forwarded-*``) are the ASGI server's business (uvicorn ``--proxy-headers``).

Responses: a core ``Response`` becomes bytes exactly as ``authward.core.http`` describes
(JSON as UTF-8 ``application/json`` unless the headers name another type; ``location`` as the
``Location`` header; repeated header fields kept).

Errors: :class:`ServerErrorGuard` wraps the whole app. Anything an endpoint or page lets escape
is logged once, with its type, a random request id, method, path and stack, but never its
message, the query or the body (they may carry secrets), and answered with
``{"error": "server_error"}`` (500, ``X-Request-Id``). An exception that means the database
cannot be reached is instead ``temporarily_unavailable`` (503, ``Retry-After``), logged once per
outage without a stack. Starlette's own 404/405 become JSON ``invalid_request`` errors keeping
their ``Allow`` header.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import Final
from urllib.parse import parse_qsl, quote

from starlette.exceptions import HTTPException
from starlette.requests import Request as StarletteRequest
from starlette.responses import Response as StarletteResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from authward.core.errors import (
    InvalidRequestError,
    OAuthError,
    ServerError,
    TemporarilyUnavailableError,
)
from authward.core.http import Headers, MultiDict, Request, Response, error_response
from authward.core.server import AuthorizationServer
from authward.stores.sql.availability import is_database_unavailable

__all__ = [
    "DATABASE_RETRY_AFTER_SECONDS",
    "MAX_BODY_BYTES",
    "CoreEndpoint",
    "Endpoint",
    "Handler",
    "ServerErrorGuard",
    "client_address",
    "endpoint",
    "external_url",
    "http_exception_response",
    "read_request",
    "send_response",
    "to_starlette",
]

#: ``Retry-After`` seconds on a 503 answered while the database is unreachable.
DATABASE_RETRY_AFTER_SECONDS: Final = 5
#: The largest request body accepted (OAuth form posts are small).
MAX_BODY_BYTES: Final = 64 * 1024

Handler = Callable[[AuthorizationServer, Request], Awaitable[Response]]
Endpoint = Callable[[StarletteRequest], Awaitable[StarletteResponse]]

_FORM: Final = "application/x-www-form-urlencoded"
_MAX_FIELDS: Final = 1000
_URL_SAFE: Final = "!#$%&'()*+,/:;=?@[]~-._"
_PATH_SAFE: Final = "/!$&'()*+,;=:@-._~"
#: Header fields the translation writes itself (from the body, ``json`` and ``location``).
_SET_BY_TRANSLATION: Final = frozenset({"content-type", "content-length", "location"})
#: The one encoder of JSON bodies (``json.dumps`` with arguments builds one per call).
_JSON: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
_LOG = logging.getLogger("authward.asgi")


def external_url(scope: Scope) -> str:
    """The absolute URL the client requested, including the mount point (``root_path``).

    ASGI puts the full path in ``path``; a server that still leaves the ``root_path`` out of
    ``path`` gets it prepended.
    """
    scheme = str(scope.get("scheme", "http"))
    host = None
    for name, value in scope.get("headers", ()):
        if name == b"host":
            host = value.decode("latin-1")
            break
    if not host:
        server = scope.get("server")
        if server:
            name, port = server[0], server[1]
            default = {"http": 80, "https": 443}.get(scheme)
            host = name if port in (None, default) else f"{name}:{port}"
        else:
            host = "localhost"
    path = str(scope.get("path", "/"))
    root = str(scope.get("root_path", "")).rstrip("/")
    if root and not (path == root or path.startswith(root + "/")):
        path = root + path
    url = f"{scheme}://{host}{quote(path, safe=_PATH_SAFE)}"
    query = scope.get("query_string", b"")
    if query:
        url += "?" + query.decode("latin-1")
    return url


def _bad_request(description: str, *, status: int = 400) -> InvalidRequestError:
    error = InvalidRequestError(description)
    error.status = status
    return error


class _ClientDisconnectedError(Exception):
    """The client went away before its request body arrived: there is no one to answer."""


def _declared_too_large(declared: str | None, limit: int) -> bool:
    return declared is not None and declared.strip().isdigit() and int(declared) > limit


async def _read_body(request: StarletteRequest, limit: int) -> bytes:
    if _declared_too_large(request.headers.get("content-length"), limit):
        raise _bad_request(f"the request body exceeds {limit} bytes", status=413)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _bad_request(f"the request body exceeds {limit} bytes", status=413)
        chunks.append(chunk)
    return b"".join(chunks)


async def _receive_body(receive: Receive, headers: Headers, limit: int) -> bytes:
    """The whole body from ASGI ``receive`` (at most ``limit`` bytes, else 413)."""
    if _declared_too_large(headers.get("content-length"), limit):
        raise _bad_request(f"the request body exceeds {limit} bytes", status=413)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise _ClientDisconnectedError
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _bad_request(f"the request body exceeds {limit} bytes", status=413)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _parse(text: str, *, strict: bool) -> MultiDict:
    return MultiDict.of_strings(
        tuple(
            parse_qsl(
                text,
                keep_blank_values=True,
                strict_parsing=strict,
                encoding="utf-8",
                errors="strict",
                max_num_fields=_MAX_FIELDS,
            )
        )
    )


def _headers(scope: Scope) -> Headers:
    return Headers.of_strings(
        tuple(
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, value in scope.get("headers", ())
        )
    )


#: No parameters (immutable, so one value serves every request without a query or form).
_NO_PARAMS: Final = MultiDict()


def _query(scope: Scope) -> MultiDict:
    raw_query = scope.get("query_string", b"")
    if not raw_query:
        return _NO_PARAMS
    try:
        return _parse(raw_query.decode("ascii"), strict=False)
    except (UnicodeDecodeError, ValueError):
        raise _bad_request("the query string is not valid UTF-8 form encoding") from None


def _core_request(scope: Scope, headers: Headers, query: MultiDict, body: bytes) -> Request:
    form = _NO_PARAMS
    media_type = (headers.get("content-type") or "").split(";")[0].strip().lower()
    if media_type == _FORM and body:
        try:
            form = _parse(body.decode("utf-8"), strict=True)
        except (UnicodeDecodeError, ValueError):
            raise _bad_request(
                "the body is not valid UTF-8 application/x-www-form-urlencoded"
            ) from None
    return Request(
        method=str(scope.get("method", "GET")).upper(),
        url=external_url(scope),
        headers=headers,
        query=query,
        form=form,
        client_address=client_address(scope),
    )


async def read_request(
    request: StarletteRequest, *, max_body_bytes: int = MAX_BODY_BYTES
) -> Request:
    """The core ``Request`` for ``request``; ``InvalidRequestError`` for a bad query or body."""
    scope = request.scope
    query = _query(scope)  # a bad query is refused before the body is read
    body = await _read_body(request, max_body_bytes)
    return _core_request(scope, _headers(scope), query, body)


def client_address(scope: Scope) -> str | None:
    """The peer's host from the ASGI ``client`` pair (``(host, port)``), or ``None``."""
    peer = scope.get("client")
    if not peer:
        return None
    host = peer[0]
    return host if isinstance(host, str) and host else None


def _response_parts(response: Response) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """The body and the raw header fields (``content-length`` first) of ``response``."""
    content_type = response.headers.get("content-type")
    body = b""
    if response.json is not None:
        body = _JSON.encode(response.json).encode("utf-8")
        content_type = content_type or "application/json"
    raw = [(b"content-length", str(len(body)).encode("ascii"))]
    for name, value in response.headers:
        lowered = name.lower()
        if lowered in _SET_BY_TRANSLATION:
            continue
        raw.append((lowered.encode("latin-1"), value.encode("latin-1")))
    if content_type:
        raw.append((b"content-type", content_type.encode("latin-1")))
    if response.location is not None:
        raw.append((b"location", quote(response.location, safe=_URL_SAFE).encode("ascii")))
    return body, raw


def to_starlette(response: Response) -> StarletteResponse:
    """The Starlette response for a core ``response`` (see the module docstring)."""
    body, raw = _response_parts(response)
    out = StarletteResponse(content=body, status_code=response.status)
    out.raw_headers = raw
    return out


async def send_response(response: Response, send: Send) -> None:
    """Send core ``response`` on ASGI ``send``, byte for byte what :func:`to_starlette` sends."""
    body, raw = _response_parts(response)
    await send({"type": "http.response.start", "status": response.status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class CoreEndpoint:
    """An ASGI app running one core ``handler`` on ``server`` (see :func:`endpoint`).

    It reads the request straight from the ASGI scope and ``receive`` and writes the response
    straight to ``send``: no framework request or response object in between, since these are
    the endpoints every token request goes through.
    """

    __slots__ = ("_handler", "_max_body_bytes", "_server")

    def __init__(self, server: AuthorizationServer, handler: Handler, max_body_bytes: int) -> None:
        self._server = server
        self._handler = handler
        self._max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            headers = _headers(scope)
            query = _query(scope)  # a bad query is refused before the body is read
            body = await _receive_body(receive, headers, self._max_body_bytes)
            request = _core_request(scope, headers, query, body)
            response = await self._handler(self._server, request)
        except _ClientDisconnectedError:
            return
        except OAuthError as error:
            response = error_response(error)
        await send_response(response, send)


def endpoint(
    server: AuthorizationServer, handler: Handler, *, max_body_bytes: int = MAX_BODY_BYTES
) -> CoreEndpoint:
    """An ASGI endpoint (for a Starlette ``Route``) running core ``handler`` on ``server``.

    A request the transport cannot read is answered with its ``invalid_request``; an
    ``OAuthError`` a handler lets escape is rendered as its JSON error. Any other exception
    propagates to :class:`ServerErrorGuard`. A client that disconnects before its body
    arrived gets no answer.
    """
    return CoreEndpoint(server, handler, max_body_bytes)


_HTTP_DESCRIPTIONS: Final = {404: "no such endpoint", 405: "method not allowed"}


async def http_exception_response(
    request: StarletteRequest, exc: Exception
) -> StarletteResponse:
    """Starlette's routing errors (404, 405 with ``Allow``) as JSON ``invalid_request``."""
    assert isinstance(exc, HTTPException)
    error = _bad_request(_HTTP_DESCRIPTIONS.get(exc.status_code, "the request was refused"),
                         status=exc.status_code)
    response = error_response(error)
    extra = tuple((exc.headers or {}).items())
    return to_starlette(Response(response.status, response.headers.added(extra), response.json))


class ServerErrorGuard:
    """ASGI middleware: the one place an unexpected exception becomes ``server_error`` (500).

    Logs on ``logger`` (``authward.asgi``) with the exception type, a request id, method and
    path and the stack frames, never the exception message, the query or the body. If the
    response had already started the exception is only logged.

    A failure that means the database cannot be reached (:func:`is_database_unavailable`) is
    not a bug: it is answered ``503 temporarily_unavailable`` with ``Retry-After`` and logged
    once per outage (one line when the first request fails, none for the requests that fail
    while it lasts; an outage is over after ``outage_quiet_seconds`` without such a failure).
    """

    def __init__(
        self,
        app: ASGIApp,
        logger: logging.Logger | None = None,
        *,
        retry_after_seconds: int = DATABASE_RETRY_AFTER_SECONDS,
        outage_quiet_seconds: float = 30.0,
    ) -> None:
        self.app = app
        self._logger = logger or _LOG
        self._retry_after = retry_after_seconds
        self._quiet = outage_quiet_seconds
        self._last_outage_failure: float | None = None
        self._refused_in_outage = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if is_database_unavailable(exc):
                self._note_outage(exc)
                if not started:
                    await send_response(self._unavailable(), send)
                return
            request_id = secrets.token_hex(8)
            self._logger.error(
                "unexpected %s in %s %s (request id %s)\n%s",
                type(exc).__name__,
                scope.get("method"),
                scope.get("path"),
                request_id,
                "".join(traceback.format_tb(exc.__traceback__)),
            )
            if started:
                return
            response = error_response(ServerError())
            await send_response(
                Response(
                    response.status,
                    response.headers.added((("X-Request-Id", request_id),)),
                    response.json,
                ),
                send,
            )

    def _unavailable(self) -> Response:
        error = error_response(
            TemporarilyUnavailableError("the database is unavailable; retry later")
        )
        headers = error.headers.added((("Retry-After", str(self._retry_after)),))
        return Response(error.status, headers, error.json)

    def _note_outage(self, exc: Exception) -> None:
        now = time.monotonic()
        last, self._last_outage_failure = self._last_outage_failure, now
        if last is not None and now - last <= self._quiet:
            self._refused_in_outage += 1
            return
        previous, self._refused_in_outage = self._refused_in_outage, 1
        self._logger.error(
            "database unavailable (%s): answering 503 with Retry-After %d s until it recovers%s",
            type(exc).__name__,
            self._retry_after,
            f" (the previous outage refused {previous} requests)" if previous else "",
        )
