"""The device-code grant: polling the token endpoint with a device code until it is decided.

Spec: RFC 8628 §3.4 (the token request), §3.5 (``authorization_pending``, ``slow_down``,
``access_denied``, ``expired_token``; the interval grows by 5 seconds after each
``slow_down``); RFC 6749 §5.1, §5.2 (responses; an extra ``interval`` member in the error
body is an allowed extension); RFC 9449 §5 (DPoP); RFC 8707 §2.2 (resource narrowing); OIDC
Core §3.1.3.3 (ID token); authward spec/stores.md §3.3 ("Redeem" precedence, errors, a fresh
refresh family).

Redemption is ``authward.core.device_codes.redeem_device_code`` (poll, expiry, client, DPoP
pre-binding, status, single-use consume, in that order). Every refusal is HTTP 400 with the
RFC 8628 code as is. Tokens are minted like the code grant's: an access token (bound to the
proof key when a proof is sent), an ID token for ``openid``, and a refresh token of a fresh
family for ``offline_access`` when the client may use the refresh grant.

Growing interval, kept in the shared tables (no process memory, any node answers):

* each ``slow_down`` for a code is counted in the replay table under the namespace
  ``device_slow_down`` (keys ``digest(device_code_hash + "\\0" + k)``, k = 1, 2, ...; the first
  key this call records is the new count k, at most ``MAX_SLOW_DOWNS``), and the answer carries
  ``interval = poll_interval_seconds + 5 * k``;
* the code's ``last_polled_at`` is then moved to ``now + 5 * k`` (one guarded ``poll`` with
  interval 0 at that instant), so the next poll is accepted only ``poll_interval_seconds +
  5 * k`` seconds after the ``slow_down``: a client that does not widen its interval keeps
  getting ``slow_down`` with a larger ``interval``. After an accepted poll the base interval
  applies again; the reported interval never shrinks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from authward.core.device_codes import DeviceGrant, DeviceRedeemError, redeem_device_code
from authward.core.errors import (
    AccessDeniedError,
    AuthorizationPendingError,
    ErrorBody,
    ExpiredTokenError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidTargetError,
    OAuthError,
    SlowDownError,
)
from authward.core.grants.issuance import (
    GrantResult,
    TokenRequest,
    issue_id_token,
    issue_user_access_token,
    refresh_data,
)
from authward.core.grants.refresh_token import rotation_for
from authward.core.refresh_rotation import IssueRefused
from authward.stores.digest import digest
from authward.stores.replay import Recorded

if TYPE_CHECKING:
    from authward.core.server import AuthorizationServer

__all__ = [
    "GRANT_TYPE",
    "MAX_SLOW_DOWNS",
    "SLOW_DOWN_NAMESPACE",
    "SLOW_DOWN_STEP_SECONDS",
    "IntervalSlowDownError",
    "redeem",
]

GRANT_TYPE: Final = "urn:ietf:params:oauth:grant-type:device_code"
#: RFC 8628 §3.5: "the interval MUST be increased by 5 seconds".
SLOW_DOWN_STEP_SECONDS: Final = 5
#: The count of ``slow_down`` answers stops growing here (interval base + 60 s by default).
MAX_SLOW_DOWNS: Final = 12
SLOW_DOWN_NAMESPACE: Final = "device_slow_down"



class SlowDownBody(ErrorBody):
    """The ``slow_down`` body with the interval the client must now use (seconds)."""

    interval: int


class IntervalSlowDownError(SlowDownError):
    """``slow_down`` telling the client its new polling ``interval`` in the body."""

    def __init__(self, interval: int, description: str | None = None) -> None:
        super().__init__(description, detail=f"slow_down, interval now {interval}")
        self.interval = interval

    def body(self) -> SlowDownBody:
        """The RFC 6749 §5.2 body plus ``interval``."""
        base = super().body()
        body: SlowDownBody = {"error": base["error"], "interval": self.interval}
        if "error_description" in base:
            body["error_description"] = base["error_description"]
        return body


async def redeem(server: AuthorizationServer, request: TokenRequest) -> GrantResult:
    """Redeem the ``device_code`` of ``request`` or raise the RFC 8628 §3.5 error.

    Raises ``InvalidRequestError`` (no ``device_code``), ``AuthorizationPendingError``,
    ``IntervalSlowDownError``, ``AccessDeniedError``, ``ExpiredTokenError``,
    ``InvalidGrantError`` (unknown, foreign, mismatched-key or spent code) and
    ``InvalidTargetError`` (a ``resource`` the code was not issued for).
    """
    form = request.form
    device_code = form.get_one("device_code")
    if device_code is None:
        raise InvalidRequestError("device_code is required")
    settings = server.settings.device_authorization
    proof = request.proof
    outcome = await redeem_device_code(
        server.stores.device_codes,
        device_code,
        request.client.client_id,
        proof.jkt if proof is not None else None,
        settings.poll_interval_seconds,
        request.now,
    )
    if isinstance(outcome, DeviceRedeemError):
        if outcome.error == "slow_down":
            interval = await _slow_down(server, digest(device_code), request.now)
            raise IntervalSlowDownError(
                interval, f"polling too fast; wait {interval} seconds between requests"
            )
        raise _error(outcome)
    return await _issue_tokens(server, request, outcome)


def _error(outcome: DeviceRedeemError) -> OAuthError:
    if outcome.error == "authorization_pending":
        return AuthorizationPendingError("the user has not yet decided")
    if outcome.error == "access_denied":
        return AccessDeniedError("the user denied the request")
    if outcome.error == "expired_token":
        return ExpiredTokenError("the device code has expired; start again")
    return InvalidGrantError("the device code is invalid", detail=outcome.error)


async def _slow_down(server: AuthorizationServer, device_code_hash: str, now: float) -> int:
    """Count this ``slow_down`` for the code, push its poll stamp out, return the interval."""
    settings = server.settings.device_authorization
    ttl = settings.code_ttl_seconds + SLOW_DOWN_STEP_SECONDS * MAX_SLOW_DOWNS
    count = MAX_SLOW_DOWNS
    for k in range(1, MAX_SLOW_DOWNS + 1):
        recorded = await server.stores.replay.check_and_record(
            SLOW_DOWN_NAMESPACE, f"{device_code_hash}\0{k}", ttl, now=now
        )
        if isinstance(recorded, Recorded):
            count = k
            break
    widen = SLOW_DOWN_STEP_SECONDS * count
    # The stamp only ever moves forward: the guarded poll accepts because every earlier
    # stamp is at most an earlier ``now + widen`` with a smaller ``widen``.
    await server.stores.device_codes.poll(device_code_hash, 0, now=now + widen)
    return settings.poll_interval_seconds + widen


async def _issue_tokens(
    server: AuthorizationServer, request: TokenRequest, grant: DeviceGrant
) -> GrantResult:
    now = request.now
    client = request.client
    resources = grant.resource
    wanted = request.form.get_all("resource")
    if wanted:
        narrowed = tuple(dict.fromkeys(wanted))
        if not set(narrowed) <= set(grant.resource):
            raise InvalidTargetError(
                "resource was not part of the device authorization request",
                detail="resource not granted",
            )
        resources = narrowed
    claims = grant.claims
    access = issue_user_access_token(
        server, request, subject=grant.subject, scopes=grant.scope, resources=resources,
        claims=claims,
    )
    # The device holds the approving browser's session (its sid is in the ID token), so
    # signing out there tells this client too.
    id_token = await issue_id_token(
        server, client, subject=grant.subject, scopes=grant.scope, claims=claims,
        access_token=access.token, nonce=None, now=now,
    )
    refresh_token: str | None = None
    family_id: str | None = None
    data = refresh_data(
        server, request, subject=grant.subject, scopes=grant.scope, resources=resources,
        claims=claims,
    )
    if data is not None:
        issued = await rotation_for(server).issue(data, now=now)  # a fresh family (spec §3.3)
        if isinstance(issued, IssueRefused):  # pragma: no cover - only for an explicit family
            raise InvalidGrantError("unable to issue a refresh token", detail="issue refused")
        refresh_token = issued.token
        family_id = issued.entry.family_id
    return GrantResult(
        access_token=access,
        scopes=grant.scope,
        subject=grant.subject,
        refresh_token=refresh_token,
        id_token=id_token,
        family_id=family_id,
    )


