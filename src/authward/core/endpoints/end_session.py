"""The end-session endpoint: RP-Initiated Logout, then Back-Channel Logout to the other clients.

Spec: OpenID Connect RP-Initiated Logout 1.0 §2 (request: GET or POST; ``id_token_hint``,
``logout_hint``, ``client_id``, ``post_logout_redirect_uri``, ``state``, ``ui_locales``; the OP
asks the end-user whether to log out), §3 (redirect after logout, with ``state``), §4 (errors:
no redirect to an unverified URI), §7 (security: logout CSRF); OpenID Connect Back-Channel
Logout 1.0 §2.5; authward spec/stores.md §5.4 (fan-out only from the host-confirmed session).

Two steps:

1. :func:`handle` (``GET`` or ``POST`` from the relying party) validates the request. The
   ``id_token_hint`` must be an ID token signed by one of this server's published keys with
   ``iss`` equal to the issuer; it may have expired (§2). Its ``aud`` (``azp`` for several
   audiences) names the client; a ``client_id`` parameter must name the same client. A
   ``post_logout_redirect_uri`` needs that client and must equal one of its registered
   ``post_logout_redirect_uris`` exactly; otherwise the request is refused
   (``invalid_request``, shown on an error page) and never redirected. ``ui_locales`` and
   ``logout_hint`` are accepted and ignored. When someone is signed in the answer is a
   :class:`LogoutPrompt`: the end-user confirms on a page. When nobody is, there is nothing to
   end and the request finishes at once (redirect, or the signed-out page).
2. :func:`confirm` runs when the end-user submitted the confirmation form, AFTER the transport
   checked that the form is genuine (CSRF double submit, ``asgi.logout_pages``). The request is
   validated again from the posted fields, the host ends its login session
   (:class:`~authward.core.policy.SessionTerminator`), the relying parties holding that session
   are told over the back channel (in the background), and the browser is redirected (303) to
   the ``post_logout_redirect_uri`` with ``state``, or shown the signed-out page.

Choice: the end-user is ALWAYS asked while signed in, even with a valid ``id_token_hint`` for
the current session (§2 makes asking a SHOULD and lets the OP skip it only then). An ID token
is not a secret bound to the browser (it travels to the relying party and may leak through
logs), so skipping would let any page that holds one sign the user out with a plain link.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from authward.core.clients import Client
from authward.core.errors import InvalidRequestError
from authward.core.http import MultiDict, Pair, Request, Response, redirect_response
from authward.core.jose import JoseError, verify_jwt
from authward.core.logout import LogoutDispatcher, start_backchannel_logout
from authward.core.policy import Authentication, EndedSession, Event, SessionTerminator
from authward.core.redirects import append_params
from authward.core.server import AuthorizationServer

__all__ = [
    "DECISIONS",
    "LogoutPrompt",
    "LogoutRequest",
    "SignedOut",
    "confirm",
    "handle",
    "validate",
]

#: The buttons of the confirmation form.
DECISIONS: Final = ("logout", "stay")
#: The request parameters carried through the confirmation form.
_CARRIED: Final = ("id_token_hint", "client_id", "post_logout_redirect_uri", "state")
_ID_TOKEN_TYPES: Final = (None, "JWT")
_MAX_PARAM_CHARS: Final = 8192
_LOG = logging.getLogger("authward.end_session")


@dataclass(frozen=True, slots=True)
class LogoutRequest:
    """A validated logout request.

    ``client`` is the relying party named by the hint or ``client_id`` (``None`` when neither
    was given); ``post_logout_redirect_uri`` is registered for it; ``hint`` holds the verified
    ``id_token_hint`` claims. ``form_fields`` are the parameters to post back on confirmation.
    """

    client: Client | None
    post_logout_redirect_uri: str | None
    state: str | None
    hint: Mapping[str, object] | None
    form_fields: tuple[Pair, ...]

    def finish(self, headers: tuple[Pair, ...] = ()) -> Response | SignedOut:
        """Where the browser goes once the logout is over (§3): the registered redirect URI
        with ``state``, else the signed-out page."""
        if self.post_logout_redirect_uri is None:
            return SignedOut(client=self.client, headers=headers)
        params = [("state", self.state)] if self.state is not None else []
        return redirect_response(
            append_params(self.post_logout_redirect_uri, params), status=303, headers=headers
        )


@dataclass(frozen=True, slots=True)
class LogoutPrompt:
    """Ask the signed-in end-user to confirm signing out; the form posts to ``action`` with
    ``request.form_fields`` and a ``decision`` (one of :data:`DECISIONS`)."""

    request: LogoutRequest
    authentication: Authentication
    action: str


@dataclass(frozen=True, slots=True)
class SignedOut:
    """Show the end-user a page instead of redirecting.

    ``ended`` is False when the end-user chose to stay signed in (``stayed``) or the host's login
    cannot end sessions; ``headers`` finish the sign-out on the user agent (``Set-Cookie``).
    """

    client: Client | None
    headers: tuple[Pair, ...] = ()
    ended: bool = True
    stayed: bool = False


def _params(request: Request) -> MultiDict:
    if request.method not in ("GET", "HEAD", "POST"):
        raise InvalidRequestError("the end-session endpoint answers GET and POST only")
    return request.form if request.method == "POST" else request.query


def _one(params: MultiDict, name: str) -> str | None:
    value = params.get_one(name)
    if value is not None and len(value) > _MAX_PARAM_CHARS:
        raise InvalidRequestError(f"{name} is too long")
    return value


def _verify_hint(server: AuthorizationServer, token: str) -> Mapping[str, object]:
    """The claims of an ID token this server issued. Expiry is not checked (§2: an expired
    ID token is a fine hint); the signature (a published key), ``typ`` and ``iss`` are."""
    now = server.clock.now()
    keys = server.keys.verification_keys(now=now, max_token_lifetime=server.max_token_lifetime)
    refused = "id_token_hint is not an ID token issued by this server"
    try:
        verified = verify_jwt(token, keys, algorithms=server.keys.algorithms)
    except JoseError as error:
        raise InvalidRequestError(refused, detail=str(error)) from error
    if verified.header.get("typ") not in _ID_TOKEN_TYPES:
        raise InvalidRequestError(refused, detail="typ is not an ID token's")
    claims = verified.claims
    if claims.get("iss") != server.issuer:
        raise InvalidRequestError(refused, detail="iss does not match")
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise InvalidRequestError(refused, detail="sub is missing")
    return claims


def _hint_client_id(claims: Mapping[str, object]) -> str:
    """The client an ID token was issued to: ``aud``, or ``azp`` when there are several."""
    aud = claims.get("aud")
    azp = claims.get("azp")
    if isinstance(aud, str) and aud:
        return aud
    if isinstance(aud, list) and aud and all(isinstance(a, str) for a in aud):
        if isinstance(azp, str) and azp in aud:
            return azp
        if len(aud) == 1:
            return str(aud[0])
    raise InvalidRequestError("id_token_hint names no single client", detail="aud/azp")


async def validate(server: AuthorizationServer, request: Request) -> LogoutRequest:
    """Validate an RP-Initiated Logout request (see the module docstring); InvalidRequestError
    for anything this server will not act on."""
    params = _params(request)
    hint_token = _one(params, "id_token_hint")
    client_id = _one(params, "client_id")
    redirect_uri = _one(params, "post_logout_redirect_uri")
    state = _one(params, "state")
    _one(params, "logout_hint")  # accepted, not used: the session cookie says who is signed in
    _one(params, "ui_locales")  # accepted, ignored (one language)

    hint: Mapping[str, object] | None = None
    if hint_token is not None:
        hint = _verify_hint(server, hint_token)
        hinted = _hint_client_id(hint)
        if client_id is not None and client_id != hinted:
            raise InvalidRequestError("client_id does not match the id_token_hint")
        client_id = hinted

    client: Client | None = None
    if client_id is not None:
        client = await server.policy.clients.get_client(client_id)
        if client is None:
            raise InvalidRequestError("unknown client", detail="client_id not registered")

    if redirect_uri is not None:
        if client is None:
            raise InvalidRequestError(
                "post_logout_redirect_uri needs an id_token_hint or a client_id"
            )
        if redirect_uri not in client.post_logout_redirect_uris or "#" in redirect_uri:
            raise InvalidRequestError(
                "post_logout_redirect_uri is not registered for this client"
            )

    carried = {
        "id_token_hint": hint_token,
        "client_id": client.client_id if client is not None else None,
        "post_logout_redirect_uri": redirect_uri,
        "state": state,
    }
    fields = tuple((name, value) for name in _CARRIED if (value := carried[name]) is not None)
    return LogoutRequest(
        client=client,
        post_logout_redirect_uri=redirect_uri,
        state=state,
        hint=hint,
        form_fields=fields,
    )


async def handle(
    server: AuthorizationServer, request: Request
) -> Response | LogoutPrompt | SignedOut:
    """Step 1: validate the request; ask a signed-in end-user to confirm, else finish.

    Raises InvalidRequestError (the transport shows it as an error page, never a redirect).
    """
    logout = await validate(server, request)
    current = await server.policy.login.authenticated(request)
    if current is None:
        return logout.finish()
    return LogoutPrompt(
        request=logout, authentication=current, action=server.url(server.paths.end_session)
    )


async def confirm(
    server: AuthorizationServer,
    request: Request,
    *,
    dispatcher: LogoutDispatcher,
) -> Response | SignedOut:
    """Step 2: the end-user's answer to the confirmation form (a POST whose CSRF token the
    transport has ALREADY checked). ``decision=logout`` ends the host's session, starts the
    back-channel fan-out on ``dispatcher`` and finishes; ``decision=stay`` ends nothing."""
    if request.method != "POST":
        raise InvalidRequestError("the confirmation must be a POST")
    decision = request.form.get_one("decision")
    if decision not in DECISIONS:
        raise InvalidRequestError("decision must be 'logout' or 'stay'")
    logout = await validate(server, request)
    if decision == "stay":
        return SignedOut(client=logout.client, ended=False, stayed=True)
    login = server.policy.login
    if not isinstance(login, SessionTerminator):
        _LOG.warning("the host login cannot end sessions; nothing was signed out")
        return SignedOut(client=logout.client, ended=False)
    ended = await login.terminate_session(request)
    if ended is None:  # nobody signed in any more: nothing to end or tell
        return logout.finish()
    told = await _after_session_ended(server, dispatcher, ended, logout)
    _LOG.info("session ended; %d relying parties to notify", told)
    return logout.finish(ended.headers)


async def _after_session_ended(
    server: AuthorizationServer,
    dispatcher: LogoutDispatcher,
    ended: EndedSession,
    logout: LogoutRequest,
) -> int:
    who = ended.authentication
    told = await start_backchannel_logout(server, dispatcher, sid=who.sid, subject=who.subject)
    data: dict[str, object] = {"subject": who.subject, "notified": told}
    if logout.client is not None:
        data["client_id"] = logout.client.client_id
    await server.policy.events.emit(Event("logout.session_ended", server.clock.now(), data))
    return told
