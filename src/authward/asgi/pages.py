"""The default HTML pages: the login form, the consent screen and the error page.

Spec: RFC 6749 §10.12 (CSRF), §10.13 (clickjacking: the pages refuse to be framed), §10.10
and RFC 6819 §5.1.4.2.3 (failed sign-ins are limited per account); RFC 6585 §4 (429);
RFC 9700 §4.11 (no open redirect after login); RFC 6265 §4.1.2 (HttpOnly, Secure, SameSite);
OIDC Core 1.0 §3.1.2.4 (the end-user consents to the client and scopes); WCAG 2.1 (labels,
``lang``, no script needed).

Templates are Jinja2 with autoescaping on, shipped as package data in ``templates/``.

Login (``GET``/``POST`` at ``SignedCookieLogin.login_path``): the form carries ``username``,
``password``, the hidden ``return_to`` and a CSRF token that must equal the value of a
short-lived cookie set with the form (double submit). Right credentials set the signed session
cookie and redirect (303) to ``return_to`` when it lies under the issuer, else to the issuer
root. Wrong credentials re-render the form with one generic message (unknown user and wrong
password read the same) and status 200: a 401 would need a ``WWW-Authenticate`` challenge
(RFC 9110 §15.5.2), which no HTML form login has.

Login attempts are limited per username and source address with an
:class:`~authward.core.attempt_limits.AttemptLimit` in the shared replay table (namespace
``login_password``; a stranger elsewhere cannot lock the owner out), and per source address for
every username together (namespace ``login_address``, ``ADDRESS_FAILURES_PER_ACCOUNT_FAILURE``
times the failures: password spraying), so every node sharing the database enforces one budget.
The username is normalised (NFKC, case-folded, stripped) and only its digest is stored. After
the CSRF check (a forged post counts nothing), each post first reads the lock marker, then takes
a step (at most ``LOGIN_CHECKS_PER_FAILURE * max_failed_logins`` password checks per window,
right or wrong: a cap on what concurrent guesses can squeeze in before the lock lands, set well
above what a person signs in in a window); a wrong password, or any password for an unknown
username, is a failure (``max_failed_logins`` per window of ``failed_login_window_seconds``;
defaults 10 per 900 s). Once the failures are spent, every post for that username, right
password or wrong, known user or not, gets one generic 429 page with ``Retry-After`` (the
seconds left in the window) and the password is not even checked; a ``login.locked`` event
carries a short digest of the username, never the username or password. A successful sign-in
does not reset the failures: the replay table has no delete, so the counters only expire with
their window.

Before the lock, failures slow a guesser down: once a username has more than
``GrowingDelay.free_failures`` failures from one address in the window (default 2), each further
post from there waits ``first_seconds`` (1 s), doubling per failure up to ``max_seconds`` (8 s),
before its password is checked, right or wrong (so an early answer reveals nothing). The
failures are counted from the shared keys, so the delay holds across nodes; the wait is an
``await`` that costs no CPU, and concurrent posts are still capped by the steps.

Consent: :meth:`Pages.render_consent` renders the authorization endpoint's ``ConsentPrompt`` as a
form that POSTs to ``prompt.action`` (the authorization endpoint) with the prompt's hidden form
fields, its ``consent_token`` and a ``decision`` button (``approve`` or ``deny``).

Other forms (device verification, sign-out confirmation) use the same double submit through
:meth:`Pages.render_form` and :meth:`Pages.form_is_genuine`.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
import unicodedata
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol
from urllib.parse import urlsplit

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.requests import Request as StarletteRequest
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from authward.asgi.translate import MAX_BODY_BYTES, read_request
from authward.core.attempt_limits import (
    AttemptLimit,
    AttemptsLeft,
    AttemptWindow,
    GrowingDelay,
    Locked,
    identifier_digest,
)
from authward.core.clients import Client
from authward.core.defaults.login import SignedCookieLogin, cookie_values
from authward.core.errors import OAuthError
from authward.core.http import Request as CoreRequest
from authward.core.policy import Event
from authward.core.server import AuthorizationServer

__all__ = [
    "CSRF_COOKIE",
    "DEFAULT_FAILED_LOGIN_WINDOW_SECONDS",
    "DEFAULT_LOGIN_DELAY",
    "DEFAULT_MAX_FAILED_LOGINS",
    "LOGIN_ATTEMPTS_NAMESPACE",
    "SCOPE_DESCRIPTIONS",
    "ConsentPromptView",
    "LoginPage",
    "Pages",
    "PasswordVerifier",
    "login_identifier",
]

TEMPLATES: Final = Path(__file__).parent / "templates"
CSRF_COOKIE: Final = "authward_login_csrf"
_CSRF_LIFETIME: Final = 3600
#: Pages are never cached and never framed (RFC 6749 §10.13).
PAGE_HEADERS: Final[Mapping[str, str]] = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "Referrer-Policy": "no-referrer",
}
#: Plain-language meaning of the standard scopes (others are shown as their token).
SCOPE_DESCRIPTIONS: Final[Mapping[str, str]] = {
    "openid": "Confirm who you are",
    "profile": "Your basic profile (name, picture, locale)",
    "email": "Your email address",
    "address": "Your postal address",
    "phone": "Your phone number",
    "offline_access": "Keep access while you are not using it",
}
_BAD_CREDENTIALS: Final = "The username or password is not correct."
_STALE_FORM: Final = "The form expired. Please sign in again."
#: Replay namespace of the login attempt counters (per username and source address).
LOGIN_ATTEMPTS_NAMESPACE: Final = "login_password"
#: Replay namespace of the per-source-address counters (every username together).
LOGIN_ADDRESS_NAMESPACE: Final = "login_address"
#: Failed sign-ins one source address may make per window, across usernames, per failure one
#: username may take there: password spraying from one address stops after this many.
ADDRESS_FAILURES_PER_ACCOUNT_FAILURE: Final = 5
#: Password checks (right or wrong) allowed per username and window, per allowed failure: with
#: the defaults 100 sign-ins per 15 minutes, far above a person's, while still bounding a burst
#: of concurrent guesses before the lock lands.
LOGIN_CHECKS_PER_FAILURE: Final = 10
#: Failed sign-ins allowed per username and window (OWASP: a small number).
DEFAULT_MAX_FAILED_LOGINS: Final = 10
DEFAULT_FAILED_LOGIN_WINDOW_SECONDS: Final = 900
#: No wait while two failures or fewer are recorded, then 1, 2, 4, 8, 8... seconds before
#: each further check.
DEFAULT_LOGIN_DELAY: Final = GrowingDelay()


class PasswordVerifier(Protocol):
    """Checks a username and password (``FileUserDirectory`` is one)."""

    async def verify_password(self, username: str, password: str) -> str | None:
        """The subject when the password is right, else ``None``; never raises."""
        ...


class ConsentPromptView(Protocol):
    """What the consent page needs from the authorization endpoint's ``ConsentPrompt``."""

    @property
    def client(self) -> Client: ...

    @property
    def scopes(self) -> tuple[str, ...]: ...

    @property
    def subject(self) -> str: ...

    @property
    def consent_token(self) -> str: ...

    @property
    def form_fields(self) -> Iterable[tuple[str, str]] | Mapping[str, str]: ...

    @property
    def action(self) -> str: ...


