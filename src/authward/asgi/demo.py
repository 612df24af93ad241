"""The demo callback page: where ``authward serve``'s demo clients land after authorizing.

Spec: RFC 6749 §4.1.2 and §4.1.2.1 (the authorization response: ``code``, ``state`` or
``error``), RFC 9207 §2 (``iss``). Demo mode only: a real client receives the response at its
own redirect URI.

``GET /demo/callback`` shows the parameters of the authorization response it received, so a
person can finish a code flow in a browser and exchange the code with ``curl``. It verifies
nothing (it is not a client) and never stores anything; the page is ``no-store`` and not framed.
"""

from __future__ import annotations

from typing import Final

from starlette.requests import Request as StarletteRequest
from starlette.responses import Response
from starlette.routing import Route

from authward.asgi.pages import Pages
from authward.asgi.translate import external_url
from authward.core.server import AuthorizationServer

__all__ = ["DEMO_CALLBACK_PATH", "demo_routes"]

#: Where the demo callback page is served, relative to the issuer.
DEMO_CALLBACK_PATH: Final = "/demo/callback"
_SHOWN: Final = ("code", "state", "iss", "error", "error_description")


def demo_routes(server: AuthorizationServer, *, client_id: str = "demo-public") -> list[Route]:
    """The demo callback route for ``server`` (add it with ``create_app(extra_routes=...)``).

    The page's ``curl`` hint names ``client_id`` (the demo public client) and the page's own
    URL as the redirect URI.
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

    return [Route(DEMO_CALLBACK_PATH, callback, methods=["GET"])]
