"""The end-session endpoint's browser pages: the sign-out confirmation and the signed-out page.

Spec: OpenID Connect RP-Initiated Logout 1.0 §2 (the OP asks the end-user whether to log out;
GET and POST), §3 (redirect with ``state``), §4 (errors are shown, never redirected), §7 (logout
CSRF); RFC 6749 §10.12 (CSRF), §10.13 (pages are never framed).

``GET``/``POST`` at ``server.paths.end_session``:

* a request without a ``decision`` field is the relying party's logout request:
  :func:`authward.core.endpoints.end_session.handle` validates it, and a signed-in end-user
  gets the confirmation form (``templates/logout.html``, CSRF double submit through
  :meth:`Pages.render_form`);
* a ``POST`` with ``decision`` is the end-user's answer: the CSRF token must match the cookie
  (else 400 and nothing happens), then :func:`~authward.core.endpoints.end_session.confirm`
  ends the host session, starts the back-channel fan-out on :attr:`LogoutPages.dispatcher` and
  redirects (303) or shows ``templates/logout_done.html``. Headers the host returned for the
  ended session (the ``Set-Cookie`` that deletes the login cookie) are sent with that answer.

Every refusal is the HTML error page with the OAuth error code and its status (400).
"""

from __future__ import annotations

from starlette.requests import Request as StarletteRequest
from starlette.responses import Response as StarletteResponse
from starlette.routing import Route

from authward.asgi.pages import Pages
from authward.asgi.translate import MAX_BODY_BYTES, read_request, to_starlette
from authward.core.endpoints import end_session
from authward.core.endpoints.end_session import LogoutPrompt, SignedOut
from authward.core.errors import OAuthError
from authward.core.http import Response
from authward.core.logout import LogoutDispatcher
from authward.core.server import AuthorizationServer

__all__ = ["LogoutPages"]

_ERROR_TITLE = "The sign-out request was refused"
_STALE_FORM = "The sign-out form expired or did not come from this page. Please try again."


class LogoutPages:
    """The end-session route for ``server``, rendering with ``pages``.

    ``dispatcher`` runs back-channel deliveries in the background (a fresh one by default);
    await ``dispatcher.drain()`` to wait for them (the ASGI app does on shutdown).
    """

    def __init__(
        self,
        server: AuthorizationServer,
        pages: Pages,
        *,
        dispatcher: LogoutDispatcher | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self._server = server
        self._pages = pages
        self.dispatcher = dispatcher if dispatcher is not None else LogoutDispatcher()
        self._max_body_bytes = max_body_bytes

    def routes(self) -> list[Route]:
        """The end-session route (``GET`` and ``POST``)."""
        return [Route(self._server.paths.end_session, self._end_session, methods=["GET", "POST"])]

    async def _end_session(self, request: StarletteRequest) -> StarletteResponse:
        answering = False
        try:
            core = await read_request(request, max_body_bytes=self._max_body_bytes)
            answering = core.method == "POST" and "decision" in core.form
            if answering:
                if not self._pages.form_is_genuine(core):
                    return self._pages.render_error(_ERROR_TITLE, _STALE_FORM, status=400)
                result: Response | LogoutPrompt | SignedOut = await end_session.confirm(
                    self._server, core, dispatcher=self.dispatcher
                )
            else:
                result = await end_session.handle(self._server, core)
        except OAuthError as error:
            message = error.description or "Bad request."
            return self._pages.render_error(
                _ERROR_TITLE, f"{message} (error: {error.error})", status=error.status
            )
        response = self._render(result)
        if answering:
            self._pages.forget_csrf(response)
        return response

    def _render(self, result: Response | LogoutPrompt | SignedOut) -> StarletteResponse:
        if isinstance(result, LogoutPrompt):
            client = result.request.client
            return self._pages.render_form(
                "logout.html",
                title="Sign out?",
                subject=result.authentication.subject,
                client_name=(client.client_name or client.client_id) if client else None,
                client_id=client.client_id if client else None,
                action=result.action,
                form_fields=list(result.request.form_fields),
            )
        if isinstance(result, SignedOut):
            client = result.client
            page = self._pages.render(
                "logout_done.html",
                title="Still signed in" if not result.ended else "Signed out",
                ended=result.ended,
                stayed=result.stayed,
                client_name=(client.client_name or client.client_id) if client else None,
            )
            for name, value in result.headers:
                page.headers.append(name, value)
            return page
        return to_starlette(result)