@dataclass(frozen=True, slots=True)
class LoginPage:
    """The default login page's collaborators: who may sign in and the session cookie, and the
    per-username limit of ``max_failed_logins`` failed sign-ins per window of
    ``failed_login_window_seconds`` (``ValueError`` when either is not a positive integer),
    the ``delay`` before each check once a username's failures from one address pass its free
    count, and how to wait it (``sleep``: ``asyncio.sleep`` unless a test injects its own)."""

    users: PasswordVerifier
    session: SignedCookieLogin
    max_failed_logins: int = DEFAULT_MAX_FAILED_LOGINS
    failed_login_window_seconds: int = DEFAULT_FAILED_LOGIN_WINDOW_SECONDS
    delay: GrowingDelay = DEFAULT_LOGIN_DELAY
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep

    def __post_init__(self) -> None:
        for name in ("max_failed_logins", "failed_login_window_seconds"):
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")

    @property
    def attempt_limit(self) -> AttemptLimit:
        """The limit per username and source address (steps: ``LOGIN_CHECKS_PER_FAILURE``
        times the failures, right or wrong)."""
        return AttemptLimit(
            namespace=LOGIN_ATTEMPTS_NAMESPACE,
            max_failures=self.max_failed_logins,
            window_seconds=self.failed_login_window_seconds,
            max_steps=LOGIN_CHECKS_PER_FAILURE * self.max_failed_logins,
        )

    @property
    def address_limit(self) -> AttemptLimit:
        """The limit per source address, every username together."""
        failures = ADDRESS_FAILURES_PER_ACCOUNT_FAILURE * self.max_failed_logins
        return AttemptLimit(
            namespace=LOGIN_ADDRESS_NAMESPACE,
            max_failures=failures,
            window_seconds=self.failed_login_window_seconds,
            max_steps=LOGIN_CHECKS_PER_FAILURE * failures,
        )


