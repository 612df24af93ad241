"""The ASGI layer: the Starlette app, request/response translation and the HTML pages.

Spec: authward ARCHITECTURE.md (``asgi``: the only layer that knows Starlette).
"""

from __future__ import annotations

from authward.asgi.app import EndpointRoute, create_app, endpoint_routes
from authward.asgi.pages import LoginPage, Pages

__all__ = ["EndpointRoute", "LoginPage", "Pages", "create_app", "endpoint_routes"]
