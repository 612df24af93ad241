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
``{"error": "server_error"}`` (500, ``X-Request-Id``). Starlette's own 404/405 become JSON
``invalid_request`` errors keeping their ``Allow`` header.
"""

from __future__ import annotations

import json
import logging
import secrets
import traceback
from collections.abc import Awaitable, Callable
from typing import Final
from urllib.parse import parse_qsl, quote

from starlette.exceptions import HTTPException
from starlette.requests import Request as StarletteRequest
from starlette.responses import Response as StarletteResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from authward.core.errors import InvalidRequestError, OAuthError, ServerError
from authward.core.http import Headers, MultiDict, Request, Response, error_response
from authward.core.server import AuthorizationServer

__all__ = [
    "MAX_BODY_BYTES",
    "Endpoint",
    "Handler",
    "ServerErrorGuard",
    "client_address",
    "endpoint",
    "external_url",
    "http_exception_response",
    "read_request",
    "to_starlette",
]

#: The largest request body accepted (OAuth form posts are small).
MAX_BODY_BYTES: Final = 64 * 1024

Handler = Callable[[AuthorizationServer, Request], Awaitable[Response]]
Endpoint = Callable[[StarletteRequest], Awaitable[StarletteResponse]]

_FORM: Final = "application/x-www-form-urlencoded"
_MAX_FIELDS: Final = 1000
_URL_SAFE: Final = "!#$%&'()*+,/:;=?@[]~-._"
_PATH_SAFE: Final = "/!$&'()*+,;=:@-._~"
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


async def _read_body(request: StarletteRequest, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise _bad_request(f"the request body exceeds {limit} bytes", status=413)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _bad_request(f"the request body exceeds {limit} bytes", status=413)
        chunks.append(chunk)
    return b"".join(chunks)


def _parse(text: str, *, strict: bool) -> MultiDict:
    return MultiDict(
        parse_qsl(
            text,
            keep_blank_values=True,
            strict_parsing=strict,
            encoding="utf-8",
            errors="strict",
            max_num_fields=_MAX_FIELDS,
        )
    )


async def read_request(
    request: StarletteRequest, *, max_body_bytes: int = MAX_BODY_BYTES
) -> Request:
    """The core ``Request`` for ``request``; ``InvalidRequestError`` for a bad query or body."""
    scope = request.scope
    try:
        query = _parse(scope.get("query_string", b"").decode("ascii"), strict=False)
    except (UnicodeDecodeError, ValueError):
        raise _bad_request("the query string is not valid UTF-8 form encoding") from None
    body = await _read_body(request, max_body_bytes)
    form = MultiDict()
    media_type = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if media_type == _FORM and body:
        try:
            form = _parse(body.decode("utf-8"), strict=True)
        except (UnicodeDecodeError, ValueError):
            raise _bad_request(
                "the body is not valid UTF-8 application/x-www-form-urlencoded"
            ) from None
    headers = Headers(
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in scope.get("headers", ())
    )
    return Request(
        method=str(scope.get("method", "GET")).upper(),
        url=external_url(scope),
        headers=headers,
        query=query,
        form=form,
        client_address=client_address(scope),
    )


def client_address(scope: Scope) -> str | None:
    """The peer's host from the ASGI ``client`` pair (``(host, port)``), or ``None``."""
    peer = scope.get("client")
    if not peer:
        return None
    host = peer[0]
    return host if isinstance(host, str) and host else None


def to_starlette(response: Response) -> StarletteResponse:
    """The Starlette response for a core ``response`` (see the module docstring)."""
    content_type = response.headers.get("content-type")
    body = b""
    if response.json is not None:
        body = json.dumps(
            response.json, ensure_ascii=False, separators=(",", ":"), allow_nan=False
        ).encode("utf-8")
        content_type = content_type or "application/json"
    out = StarletteResponse(content=body, status_code=response.status)
    raw = [(k, v) for k, v in out.raw_headers if k == b"content-length"]
    for name, value in response.headers:
        if name.lower() in ("content-type", "content-length", "location"):
            continue
        raw.append((name.lower().encode("latin-1"), value.encode("latin-1")))
    if content_type:
        raw.append((b"content-type", content_type.encode("latin-1")))
    if response.location is not None:
        raw.append((b"location", quote(response.location, safe=_URL_SAFE).encode("ascii")))
    out.raw_headers = raw
    return out


def endpoint(
    server: AuthorizationServer, handler: Handler, *, max_body_bytes: int = MAX_BODY_BYTES
) -> Endpoint:
    """A Starlette endpoint running core ``handler`` on ``server``.

    A request the transport cannot read is answered with its ``invalid_request``; an
    ``OAuthError`` a handler lets escape is rendered as its JSON error. Any other exception
    propagates to :class:`ServerErrorGuard`.
    """

    async def run(request: StarletteRequest) -> StarletteResponse:
        try:
            core_request = await read_request(request, max_body_bytes=max_body_bytes)
            core_response = await handler(server, core_request)
        except OAuthError as error:
            core_response = error_response(error)
        return to_starlette(core_response)

    return run


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
    """

    def __init__(self, app: ASGIApp, logger: logging.Logger | None = None) -> None:
        self.app = app
        self._logger = logger or _LOG

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
            response = to_starlette(error_response(ServerError()))
            response.headers["X-Request-Id"] = request_id
            await response(scope, receive, send)