def login_identifier(username: str) -> str:
    """The username as the login limit counts it: NFKC, case-folded, stripped (so ``Alice``
    and `` alice`` share one budget)."""
    return unicodedata.normalize("NFKC", username).casefold().strip()


class Pages:
    """Renders authward's HTML pages for ``server``."""

    def __init__(
        self,
        server: AuthorizationServer,
        *,
        login: LoginPage | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self._server = server
        self._login = login
        self._max_body_bytes = max_body_bytes
        self._env = Environment(
            loader=FileSystemLoader(TEMPLATES),
            autoescape=True,
            undefined=StrictUndefined,
            auto_reload=False,
        )

    def routes(self) -> list[Route]:
        """The login page route (none without a ``LoginPage``)."""
        if self._login is None:
            return []
        return [Route(self._login.session.login_path, self._login_page, methods=["GET", "POST"])]

    # --- rendering ------------------------------------------------------------------------

    def render(self, template: str, *, status: int = 200, **context: object) -> HTMLResponse:
        """``template`` rendered with ``context``, with the no-store, no-frame headers."""
        html = self._env.get_template(template).render(issuer=self._server.issuer, **context)
        return HTMLResponse(html, status_code=status, headers=dict(PAGE_HEADERS))

    def render_error(self, title: str, message: str, *, status: int = 400) -> HTMLResponse:
        """An error page for the end-user (never the OAuth details of a client error)."""
        return self.render("error.html", status=status, title=title, message=message)

    def render_consent(self, prompt: ConsentPromptView) -> HTMLResponse:
        """The consent page for ``prompt``: posts to ``prompt.action`` (the authorization
        endpoint) with its form fields, its ``consent_token`` and the ``decision`` button."""
        fields = prompt.form_fields
        pairs = list(fields.items()) if isinstance(fields, Mapping) else list(fields)
        pairs = [(k, v) for k, v in pairs if k not in ("consent_token", "decision")]
        client = prompt.client
        return self.render(
            "consent.html",
            title="Allow access?",
            client_name=client.client_name or client.client_id,
            client_id=client.client_id,
            scopes=[(s, SCOPE_DESCRIPTIONS.get(s, s)) for s in prompt.scopes],
            action=prompt.action,
            form_fields=pairs,
            consent_token=prompt.consent_token,
        )

    # --- forms (CSRF double submit) -------------------------------------------------------

    def render_form(self, template: str, *, status: int = 200, **context: object) -> HTMLResponse:
        """``template`` rendered like :meth:`render` with a fresh ``csrf_token`` in its context,
        and the same value set in the short-lived ``SameSite=Strict`` CSRF cookie (double
        submit). The form must post ``csrf_token`` back; check it with :meth:`form_is_genuine`.
        """
        token = secrets.token_urlsafe(32)
        response = self.render(template, status=status, csrf_token=token, **context)
        path, secure = self._cookie_scope()
        response.set_cookie(
            CSRF_COOKIE,
            token,
            max_age=_CSRF_LIFETIME,
            path=path,
            secure=secure,
            httponly=True,
            samesite="strict",
        )
        return response

    def form_is_genuine(self, request: CoreRequest) -> bool:
        """True when the posted ``csrf_token`` equals (constant time) a CSRF cookie value."""
        presented = request.form.get("csrf_token") or ""
        expected = cookie_values(request, CSRF_COOKIE)
        return bool(presented) and any(
            hmac.compare_digest(presented.encode(), value.encode()) for value in expected
        )

    def forget_csrf(self, response: Response) -> None:
        """Delete the CSRF cookie (after a form was accepted)."""
        path, secure = self._cookie_scope()
        response.delete_cookie(CSRF_COOKIE, path=path, secure=secure, httponly=True,
                               samesite="strict")

    def _cookie_scope(self) -> tuple[str, bool]:
        """The cookie ``Path`` (the issuer's path) and whether it is ``Secure`` (https)."""
        issuer = urlsplit(self._server.issuer)
        return issuer.path or "/", issuer.scheme == "https"

    # --- login ----------------------------------------------------------------------------

    async def _login_page(self, request: StarletteRequest) -> Response:
        assert self._login is not None
        if request.method == "POST":
            return await self._login_submit(request, self._login)
        return_to = request.query_params.get("return_to", "")
        return self._login_form(self._login, return_to=return_to)

    def _login_form(
        self,
        login: LoginPage,
        *,
        return_to: str,
        username: str = "",
        message: str | None = None,
        status: int = 200,
    ) -> HTMLResponse:
        return self.render_form(
            "login.html",
            status=status,
            title="Sign in",
            action=self._server.url(login.session.login_path),
            return_to=login.session.safe_return_to(return_to) if return_to else "",
            username=username,
            message=message,
        )

    async def _login_submit(self, request: StarletteRequest, login: LoginPage) -> Response:
        try:
            core = await read_request(request, max_body_bytes=self._max_body_bytes)
        except OAuthError as error:
            return self.render_error("Bad request", "The form could not be read.",
                                     status=error.status)
        form = core.form
        return_to = form.get("return_to") or ""
        username = form.get("username") or ""
        password = form.get("password") or ""
        if not self.form_is_genuine(core):
            return self._login_form(login, return_to=return_to, username=username,
                                    message=_STALE_FORM, status=400)
        identifier = login_identifier(username)
        address = core.client_address or ""
        now, replay = self._server.clock.now(), self._server.stores.replay
        # A username's budget is counted per source address, so a stranger elsewhere cannot
        # lock its owner out; the address's own budget (all usernames) stops spraying.
        windows = (
            login.address_limit.window(replay, address, now),
            login.attempt_limit.window(replay, f"{identifier}\x00{address}", now),
        )
        for attempts in windows:
            if isinstance(await attempts.step(), Locked):
                return await self._login_locked(login, attempts, identifier, return_to, username)
        if login.delay.first_seconds > 0:
            wait = login.delay.seconds(await windows[1].failures())
            if wait > 0:
                await login.sleep(wait)
        subject = await login.users.verify_password(username, password)
        if subject is None:
            for attempts in windows:
                if not isinstance(await attempts.fail(), AttemptsLeft):
                    return await self._login_locked(
                        login, attempts, identifier, return_to, username
                    )
            return self._login_form(login, return_to=return_to, username=username,
                                    message=_BAD_CREDENTIALS)
        session = login.session
        response = RedirectResponse(session.safe_return_to(return_to), status_code=303)
        response.headers["Cache-Control"] = "no-store"
        response.set_cookie(
            session.cookie_name,
            session.issue(subject),
            max_age=session.lifetime,
            path=session.cookie_path,
            secure=session.secure,
            httponly=True,
            samesite="lax",
        )
        self.forget_csrf(response)
        return response

    async def _login_locked(
        self,
        login: LoginPage,
        attempts: AttemptWindow,
        identifier: str,
        return_to: str,
        username: str,
    ) -> Response:
        """The one answer while a username is locked: 429, ``Retry-After``, generic text."""
        await self._server.policy.events.emit(
            Event(
                "login.locked",
                attempts.now,
                {"username_digest": identifier_digest(identifier),
                 "retry_after": attempts.retry_after},
            )
        )
        minutes = max(1, -(-attempts.retry_after // 60))
        message = (
            "Too many sign-in attempts for this account. "
            f"Please wait {minutes} minute{'s' if minutes != 1 else ''} and try again."
        )
        response = self._login_form(login, return_to=return_to, username=username,
                                    message=message, status=429)
        response.headers["Retry-After"] = str(attempts.retry_after)
        return response
