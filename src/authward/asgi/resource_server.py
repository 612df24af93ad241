"""Protecting a host's own ASGI routes with authward access tokens, verified locally.

Spec: RFC 6750 §2.1, §3 (Bearer, challenges), RFC 9449 §7.1, §9 (DPoP, nonces), RFC 9068 §4;
the checks themselves live in ``authward.core.resource`` (``ResourceVerifier``), so this module
only moves requests and answers across the ASGI boundary.

Two shapes, one verifier:

* :class:`RequireAccessToken`, a pure ASGI middleware: every ``http`` request must carry a valid
  access token with ``required_scopes``; a refused request is answered right here (401/400/403
  with ``WWW-Authenticate`` challenges, ``DPoP-Nonce`` when needed) and never reaches the app; an
  authorized one reaches it with the ``VerifiedAccessToken`` in ``scope["state"][STATE_KEY]``
  (``request.state.authward_token`` in Starlette and FastAPI). ``lifespan`` passes through;
  ``websocket`` connections are closed with 1008 (policy violation) because this helper does not
  verify them: fail closed rather than leave them open.
* :class:`AccessTokenDependency`, a callable for one route: ``await dependency(request)`` returns
  the verified token or raises Starlette's ``HTTPException`` carrying the status and the
  challenge headers (all challenges in one ``WWW-Authenticate`` field, comma-separated, as RFC
  9110 §11.6.1 allows). Its signature (``request: starlette.requests.Request``) is what FastAPI's
  ``Depends`` injects, so ``Depends(AccessTokenDependency(verifier, ("read",)))`` works as is.

Neither reads the request body: a token in a form body is not looked for (RFC 6750 §2.2 is not
supported); a token in the query is refused with ``invalid_request`` by the verifier.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection
from starlette.requests import Request as StarletteRequest
from starlette.types import ASGIApp, Receive, Scope, Send

from authward.asgi.translate import external_url, to_starlette
from authward.core.http import Headers, Request, Response
from authward.core.resource import Authorized, ResourceVerifier
from authward.core.tokens import VerifiedAccessToken

__all__ = ["STATE_KEY", "AccessTokenDependency", "RequireAccessToken", "core_request"]

#: Where the middleware puts the verified token: ``scope["state"]["authward_token"]``.
STATE_KEY: Final = "authward_token"
_POLICY_VIOLATION: Final = 1008


def core_request(scope: Scope) -> Request:
    """The core ``Request`` of an HTTP ``scope``: method, the URL the client used (with the
    mount point), headers and query; no body."""
    headers = Headers(
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in scope.get("headers", ())
    )
    return Request.build(str(scope.get("method", "GET")).upper(), external_url(scope),
                         headers=headers)


class RequireAccessToken:
    """ASGI middleware: only requests with a valid access token reach ``app``.

    ``required_scopes`` must all be granted to the token (``insufficient_scope`` otherwise).
    Use directly (``RequireAccessToken(app, verifier)``) or through Starlette's
    ``Middleware(RequireAccessToken, verifier=..., required_scopes=(...))``.
    """

    def __init__(
        self,
        app: ASGIApp,
        verifier: ResourceVerifier,
        required_scopes: Iterable[str] = (),
    ) -> None:
        self._app = app
        self._verifier = verifier
        self._required = tuple(required_scopes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Verify ``http`` requests, pass ``lifespan`` on, close ``websocket`` connections."""
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": _POLICY_VIOLATION})
            return
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        outcome = await self._verifier.authorize(
            core_request(scope), required_scopes=self._required
        )
        if not isinstance(outcome, Authorized):
            await to_starlette(outcome.response)(scope, receive, send)
            return
        state = dict(scope.get("state") or {})
        state[STATE_KEY] = outcome.token
        await self._app({**scope, "state": state}, receive, send)


class AccessTokenDependency:
    """A per-route check: ``await dependency(request)`` gives the verified access token.

    Raises ``starlette.exceptions.HTTPException`` (FastAPI handles it too) with the refusal's
    status, ``detail`` (the error description, or the error code) and headers
    (``WWW-Authenticate``, ``Cache-Control: no-store``, ``DPoP-Nonce``).
    """

    def __init__(self, verifier: ResourceVerifier, required_scopes: Iterable[str] = ()) -> None:
        self._verifier = verifier
        self._required = tuple(required_scopes)

    async def __call__(self, request: StarletteRequest) -> VerifiedAccessToken:
        """Verify ``request``'s access token or raise ``HTTPException``."""
        return await self.verify(request)

    async def verify(self, connection: HTTPConnection) -> VerifiedAccessToken:
        """As ``__call__``, for any HTTP connection (a request or a websocket handshake)."""
        outcome = await self._verifier.authorize(
            core_request(connection.scope), required_scopes=self._required
        )
        if isinstance(outcome, Authorized):
            return outcome.token
        detail = "authentication required"
        if outcome.error is not None:
            detail = outcome.error.description or outcome.error.error
        raise HTTPException(
            status_code=outcome.response.status,
            detail=detail,
            headers=_joined_headers(outcome.response),
        )


def _joined_headers(response: Response) -> dict[str, str]:
    """One value per header name, repeated fields joined with ``", "`` (RFC 9110 §5.3)."""
    joined: dict[str, str] = {}
    for name, value in response.headers:
        joined[name] = f"{joined[name]}, {value}" if name in joined else value
    return joined
