"""The ASGI application: every authward endpoint as a Starlette app a host mounts anywhere.

Spec: RFC 8414 §3 and OIDC Discovery 1.0 §4 (well-known metadata), RFC 7517 §5 (JWKS); the
ASGI lifespan protocol (resources closed on shutdown).

``create_app(server)`` serves the endpoints listed by :func:`endpoint_routes` at
``server.paths`` relative to wherever the app is mounted, so a host that mounts it with
``Mount("/auth", app=create_app(server))`` sets its issuer to ``https://host/auth`` and every
advertised URL follows. Routing errors are JSON (405 keeps ``Allow``); unexpected exceptions
become ``server_error`` in ``authward.asgi.translate`` and nowhere else.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Route

from authward.asgi.pages import LoginPage, Pages
from authward.asgi.translate import (
    MAX_BODY_BYTES,
    Handler,
    ServerErrorGuard,
    endpoint,
    http_exception_response,
)
from authward.core.endpoints import discovery, jwks
from authward.core.server import AuthorizationServer

__all__ = ["EndpointRoute", "create_app", "endpoint_routes"]

_LOG = logging.getLogger("authward.asgi")


@dataclass(frozen=True, slots=True)
class EndpointRoute:
    """One core endpoint: its ``path`` (relative to the mount point), the HTTP ``methods`` it
    answers (``GET`` implies ``HEAD``) and the core ``handler`` that answers them."""

    path: str
    methods: tuple[str, ...]
    handler: Handler


def endpoint_routes(server: AuthorizationServer) -> list[EndpointRoute]:
    """Every core endpoint the app serves, in routing order.

    This is the one list to extend when an endpoint module lands: add
    ``EndpointRoute(server.paths.token, ("POST",), token.handle)`` (and the feature switch
    that guards it, e.g. ``server.settings.features.revocation``) here.
    """
    paths = server.paths
    return [
        EndpointRoute(paths.openid_configuration, ("GET",), discovery.handle),
        EndpointRoute(paths.authorization_server_metadata, ("GET",), discovery.handle),
        EndpointRoute(paths.jwks, ("GET",), jwks.handle),
    ]


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
    max_body_bytes: int = MAX_BODY_BYTES,
) -> Starlette:
    """The Starlette app serving ``server``.

    * ``login_page``: the default login page (``GET``/``POST`` at its ``login_path``); leave it
      out when the host signs users in itself.
    * ``lifespan_resources``: closed in reverse order when the app shuts down (an
      ``AsyncEngine`` is disposed, an ``httpx.AsyncClient`` closed); a failure to close one is
      logged and the others are still closed.
    * ``endpoints``: the core endpoints to serve, :func:`endpoint_routes` by default. Passing
      a list is the seam for hosts and tests that add or replace a handler.
    * ``max_body_bytes``: larger request bodies are refused with 413 ``invalid_request``.
    """
    listed = endpoint_routes(server) if endpoints is None else list(endpoints)
    routes: list[BaseRoute] = [
        Route(
            item.path,
            endpoint(server, item.handler, max_body_bytes=max_body_bytes),
            methods=list(item.methods),
        )
        for item in listed
    ]
    if login_page is not None:
        routes.extend(Pages(server, login=login_page, max_body_bytes=max_body_bytes).routes())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await close_resources(lifespan_resources)

    return Starlette(
        routes=routes,
        middleware=[Middleware(ServerErrorGuard)],
        exception_handlers={HTTPException: http_exception_response},
        lifespan=lifespan,
    )


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
