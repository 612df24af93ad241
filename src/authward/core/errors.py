"""Every OAuth/OIDC error the server can return, as one exception hierarchy.

Spec: RFC 6749 §4.1.2.1, §5.2; RFC 6750 §3, §3.1; RFC 7009 §2.2.1; RFC 7617 §2; RFC 8628 §3.5;
RFC 8707 §2; RFC 9126 §2.2, §4; RFC 9207 §2; RFC 9449 §7.1, §8, §12.2; OIDC Core 1.0 §3.1.2.6.

Each concrete class carries its wire code as the class attribute ``error`` (spelled exactly as the
RFC does) and its default HTTP ``status``. An instance adds an optional client-facing
``description``, an optional ``error_uri``, and a log-only ``detail`` that is never rendered into
any response. ``body()`` renders the JSON error body, ``redirect_params()`` the parameters of an
error redirect, and ``headers()`` the response headers the error needs (``Cache-Control:
no-store``, ``WWW-Authenticate`` challenges, ``DPoP-Nonce``).

Resource-server errors (RFC 6750 / RFC 9449 at a protected resource or UserInfo) are built with
one or more ``challenges`` (the scheme the client used first); the error then renders a
``WWW-Authenticate`` header per challenge, and the DPoP proof/nonce errors switch from 400
(token endpoint) to 401 (resource).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar, Final, Literal, NotRequired, TypedDict

ErrorCode = Literal[
    # RFC 6749 §4.1.2.1 and §5.2
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "access_denied",
    "unsupported_response_type",
    "server_error",
    "temporarily_unavailable",
    # RFC 6750 §3.1
    "invalid_token",
    "insufficient_scope",
    # RFC 7009 §2.2.1
    "unsupported_token_type",
    # RFC 8628 §3.5
    "authorization_pending",
    "slow_down",
    "expired_token",
    # RFC 9126 / OIDC Core §3.1.2.6
    "invalid_request_uri",
    "request_uri_not_supported",
    "invalid_request_object",
    "request_not_supported",
    "registration_not_supported",
    # RFC 8707 §2
    "invalid_target",
    # RFC 9449 §7.1, §12.2
    "invalid_dpop_proof",
    "use_dpop_nonce",
    # OIDC Core §3.1.2.6
    "interaction_required",
    "login_required",
    "account_selection_required",
    "consent_required",
]

#: RFC 6749 §5.2 / RFC 6750 §3: error_description and error_uri characters (no '"' and no '\').
_SAFE_CHAR: Final = re.compile(r"[^\x20-\x21\x23-\x5b\x5d-\x7e]")
_URI_CHARS: Final = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")
#: RFC 7235 token68-free auth-param value used for realm: same safe set as descriptions.
_REALM_CHARS: Final = re.compile(r"^[\x20-\x21\x23-\x5b\x5d-\x7e]*$")

Header = tuple[str, str]


class ErrorBody(TypedDict):
    """The JSON error body (RFC 6749 §5.2)."""

    error: ErrorCode
    error_description: NotRequired[str]
    error_uri: NotRequired[str]


@dataclass(frozen=True, slots=True)
class BearerChallenge:
    """A ``WWW-Authenticate: Bearer`` challenge (RFC 6750 §3); ``realm`` is optional."""

    realm: str | None = None

    def __post_init__(self) -> None:
        _check_realm(self.realm)


@dataclass(frozen=True, slots=True)
class DPoPChallenge:
    """A ``WWW-Authenticate: DPoP`` challenge (RFC 9449 §7.1) naming the accepted ``algs``."""

    algs: tuple[str, ...]
    realm: str | None = None

    def __post_init__(self) -> None:
        _check_realm(self.realm)
        if not self.algs or any(not _URI_CHARS.match(alg) or " " in alg for alg in self.algs):
            raise ValueError("DPoPChallenge.algs must be a non-empty tuple of algorithm names")


Challenge = BearerChallenge | DPoPChallenge


class OAuthError(Exception):
    """Base of every protocol error; never raised itself.

    ``description`` is sent to the client (characters outside the RFC 6749 §5.2 set are
    replaced by ``?``); ``detail`` is for the server log only and never leaves the process.
    ``str(error)`` includes the detail, so it must never be copied into a response.
    """

    error: ClassVar[ErrorCode]
    #: The HTTP status of this instance (the class default unless a challenge changes it).
    status: int = 400
    #: The status used when the error is answered with a ``WWW-Authenticate`` challenge.
    challenge_status: ClassVar[int | None] = None
    #: The challenges used when the raiser gives none (a 401 must carry one).
    default_challenges: ClassVar[tuple[Challenge, ...]] = ()

    def __init__(
        self,
        description: str | None = None,
        *,
        detail: str | None = None,
        error_uri: str | None = None,
        challenges: tuple[Challenge, ...] = (),
    ) -> None:
        if type(self) is OAuthError:
            raise TypeError("OAuthError is abstract: raise one of its subclasses")
        if error_uri is not None and not _URI_CHARS.match(error_uri):
            raise ValueError("error_uri contains characters RFC 6749 §5.2 forbids")
        self.description: str | None = (
            None if description is None else _SAFE_CHAR.sub("?", description)
        )
        self.detail = detail
        self.error_uri = error_uri
        challenges = challenges or self.default_challenges
        self.challenges = challenges
        if challenges and self.challenge_status is not None:
            self.status = self.challenge_status
        super().__init__(self.error, self.description)

    def __str__(self) -> str:
        text: str = self.error
        if self.description:
            text += f": {self.description}"
        if self.detail:
            text += f" ({self.detail})"
        return text

    def body(self) -> ErrorBody:
        """The JSON error body: ``error``, then ``error_description``/``error_uri`` if set."""
        body: ErrorBody = {"error": self.error}
        if self.description:
            body["error_description"] = self.description
        if self.error_uri is not None:
            body["error_uri"] = self.error_uri
        return body

    def redirect_params(
        self, *, state: str | None = None, iss: str | None = None
    ) -> tuple[Header, ...]:
        """The error redirect's parameters, in order (RFC 6749 §4.1.2.1, RFC 9207 §2).

        ``state`` is echoed exactly when the request carried one; ``iss`` is the issuer
        identifier. Values are unencoded; the redirect builder encodes them.
        """
        params: list[Header] = [("error", self.error)]
        if self.description:
            params.append(("error_description", self.description))
        if self.error_uri is not None:
            params.append(("error_uri", self.error_uri))
        if state is not None:
            params.append(("state", state))
        if iss is not None:
            params.append(("iss", iss))
        return tuple(params)

    def headers(self) -> tuple[Header, ...]:
        """The response headers this error needs, in order; multi-valued names repeat.

        Always ``Cache-Control: no-store`` (RFC 6749 §5.1/§5.2), then one ``WWW-Authenticate``
        per challenge. Only the first challenge (the scheme the client used) carries this
        error's code; the others are bare and just advertise further schemes (RFC 9449 §7.1).
        """
        headers: list[Header] = [("Cache-Control", "no-store")]
        for index, challenge in enumerate(self.challenges):
            rendered = render_challenge(challenge, self if index == 0 else None)
            headers.append(("WWW-Authenticate", rendered))
        return tuple(headers)

    def challenge_params(self) -> tuple[Header, ...]:
        """Extra auth-params this error adds to its challenges (none by default)."""
        return ()


def render_challenge(challenge: Challenge, error: OAuthError | None = None) -> str:
    """Render one ``WWW-Authenticate`` value (RFC 6750 §3, RFC 9449 §7.1).

    With ``error=None`` the challenge is bare (no error code), which RFC 6750 §3 asks for when
    the request carried no credentials at all.
    """
    params: list[Header] = []
    if challenge.realm is not None:
        params.append(("realm", challenge.realm))
    if error is not None:
        params.append(("error", error.error))
        if error.description:
            params.append(("error_description", error.description))
        if error.error_uri is not None:
            params.append(("error_uri", error.error_uri))
        params.extend(error.challenge_params())
    if isinstance(challenge, DPoPChallenge):
        params.append(("algs", " ".join(challenge.algs)))
        scheme = "DPoP"
    else:
        scheme = "Bearer"
    if not params:
        return scheme
    return scheme + " " + ", ".join(f'{name}="{value}"' for name, value in params)


def _check_realm(realm: str | None) -> None:
    if realm is not None and not _REALM_CHARS.match(realm):
        raise ValueError("realm contains characters that cannot be quoted in a challenge")


# --- RFC 6749 §4.1.2.1 and §5.2 -------------------------------------------------------------


class InvalidRequestError(OAuthError):
    """The request is missing, repeats or malforms a parameter (RFC 6749 §5.2, RFC 6750 §3.1)."""

    error = "invalid_request"


class InvalidClientError(OAuthError):
    """Client authentication failed (RFC 6749 §5.2).

    400 by default. When the client authenticated with the HTTP ``Authorization`` header, pass
    ``basic_realm``: the error becomes 401 with ``WWW-Authenticate: Basic realm="...",
    error="invalid_client", error_description="..."`` (RFC 6749 §5.2, RFC 7617 §2; a 401
    without a challenge would break RFC 9110 §15.5.2). The error travels in the challenge as
    well as the body, as RFC 6750 §3 does for Bearer: certified clients read a 401's error from
    its challenge.
    """

    error = "invalid_client"

    def __init__(
        self,
        description: str | None = None,
        *,
        detail: str | None = None,
        error_uri: str | None = None,
        basic_realm: str | None = None,
    ) -> None:
        super().__init__(description, detail=detail, error_uri=error_uri)
        _check_realm(basic_realm)
        self.basic_realm = basic_realm
        if basic_realm is not None:
            self.status = 401

    def headers(self) -> tuple[Header, ...]:
        """``Cache-Control: no-store``, plus the Basic challenge when ``basic_realm`` is set."""
        headers = super().headers()
        if self.basic_realm is None:
            return headers
        params = [("realm", self.basic_realm), ("error", self.error)]
        if self.description:
            params.append(("error_description", self.description))
        if self.error_uri is not None:
            params.append(("error_uri", self.error_uri))
        challenge = "Basic " + ", ".join(f'{name}="{value}"' for name, value in params)
        return (*headers, ("WWW-Authenticate", challenge))


class InvalidGrantError(OAuthError):
    """The grant (code, refresh token, device code, ...) is invalid, expired or revoked."""

    error = "invalid_grant"


class UnauthorizedClientError(OAuthError):
    """The client may not use this grant or response type."""

    error = "unauthorized_client"


class UnsupportedGrantTypeError(OAuthError):
    """The server does not support this grant type."""

    error = "unsupported_grant_type"


class InvalidScopeError(OAuthError):
    """The requested scope is invalid, unknown, malformed or exceeds what was granted."""

    error = "invalid_scope"


class AccessDeniedError(OAuthError):
    """The resource owner or server denied the request (RFC 6749 §4.1.2.1, RFC 8628 §3.5)."""

    error = "access_denied"


class UnsupportedResponseTypeError(OAuthError):
    """The server does not support this response type."""

    error = "unsupported_response_type"


class ServerError(OAuthError):
    """An unexpected condition prevented the server from answering (500)."""

    error = "server_error"
    status = 500


class TemporarilyUnavailableError(OAuthError):
    """The server is temporarily overloaded or in maintenance (503)."""

    error = "temporarily_unavailable"
    status = 503


# --- RFC 6750 §3.1 (protected resources, UserInfo) ------------------------------------------


class InvalidTokenError(OAuthError):
    """The access token is expired, revoked, malformed or otherwise invalid (401).

    A 401 must carry a challenge (RFC 9110 §11.6.1): without explicit ``challenges`` a bare
    ``Bearer`` challenge is used.
    """

    error = "invalid_token"
    status = 401
    default_challenges = (BearerChallenge(),)


class InsufficientScopeError(OAuthError):
    """The access token lacks the scope the resource needs (403).

    ``scope`` (space-delimited) is added to the challenges as RFC 6750 §3 describes.
    """

    error = "insufficient_scope"
    status = 403

    def __init__(
        self,
        description: str | None = None,
        *,
        detail: str | None = None,
        error_uri: str | None = None,
        challenges: tuple[Challenge, ...] = (),
        scope: str | None = None,
    ) -> None:
        super().__init__(description, detail=detail, error_uri=error_uri, challenges=challenges)
        if scope is not None and _SAFE_CHAR.search(scope):
            raise ValueError("scope contains characters that cannot be quoted in a challenge")
        self.scope = scope

    def challenge_params(self) -> tuple[Header, ...]:
        """``scope="..."`` when a required scope was given."""
        return () if self.scope is None else (("scope", self.scope),)


# --- RFC 7009 §2.2.1 -------------------------------------------------------------------------


class UnsupportedTokenTypeError(OAuthError):
    """The server cannot revoke this token type."""

    error = "unsupported_token_type"


# --- RFC 8628 §3.5 ---------------------------------------------------------------------------


class AuthorizationPendingError(OAuthError):
    """The user has not yet approved or denied the device authorization."""

    error = "authorization_pending"


class SlowDownError(OAuthError):
    """The device client polls too fast; it must add 5 seconds to its interval."""

    error = "slow_down"


class ExpiredTokenError(OAuthError):
    """The device code has expired; the client must start a new device authorization."""

    error = "expired_token"


# --- RFC 9126 and OIDC Core §3.1.2.6 (request objects) --------------------------------------


class InvalidRequestUriError(OAuthError):
    """The ``request_uri`` is unknown, expired, already used or bound to another client."""

    error = "invalid_request_uri"


class RequestUriNotSupportedError(OAuthError):
    """The server does not accept ``request_uri`` here."""

    error = "request_uri_not_supported"


class InvalidRequestObjectError(OAuthError):
    """The ``request`` object is invalid."""

    error = "invalid_request_object"


class RequestNotSupportedError(OAuthError):
    """The server does not accept the ``request`` parameter."""

    error = "request_not_supported"


class RegistrationNotSupportedError(OAuthError):
    """The server does not accept the ``registration`` parameter."""

    error = "registration_not_supported"


# --- RFC 8707 §2 -----------------------------------------------------------------------------


class InvalidTargetError(OAuthError):
    """The ``resource`` indicator is invalid, unknown or not allowed for this client."""

    error = "invalid_target"


# --- RFC 9449 §7.1, §8, §12.2 ----------------------------------------------------------------


class InvalidDPoPProofError(OAuthError):
    """The DPoP proof is missing, malformed, replayed or does not match the request.

    400 at the token endpoint; 401 with a DPoP challenge at a resource or UserInfo.
    """

    error = "invalid_dpop_proof"
    challenge_status = 401


class UseDPoPNonceError(OAuthError):
    """The proof must carry a server nonce; ``nonce`` goes out in the ``DPoP-Nonce`` header.

    400 at the token endpoint (RFC 9449 §8); 401 with a DPoP challenge at a resource or UserInfo
    (RFC 9449 §9).
    """

    error = "use_dpop_nonce"
    challenge_status = 401

    def __init__(
        self,
        description: str | None = None,
        *,
        nonce: str,
        detail: str | None = None,
        error_uri: str | None = None,
        challenges: tuple[Challenge, ...] = (),
    ) -> None:
        super().__init__(description, detail=detail, error_uri=error_uri, challenges=challenges)
        if not nonce or not _URI_CHARS.match(nonce):
            raise ValueError("a DPoP nonce must be a non-empty string of visible ASCII")
        self.nonce = nonce

    def headers(self) -> tuple[Header, ...]:
        """The base headers plus ``DPoP-Nonce``."""
        return (*super().headers(), ("DPoP-Nonce", self.nonce))


# --- OIDC Core §3.1.2.6 ----------------------------------------------------------------------


class InteractionRequiredError(OAuthError):
    """``prompt=none`` was asked but the user must interact."""

    error = "interaction_required"


class LoginRequiredError(OAuthError):
    """``prompt=none`` was asked but the user is not logged in."""

    error = "login_required"


class AccountSelectionRequiredError(OAuthError):
    """``prompt=none`` was asked but the user must choose an account."""

    error = "account_selection_required"


class ConsentRequiredError(OAuthError):
    """``prompt=none`` was asked but the user must consent."""

    error = "consent_required"
