"""The ASGI application: every authward endpoint as a Starlette app a host mounts anywhere.

Spec: RFC 8414 §3 and OIDC Discovery 1.0 §4 (well-known metadata), RFC 7517 §5 (JWKS); the
ASGI lifespan protocol (resources closed on shutdown).

``create_app(server)`` serves the endpoints listed by :func:`endpoint_routes` at
``server.paths`` relative to wherever the app is mounted, so a host that mounts it with
``Mount("/auth", app=create_app(server))`` sets its issuer to ``https://host/auth`` and every
advertised URL follows. Routing errors are JSON (405 keeps ``Allow``); unexpected exceptions
become ``server_error`` in ``authward.asgi.translate`` and nowhere else.

The authorization endpoint is a browser (front-channel) route: a ``ConsentPrompt`` it returns is
rendered as the consent page, and an error it answers directly (the client or redirect URI
cannot be trusted, so no redirect is possible) becomes the HTML error page, with the same
status and OAuth error code, when the request accepts ``text/html``; JSON otherwise. Every
other endpoint answers JSON only. Optional endpoints are served only while their
``settings.features`` switch is on, exactly as discovery lists them.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol, TypeAlias, runtime_checkable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request as StarletteRequest
from starlette.responses import Response as StarletteResponse
from starlette.routing import BaseRoute, Route

from authward.asgi import device_pages
from authward.asgi.logout_pages import LogoutPages
from authward.asgi.pages import LoginPage, Pages
from authward.asgi.translate import (
    MAX_BODY_BYTES,
    Endpoint,
    Handler,
    ServerErrorGuard,
    endpoint,
    http_exception_response,
    read_request,
    to_starlette,
)
from authward.core.endpoints import (
    authorize,
    device_authorization,
    discovery,
    introspection,
    jwks,
    par,
    revocation,
    token,
    userinfo,
)
from authward.core.endpoints.authorize import ConsentPrompt
from authward.core.errors import OAuthError
from authward.core.http import Request, Response, error_response
from authward.core.logout import LogoutDispatcher
from authward.core.server import AuthorizationServer

__all__ = [
    "App",
    "BrowserHandler",
    "EndpointRoute",
    "create_app",
    "endpoint_routes",
    "wants_html",
]

#: The application type ``create_app`` returns (for callers outside the ``asgi`` layer).
App: TypeAlias = Starlette

#: A front-channel handler: answers with a response or asks the end-user for consent.
BrowserHandler = Callable[[AuthorizationServer, Request], Awaitable[Response | ConsentPrompt]]

_ERROR_TITLE: Final = "The authorization request was refused"

_LOG = logging.getLogger("authward.asgi")


@dataclass(frozen=True, slots=True)
class EndpointRoute:
    """One core endpoint: its ``path`` (relative to the mount point), the HTTP ``methods`` it
    answers (``GET`` implies ``HEAD``) and the core ``handler`` that answers them.

    ``browser`` marks a front-channel endpoint whose handler may return a ``ConsentPrompt``
    (rendered as the consent page) and whose direct errors are HTML for browsers.
    """

    path: str
    methods: tuple[str, ...]
    handler: Handler | BrowserHandler
    browser: bool = False


def endpoint_routes(server: AuthorizationServer) -> list[EndpointRoute]:
    """Every core endpoint the app serves, in routing order (the token endpoint, the busiest,
    first: routing tries each path in turn).

    This is the one list to extend when an endpoint module lands. Optional endpoints follow
    their ``server.settings.features`` switch (the same switches decide what discovery lists).
    """
    paths, features = server.paths, server.settings.features
    routes = [
        EndpointRoute(paths.token, ("POST",), token.handle),
        EndpointRoute(paths.openid_configuration, ("GET",), discovery.handle),
        EndpointRoute(paths.authorization_server_metadata, ("GET",), discovery.handle),
        EndpointRoute(paths.jwks, ("GET",), jwks.handle),
        EndpointRoute(paths.authorization, ("GET", "POST"), authorize.handle, browser=True),
    ]
    if features.pushed_authorization_requests:
        routes.append(EndpointRoute(paths.pushed_authorization_request, ("POST",), par.handle))
    if features.revocation:
        routes.append(EndpointRoute(paths.revocation, ("POST",), revocation.handle))
    if features.introspection:
        routes.append(EndpointRoute(paths.introspection, ("POST",), introspection.handle))
    if features.userinfo:
        routes.append(EndpointRoute(paths.userinfo, ("GET", "POST"), userinfo.handle))
    if features.device_authorization_grant:
        routes.append(
            EndpointRoute(paths.device_authorization, ("POST",), device_authorization.handle)
        )
    return routes


@runtime_checkable
class AsyncClosable(Protocol):
    """A resource closed with ``await resource.aclose()`` (e.g. ``httpx.AsyncClient``)."""

    async def aclose(self) -> None: ...


@runtime_checkable
class AsyncDisposable(Protocol):
    """A resource closed with ``await resource.dispose()`` (e.g. SQLAlchemy ``AsyncEngine``)."""

    async def dispose(self) -> None: ...


Resource = AsyncClosable | AsyncDisposable


def create_app(
    server: AuthorizationServer,
    *,
    login_page: LoginPage | None = None,
    lifespan_resources: Sequence[Resource] = (),
    endpoints: Sequence[EndpointRoute] | None = None,
    extra_routes: Sequence[BaseRoute] = (),
    max_body_bytes: int = MAX_BODY_BYTES,
    logout_dispatcher: LogoutDispatcher | None = None,
) -> Starlette:
    """The Starlette app serving ``server``.

    * ``login_page``: the default login page (``GET``/``POST`` at its ``login_path``); leave it
      out when the host signs users in itself.
    * ``lifespan_resources``: closed in reverse order when the app shuts down (an
      ``AsyncEngine`` is disposed, an ``httpx.AsyncClient`` closed); a failure to close one is
      logged and the others are still closed.
    * ``endpoints``: the core endpoints to serve, :func:`endpoint_routes` by default. Passing
      a list is the seam for hosts and tests that add or replace a handler.
    * ``extra_routes``: further Starlette routes served after the endpoints and the login page
      (``authward serve`` adds its demo callback page here).
    * ``max_body_bytes``: larger request bodies are refused with 413 ``invalid_request``.
    * ``logout_dispatcher``: runs back-channel logout deliveries of the end-session endpoint
      (served while ``features.end_session`` is on) in the background; pass one to await them
      with ``drain()``. Pending deliveries finish when the app shuts down.
    """
    listed = endpoint_routes(server) if endpoints is None else list(endpoints)
    pages = Pages(server, login=login_page, max_body_bytes=max_body_bytes)
    routes: list[BaseRoute] = []
    for item in listed:
        methods = list(item.methods)
        if item.browser:
            page = browser_endpoint(server, item.handler, pages, max_body_bytes=max_body_bytes)
            routes.append(Route(item.path, page, methods=methods))
        else:
            api = endpoint(server, item.handler, max_body_bytes=max_body_bytes)  # type: ignore[arg-type]
            routes.append(Route(item.path, api, methods=methods))
    routes.extend(pages.routes())
    if server.settings.features.device_authorization_grant:
        routes.extend(device_pages.routes(server, pages, max_body_bytes=max_body_bytes))
    resources = list(lifespan_resources)
    if server.settings.features.end_session:  # RP-Initiated + Back-Channel Logout
        logout = LogoutPages(server, pages, dispatcher=logout_dispatcher,
                             max_body_bytes=max_body_bytes)
        routes.extend(logout.routes())
        resources.append(logout.dispatcher)  # closed first: pending deliveries finish
    routes.extend(extra_routes)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await close_resources(resources)

    app = Starlette(
        routes=routes,
        middleware=[Middleware(ServerErrorGuard)],
        exception_handlers={HTTPException: http_exception_response},
        lifespan=lifespan,
    )
    # No redirect from `/token/` to `/token`: Starlette builds that Location from the request's
    # Host and X-Forwarded-Proto, and a client following it re-posts its credentials there.
    app.router.redirect_slashes = False
    return app


async def close_resources(resources: Sequence[Resource]) -> None:
    """Close each resource, last first; errors are logged (type only) and do not stop the rest."""
    for resource in reversed(resources):
        try:
            if isinstance(resource, AsyncClosable):
                await resource.aclose()
            else:
                await resource.dispose()
        except Exception as exc:  # one broken resource must not leak the others
            _LOG.error("closing %s failed: %s", type(resource).__name__, type(exc).__name__)


def browser_endpoint(
    server: AuthorizationServer,
    handler: Handler | BrowserHandler,
    pages: Pages,
    *,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> Endpoint:
    """A Starlette endpoint for a front-channel ``handler`` (the authorization endpoint).

    A ``ConsentPrompt`` is rendered with ``pages.render_consent``. A direct error (a JSON
    error body, no redirect) is the HTML error page when :func:`wants_html` says the request
    accepts HTML, keeping the status and showing the OAuth error code; JSON otherwise.
    Redirects and other responses pass through unchanged.
    """

    async def run(request: StarletteRequest) -> StarletteResponse:
        try:
            core_request = await read_request(request, max_body_bytes=max_body_bytes)
            result = await handler(server, core_request)
        except OAuthError as error:
            result = error_response(error)
        if isinstance(result, ConsentPrompt):
            return pages.render_consent(result)
        body = result.json
        if (
            result.status >= 400
            and body is not None
            and isinstance(body.get("error"), str)
            and wants_html(request.headers.get("accept"))
        ):
            code = str(body["error"])
            description = body.get("error_description")
            message = str(description) if isinstance(description, str) else "Bad request."
            return pages.render_error(
                _ERROR_TITLE, f"{message} (error: {code})", status=result.status
            )
        return to_starlette(result)

    return run


def wants_html(accept: str | None) -> bool:
    """True when the ``Accept`` header lists ``text/html`` (or ``text/*``) with a non-zero
    quality (RFC 9110 §12.5.1); ``*/*`` alone, or no header, means JSON."""
    if not accept:
        return False
    for item in accept.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        if media.lower() not in ("text/html", "text/*"):
            continue
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value.strip())
                except ValueError:
                    quality = 0.0
        if quality > 0:
            return True
    return False
