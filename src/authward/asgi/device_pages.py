"""The device verification pages: enter the user code, approve or deny, done.

Spec: RFC 8628 §3.3 (user interaction), §3.3.1 (``verification_uri_complete``: the code is
prefilled, never acted on by a GET), §5.1 (brute force: 429 with ``Retry-After``), §5.4 (the
user sees the client and scopes); RFC 6749 §10.12 (CSRF double submit); RFC 6585 §4 (429).

``GET <device_verification>`` (``/device``): a signed-out user is redirected to the host's
login page with a ``return_to`` that comes back here (keeping ``user_code``); a signed-in user
gets the code-entry form, prefilled from ``?user_code=``. ``POST`` with ``user_code`` (and no
``decision``) looks the code up and shows the client and scopes with Approve / Deny; ``POST``
with ``decision=approve`` or ``deny`` decides (an explicit POST, never a GET) and shows the done
page. Every form carries the CSRF token of :meth:`Pages.render_form`; a form without a genuine
token is refused (400) before any lookup. The decisions live in
``authward.core.endpoints.device_verification``.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import urlencode

from starlette.requests import Request as StarletteRequest
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from authward.asgi.pages import SCOPE_DESCRIPTIONS, Pages
from authward.asgi.translate import MAX_BODY_BYTES, read_request
from authward.core.endpoints.device_verification import (
    CodeRefused,
    DeviceApproved,
    DevicePrompt,
    TooManyAttempts,
    decide,
    look_up,
)
from authward.core.errors import OAuthError
from authward.core.http import Request as CoreRequest
from authward.core.server import AuthorizationServer

__all__ = ["routes"]

_TITLE: Final = "Connect a device"
_MAX_CODE_CHARS: Final = 64
_MESSAGES: Final = {
    "malformed": "That is not a valid code. Check the code shown on your device.",
    "unknown": "That code was not recognised. Check the code shown on your device.",
    "expired": "That code has expired. Start again on your device to get a new one.",
    "decided": "That code was already used. Start again on your device to get a new one.",
}
_STALE_FORM: Final = "The form expired. Please enter the code again."


def routes(
    server: AuthorizationServer, pages: Pages, *, max_body_bytes: int = MAX_BODY_BYTES
) -> list[Route]:
    """The verification page route at ``server.paths.device_verification`` (GET and POST)."""
    path = server.paths.device_verification

    async def page(request: StarletteRequest) -> Response:
        try:
            core = await read_request(request, max_body_bytes=max_body_bytes)
        except OAuthError as error:
            return pages.render_error(
                "Bad request", "The form could not be read.", status=error.status
            )
        return await _answer(server, pages, core)

    return [Route(path, page, methods=["GET", "POST"])]


async def _answer(server: AuthorizationServer, pages: Pages, request: CoreRequest) -> Response:
    params = request.form if request.method == "POST" else request.query
    raw_code = (params.get("user_code") or "")[:_MAX_CODE_CHARS]
    authn = await server.policy.login.authenticated(request)
    if authn is None:
        here = server.url(server.paths.device_verification)
        return_to = here + ("?" + urlencode({"user_code": raw_code}) if raw_code else "")
        response = RedirectResponse(server.policy.login.login_url(return_to), status_code=303)
        response.headers["Cache-Control"] = "no-store"
        return response
    if request.method != "POST":
        return _entry(server, pages, raw_code)
    if not pages.form_is_genuine(request):
        return _entry(server, pages, raw_code, message=_STALE_FORM, status=400)
    decision = params.get("decision")
    if decision is None:
        found = await look_up(server, authn, raw_code)
        if isinstance(found, DevicePrompt):
            return _confirm(server, pages, found)
        return _refused(server, pages, raw_code, found)
    if decision not in ("approve", "deny"):
        return _entry(server, pages, raw_code, message=_MESSAGES["malformed"], status=400)
    outcome = await decide(server, authn, raw_code, "approve" if decision == "approve" else "deny")
    if isinstance(outcome, CodeRefused | TooManyAttempts):
        return _refused(server, pages, raw_code, outcome)
    approved = isinstance(outcome, DeviceApproved)
    client = outcome.client
    done = pages.render(
        "device_done.html",
        title="Device connected" if approved else "Access denied",
        approved=approved,
        client_name=client.client_name or client.client_id,
    )
    pages.forget_csrf(done)
    return done


def _entry(
    server: AuthorizationServer,
    pages: Pages,
    user_code: str,
    *,
    message: str | None = None,
    status: int = 200,
) -> Response:
    return pages.render_form(
        "device.html",
        status=status,
        title=_TITLE,
        action=server.url(server.paths.device_verification),
        user_code=user_code,
        message=message,
    )


def _confirm(server: AuthorizationServer, pages: Pages, prompt: DevicePrompt) -> Response:
    client = prompt.client
    return pages.render_form(
        "device_confirm.html",
        title="Allow this device?",
        action=server.url(server.paths.device_verification),
        user_code=prompt.user_code,
        client_name=client.client_name or client.client_id,
        client_id=client.client_id,
        scopes=[(s, SCOPE_DESCRIPTIONS.get(s, s)) for s in prompt.scopes],
    )


def _refused(
    server: AuthorizationServer,
    pages: Pages,
    user_code: str,
    outcome: CodeRefused | TooManyAttempts,
) -> Response:
    if isinstance(outcome, TooManyAttempts):
        minutes = max(1, -(-outcome.retry_after // 60))
        response = pages.render(
            "error.html",
            status=429,
            title="Too many attempts",
            message=(
                "Too many codes were entered that were not recognised. "
                f"Please wait {minutes} minute{'s' if minutes != 1 else ''} and try again."
            ),
        )
        response.headers["Retry-After"] = str(outcome.retry_after)
        return response
    message = _MESSAGES[outcome.reason]
    if outcome.attempts_left is not None:
        message += f" Attempts left: {outcome.attempts_left}."
    return _entry(server, pages, user_code, message=message, status=400)
