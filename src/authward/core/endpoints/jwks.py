"""The public JSON Web Key Set clients and resource servers verify our signatures with.

Spec: RFC 7517 §5 (JWK Set), §8.5.1 (``application/jwk-set+json``); RFC 8414 §2 (``jwks_uri``);
OIDC Core 1.0 §10.1.1 (rotation: the next key is published before it signs, retired keys stay
until every token they signed has expired).

Only public members are served (``KeySet.public_jwks``). The short cache lifetime keeps a
rotated-in key visible to verifiers well before it starts signing.
"""

from __future__ import annotations

from typing import Final

from authward.core.http import Request, Response, json_response
from authward.core.server import AuthorizationServer

__all__ = ["CACHE_SECONDS", "CONTENT_TYPE", "handle"]

CONTENT_TYPE: Final = "application/jwk-set+json"
#: How long verifiers may cache the set (``Cache-Control: public, max-age``).
CACHE_SECONDS: Final = 300


async def handle(server: AuthorizationServer, request: Request) -> Response:
    """Answer a GET with the keys that are (or are about to be, or were recently) in use."""
    jwks = server.keys.public_jwks(
        now=server.clock.now(), max_token_lifetime=server.max_token_lifetime
    )
    return json_response(
        jwks,
        no_store=False,
        headers=(
            ("Content-Type", CONTENT_TYPE),
            ("Cache-Control", f"public, max-age={CACHE_SECONDS}"),
        ),
    )
