"""The demo relying-party pages that ``authward serve`` adds in demo mode.

Spec: RFC 6749 §4.1.2 and §4.1.2.1 (the authorization response: ``code``, ``state`` or
``error``), RFC 9207 §2 (``iss``); OIDC RP-Initiated Logout 1.0 §3 (``post_logout_redirect_uri``
with ``state``); OIDC Back-Channel Logout 1.0 §2.4, §2.6, §2.8 (validating a logout token and
answering 200 or 400). Demo mode only: a real client serves these at its own URLs.

* ``GET /demo/callback`` shows the parameters of the authorization response it received, so a
  person can finish a code flow in a browser and exchange the code with ``curl``. It verifies
  nothing (it is not a client) and never stores anything.
* ``GET /demo/signed-out`` is the demo clients' ``post_logout_redirect_uri``: it shows the
  ``state`` it got back after RP-initiated logout.
* ``POST /demo/backchannel-logout`` is the demo clients' ``backchannel_logout_uri``: it
  validates the ``logout_token`` as a relying party must (signature against the server's JWKS,
  ``typ``, ``iss``, ``aud``, ``iat``/``exp``, the ``events`` member, ``sid`` or ``sub``, no
  ``nonce``) and answers 200, or 400 with an error. ``GET`` on the same path lists the claims of
  the last few tokens this process accepted (in memory: a demo, not a relying party).

Every page is ``no-store`` and not framed.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Mapping
from typing import Final

from starlette.requests import Request as StarletteRequest
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from authward.asgi.pages import Pages
from authward.asgi.translate import external_url, read_request
from authward.core.errors import OAuthError
from authward.core.jose import JoseError, validate_claims, verify_jwt
from authward.core.server import AuthorizationServer

__all__ = [
    "DEMO_BACKCHANNEL_LOGOUT_PATH",
    "DEMO_CALLBACK_PATH",
    "DEMO_SIGNED_OUT_PATH",
    "check_logout_token",
    "demo_routes",
]

#: Where the demo pages are served, relative to the issuer.
DEMO_CALLBACK_PATH: Final = "/demo/callback"
DEMO_SIGNED_OUT_PATH: Final = "/demo/signed-out"
DEMO_BACKCHANNEL_LOGOUT_PATH: Final = "/demo/backchannel-logout"
BACKCHANNEL_LOGOUT_EVENT: Final = "http://schemas.openid.net/event/backchannel-logout"
_SHOWN: Final = ("code", "state", "iss", "error", "error_description")
_KEPT_TOKENS: Final = 10
_LOG = logging.getLogger("authward.demo")


def demo_routes(
    server: AuthorizationServer,
    *,
    client_id: str = "demo-public",
    client_ids: tuple[str, ...] = ("demo-public", "demo-confidential"),
) -> list[Route]:
    """The demo routes for ``server`` (add them with ``create_app(extra_routes=...)``).

    The callback page's ``curl`` hint names ``client_id`` (the demo public client) and the
    page's own URL as the redirect URI; the back-channel receiver accepts logout tokens whose
    ``aud`` is one of ``client_ids``.
    """
    pages = Pages(server)
    token_url = server.url(server.paths.token)

    async def callback(request: StarletteRequest) -> Response:
        params = request.query_params
        shown = [(name, params[name]) for name in _SHOWN if params.get(name)]
        failed = bool(params.get("error"))
        return pages.render(
            "demo_callback.html",
            title="Authorization failed" if failed else "Authorization code received",
            params=shown,
            code=params.get("code") or "",
            client_id=client_id,
            redirect_uri=external_url(request.scope).split("?", 1)[0],
            token_url=token_url,
            failed=failed,
        )

    received: deque[Mapping[str, object]] = deque(maxlen=_KEPT_TOKENS)

    async def signed_out(request: StarletteRequest) -> Response:
        return pages.render(
            "demo_signed_out.html", title="Signed out", state=request.query_params.get("state")
        )

    async def backchannel_logout(request: StarletteRequest) -> Response:
        if request.method == "GET":
            return pages.render(
                "demo_logout_tokens.html",
                title="Logout tokens received",
                tokens=[sorted(claims.items()) for claims in reversed(received)],
            )
        try:
            form = (await read_request(request)).form
        except OAuthError:
            return _logout_error("the body is not a form")
        token = form.get("logout_token")
        if not token:
            return _logout_error("the logout_token parameter is missing")
        try:
            claims = check_logout_token(server, token, client_ids=client_ids)
        except JoseError as error:
            return _logout_error(f"logout_token refused: {error}")
        received.append(claims)
        _LOG.info(
            "demo relying party: logout_token accepted for %s (sid %s)",
            claims.get("aud"),
            claims.get("sid"),
        )
        return Response(status_code=200, headers={"Cache-Control": "no-store"})

    return [
        Route(DEMO_CALLBACK_PATH, callback, methods=["GET"]),
        Route(DEMO_SIGNED_OUT_PATH, signed_out, methods=["GET"]),
        Route(DEMO_BACKCHANNEL_LOGOUT_PATH, backchannel_logout, methods=["GET", "POST"]),
    ]


def check_logout_token(
    server: AuthorizationServer, token: str, *, client_ids: tuple[str, ...]
) -> Mapping[str, object]:
    """Validate ``token`` as a relying party among ``client_ids`` must (OIDC Back-Channel
    Logout 1.0 §2.6) and return its claims; ``JoseError`` says why it was refused."""
    now = server.clock.now()
    keys = server.keys.verification_keys(now=now, max_token_lifetime=server.max_token_lifetime)
    verified = verify_jwt(token, keys, algorithms=server.keys.algorithms)
    if verified.header.get("typ") != "logout+jwt":
        raise JoseError("invalid_claim", "typ is not logout+jwt")
    claims = verified.claims
    validate_claims(claims, now=now, leeway=30, issuer=server.issuer, required=("exp", "iat"))
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    if not any(aud in client_ids for aud in audiences):
        raise JoseError("invalid_claim", "aud names no demo client")
    events = claims.get("events")
    if not isinstance(events, dict) or not isinstance(events.get(BACKCHANNEL_LOGOUT_EVENT), dict):
        raise JoseError("invalid_claim", "events lacks the back-channel logout event")
    if "nonce" in claims:
        raise JoseError("invalid_claim", "a logout token must not carry nonce")
    if not isinstance(claims.get("sid"), str) and not isinstance(claims.get("sub"), str):
        raise JoseError("missing_claim", "neither sid nor sub")
    if not isinstance(claims.get("jti"), str):
        raise JoseError("missing_claim", "jti")
    return claims


def _logout_error(description: str) -> Response:
    """Back-Channel Logout 1.0 §2.8: 400 with an OAuth-style error body."""
    return JSONResponse(
        {"error": "invalid_request", "error_description": description},
        status_code=400,
        headers={"Cache-Control": "no-store"},
    )
