"""The authorization endpoint: resolve, validate, sign in, consent, then issue a code.

Spec: RFC 6749 §3.1 (GET and POST), §4.1.1-§4.1.2.1 (code response, errors by redirect only to
a trusted redirect URI); RFC 7636 (PKCE S256); RFC 8707 §2; RFC 9126 §4 (pushed requests:
resolve with ``fetch``, one-time ``take`` just before issuing); RFC 9207 §2 (``iss`` in every
response); OIDC Core 1.0 §3.1.2.1-§3.1.2.6 (``prompt``, ``max_age``, ``login_required``,
``consent_required``); authward spec/stores.md §3.7, §3.9 (request-bound consent grants).

Flow of ``handle``:

1. PAR: a ``request_uri`` with this server's URN prefix is resolved with ``fetch`` (a miss is
   ``invalid_request_uri``, answered directly); the front-channel ``client_id`` must equal the
   stored one; the stored params then replace the front-channel ones.
2. Client and redirect URI (direct errors), then the rest of the request (errors by redirect,
   with ``state`` and ``iss``); a client or server that requires PAR refuses a request that
   was not pushed.
3. Login via the host: nobody signed in, ``prompt=login`` without a login after the detour
   began, or ``max_age`` exceeded sends the browser to the host's login page with a
   ``return_to`` that resumes this request (``login_required`` under ``prompt=none``).
4. Scopes via the host's scope policy (``invalid_scope`` when nothing requested is grantable).
5. Consent: when the host requires it (or ``prompt=consent``) a single-use consent grant bound
   to the exact request is minted and a ``ConsentPrompt`` returned for the transport to render
   (``consent_required`` under ``prompt=none``). The page POSTs back the same fields plus
   ``consent_token`` and ``decision``; the grant is consumed against the request (any failure,
   or ``decision=deny``, is ``access_denied``). The token is the form's CSRF protection.
6. A pushed request is taken (single use) immediately before the code is issued; a loser gets
   ``invalid_request_uri`` by redirect. The redirect carries ``code``, ``state`` and ``iss``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlencode

from authward.core.authorization_request import (
    AuthorizationRequest,
    Target,
    params_from_json,
    resolve_target,
    validate,
)
from authward.core.clients import Client
from authward.core.errors import (
    AccessDeniedError,
    ConsentRequiredError,
    InvalidRequestError,
    InvalidRequestUriError,
    InvalidScopeError,
    LoginRequiredError,
    OAuthError,
)
from authward.core.grants.authorization_code import issue_code
from authward.core.http import (
    MultiDict,
    Request,
    Response,
    error_redirect,
    error_response,
    redirect_response,
)
from authward.core.jose import JoseError, sign_jwt, validate_claims, verify_jwt
from authward.core.policy import Authentication, Event
from authward.core.redirects import append_params
from authward.core.server import AuthorizationServer
from authward.stores.consent import Granted, binding_from_request
from authward.stores.par import REQUEST_URI_PREFIX, Found, Taken

__all__ = [
    "CONSENT_TTL_SECONDS",
    "LOGIN_STARTED_PARAM",
    "ConsentPrompt",
    "handle",
]

#: Lifetime of a consent grant: the time a user has to answer the consent page.
CONSENT_TTL_SECONDS: Final = 600
#: Added to a ``return_to`` when ``prompt=login`` forces a login: a JWT signed with the
#: server's ID-token key whose ``iat`` is when the login was asked for; the login that follows
#: must be at least that recent. Signed, so a user agent cannot move it back in time to pass
#: an older session off as fresh; honoured for ``_LOGIN_WINDOW_SECONDS``.
LOGIN_STARTED_PARAM: Final = "login_started_at"
LOGIN_MARKER_TYPE: Final = "authward-login-marker"
_LOGIN_WINDOW_SECONDS: Final = 600
_MAX_MARKER_LENGTH: Final = 2_048
#: Parameters of the consent page's POST that belong to the interaction, not the request.
_INTERACTION_PARAMS: Final = frozenset({"consent_token", "decision", LOGIN_STARTED_PARAM})
_FORM_TYPE: Final = "application/x-www-form-urlencoded"


@dataclass(frozen=True, slots=True)
class ConsentPrompt:
    """Ask ``subject`` whether ``client`` may have ``scopes``.

    The transport renders a page whose form POSTs to ``action`` with ``form_fields`` (the
    request to resume, as hidden fields), ``consent_token`` and ``decision=approve`` or
    ``decision=deny``. The grant behind ``consent_token`` is single-use and bound to this
    exact request; it expires after ``CONSENT_TTL_SECONDS``.
    """

    client: Client
    scopes: tuple[str, ...]
    subject: str
    consent_token: str
    form_fields: tuple[tuple[str, str], ...]
    action: str

    @property
    def hidden_fields(self) -> tuple[tuple[str, str], ...]:
        """Every hidden field of the form: ``form_fields`` plus ``consent_token``."""
        return (*self.form_fields, ("consent_token", self.consent_token))


class _RedirectError(Exception):
    """An error to send to the trusted redirect URI."""

    def __init__(self, error: OAuthError, target: Target) -> None:
        super().__init__(str(error))
        self.error = error
        self.target = target


@dataclass(frozen=True, slots=True)
class _Resolved:
    """The parameters to validate, and the pushed request they came from (if any)."""

    params: MultiDict
    front: MultiDict
    request_uri: str | None


async def handle(server: AuthorizationServer, request: Request) -> Response | ConsentPrompt:
    """Answer one authorization request (GET query or POST form).

    Returns a redirect (to the client with a code or an error, or to the host's login page), a
    direct JSON error when the client or redirect URI cannot be trusted, or a ``ConsentPrompt``.
    Unexpected exceptions (a store failure) propagate to the transport.
    """
    try:
        return await _handle(server, request)
    except _RedirectError as exc:
        return error_redirect(
            exc.error, exc.target.redirect_uri, state=exc.target.state, iss=server.issuer
        )
    except OAuthError as error:
        return error_response(error)


async def _handle(server: AuthorizationServer, request: Request) -> Response | ConsentPrompt:
    front = _front_channel(request)
    resolved = await _resolve_pushed(server, front)
    target = await resolve_target(resolved.params, server.clients)
    try:
        authz = validate(resolved.params, target)
    except OAuthError as error:
        raise _RedirectError(error, target) from error
    try:
        return await _authorize(server, request, authz, resolved)
    except OAuthError as error:
        trusted = Target(authz.client, authz.redirect_uri, authz.state)
        raise _RedirectError(error, trusted) from error


def _front_channel(request: Request) -> MultiDict:
    if request.method == "GET":
        return request.query
    if request.method == "POST":
        content_type = (request.headers.get_one("content-type") or "").split(";")[0]
        if content_type.strip().lower() != _FORM_TYPE:
            raise InvalidRequestError(f"a POST to the authorization endpoint must be {_FORM_TYPE}")
        return request.form
    raise InvalidRequestError("the authorization endpoint accepts GET and POST only")


async def _resolve_pushed(server: AuthorizationServer, front: MultiDict) -> _Resolved:
    """Replace the front-channel params by a pushed request's (RFC 9126 §4); direct errors."""
    uris = front.get_all("request_uri")
    if len(uris) > 1:
        raise InvalidRequestError("request_uri must not be repeated")
    request_uri = front.get_one("request_uri")
    if (
        request_uri is None
        or not request_uri.startswith(REQUEST_URI_PREFIX)
        or not server.settings.features.pushed_authorization_requests
    ):
        return _Resolved(params=front, front=front, request_uri=None)
    client_id = front.get_one("client_id")
    if client_id is None:
        raise InvalidRequestError("client_id is required with request_uri")
    if len(request_uri) > 255:
        raise InvalidRequestUriError("unknown or expired request_uri")
    outcome = await server.stores.pushed_authorization_requests.fetch(request_uri)
    if not isinstance(outcome, Found):
        raise InvalidRequestUriError("unknown or expired request_uri")
    params = params_from_json(outcome.params)
    if params is None:
        raise InvalidRequestUriError("the pushed request cannot be used")
    if params.get_one("client_id") != client_id:
        raise InvalidRequestUriError(
            "request_uri was pushed by another client", detail=f"front client_id {client_id!r}"
        )
    return _Resolved(params=params, front=front, request_uri=request_uri)


async def _authorize(
    server: AuthorizationServer,
    request: Request,
    authz: AuthorizationRequest,
    resolved: _Resolved,
) -> Response | ConsentPrompt:
    client = authz.client
    if resolved.request_uri is None and (
        server.settings.require_pushed_authorization_requests
        or client.require_pushed_authorization_requests
    ):
        raise InvalidRequestError("this client must use pushed authorization requests")
    now = server.clock.now()

    authn = await server.policy.login.authenticated(request)
    if _login_needed(server, authz, authn, resolved.front, now):
        if "none" in authz.prompt:
            raise LoginRequiredError("the end-user is not signed in")
        return_to = _return_to(server, resolved, authz, now)
        return redirect_response(server.policy.login.login_url(return_to))
    assert authn is not None

    requested = authz.scope
    offered = await server.policy.scopes.grantable_scopes(client, requested, authn.subject)
    scopes = tuple(s for s in dict.fromkeys(offered) if s in requested)
    if requested and not scopes:
        raise InvalidScopeError("none of the requested scopes can be granted")

    binding = binding_from_request(authz, authn.subject)
    consent_token = resolved.front.get_one("consent_token") if request.method == "POST" else None
    if consent_token is not None:
        decision = resolved.front.get_one("decision")
        outcome = await server.stores.consent_grants.consume(consent_token, binding)
        if not isinstance(outcome, Granted):
            await _emit(server, "consent.refused", now, client, reason=type(outcome).__name__)
            raise AccessDeniedError("consent was not given for this request")
        if decision != "approve":
            await _emit(server, "consent.denied", now, client)
            raise AccessDeniedError("the end-user denied the request")
    elif "consent" in authz.prompt or await server.policy.consent.consent_required(
        authn.subject, client, scopes
    ):
        if "none" in authz.prompt:
            raise ConsentRequiredError("the end-user must consent")
        token = await server.stores.consent_grants.mint(binding, CONSENT_TTL_SECONDS)
        return ConsentPrompt(
            client=client,
            scopes=scopes,
            subject=authn.subject,
            consent_token=token,
            form_fields=_resume_fields(resolved),
            action=server.url(server.paths.authorization),
        )

    if resolved.request_uri is not None:
        taken = await server.stores.pushed_authorization_requests.take(resolved.request_uri)
        if not isinstance(taken, Taken):
            raise InvalidRequestUriError("the pushed request was already used or has expired")

    code = await issue_code(
        server,
        client_id=client.client_id,
        subject=authn.subject,
        redirect_uri=authz.redirect_uri,
        scope=scopes,
        code_challenge=authz.code_challenge,
        resource=authz.resource,
        dpop_jkt=authz.dpop_jkt,
        nonce=authz.nonce,
        auth_time=authn.auth_time,
        acr=authn.acr,
        amr=authn.amr,
        sid=authn.sid,
    )
    await _emit(server, "authorization.code_issued", now, client, subject=authn.subject)
    params: list[tuple[str, str]] = [("code", code)]
    if authz.state is not None:
        params.append(("state", authz.state))
    params.append(("iss", server.issuer))
    return redirect_response(append_params(authz.redirect_uri, params))


def _login_needed(
    server: AuthorizationServer,
    authz: AuthorizationRequest,
    authn: Authentication | None,
    front: MultiDict,
    now: float,
) -> bool:
    if authn is None:
        return True
    if authz.max_age is not None and authn.auth_time + authz.max_age < now:
        return True
    if "login" in authz.prompt:
        started = _login_started(server, front, now)
        return started is None or authn.auth_time < started
    return False


def login_marker(server: AuthorizationServer, now: float) -> str:
    """A signed ``login_started_at`` marker for a login asked for at ``now``."""
    key = server.keys.signing_key(server.settings.id_token_signing_alg)
    claims = {"iss": server.issuer, "iat": int(now), "exp": int(now) + _LOGIN_WINDOW_SECONDS}
    return sign_jwt(key, claims, header={"typ": LOGIN_MARKER_TYPE})


def _login_started(server: AuthorizationServer, front: MultiDict, now: float) -> int | None:
    """When the login of a ``prompt=login`` detour was asked for: the ``iat`` of a single,
    validly signed, unexpired marker from this issuer; else ``None`` (log in again)."""
    values = front.get_all(LOGIN_STARTED_PARAM)
    if len(values) != 1 or len(values[0]) > _MAX_MARKER_LENGTH:
        return None
    keys = server.keys.verification_keys(now=now, max_token_lifetime=server.max_token_lifetime)
    try:
        verified = verify_jwt(values[0], keys, algorithms=server.keys.algorithms)
        if verified.header.get("typ") != LOGIN_MARKER_TYPE:
            return None
        validate_claims(verified.claims, now=now, issuer=server.issuer, required=("exp", "iat"))
    except JoseError:
        return None
    started = verified.claims["iat"]
    return started if isinstance(started, int) and started <= now else None


def _resume_fields(
    resolved: _Resolved, *, keep_login_marker: bool = True
) -> tuple[tuple[str, str], ...]:
    """The parameters that resume this request: ``client_id`` + ``request_uri`` when pushed,
    else the front-channel request; plus the login marker of a ``prompt=login`` detour."""
    front = resolved.front
    fields: list[tuple[str, str]]
    if resolved.request_uri is not None:
        client_id = resolved.params.get_one("client_id")
        assert client_id is not None
        fields = [("client_id", client_id), ("request_uri", resolved.request_uri)]
    else:
        fields = [
            (name, value)
            for name, value in front
            if name not in _INTERACTION_PARAMS and value != ""
        ]
    markers = front.get_all(LOGIN_STARTED_PARAM)
    if keep_login_marker and len(markers) == 1:
        fields.append((LOGIN_STARTED_PARAM, markers[0]))
    return tuple(fields)


def _return_to(
    server: AuthorizationServer, resolved: _Resolved, authz: AuthorizationRequest, now: float
) -> str:
    fields = list(_resume_fields(resolved, keep_login_marker=False))
    if "login" in authz.prompt:
        fields.append((LOGIN_STARTED_PARAM, login_marker(server, now)))
    return server.url(server.paths.authorization) + "?" + urlencode(fields)


async def _emit(
    server: AuthorizationServer, name: str, now: float, client: Client, **data: object
) -> None:
    payload: Mapping[str, object] = {"client_id": client.client_id, **data}
    await server.policy.events.emit(Event(name=name, at=now, data=payload))
