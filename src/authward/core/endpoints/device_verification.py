"""The device verification step: the signed-in user enters a user code, then approves or denies.

Spec: RFC 8628 §3.3 (user interaction: enter the code, see the client and scopes, decide),
§3.3.1 (``verification_uri_complete`` prefill), §5.1 (user-code brute forcing), §5.4 (the user
is shown what they approve); authward spec/stores.md §3.3 ("Verification page": approval is an
explicit POST, granted scope is the host-narrowed scope).

Transport-free: the caller (the HTML pages of ``authward.asgi.device_pages``) passes the
signed-in ``Authentication`` and what the user typed, and gets a typed outcome back.

Brute-force limit (RFC 8628 §5.1): an :class:`~authward.core.attempt_limits.AttemptLimit`
kept in the shared replay table so every node enforces the same budget (no process memory). Per
signed-in subject and fixed window of ``failed_user_code_window_seconds``, under the replay
namespace ``device_user_code``:

* a well-formed but unknown user code is a failure (``max_failed_user_codes`` per window).
  When none is left, the answer is ``TooManyAttempts`` (the page says 429 until the window
  ends). The last allowed failure also claims every step, locking the correct-code path too;
* a step with a known user code (showing it, approving or denying) is a step
  (``CORRECT_STEPS_PER_WINDOW`` per window); none left is ``TooManyAttempts`` as well. So once
  the budget is spent, right and wrong codes get the same answer and guessing learns nothing.

Only unknown codes are counted as failures; malformed input (wrong length or characters) never
reaches the store and is not counted. Keys expire with their window.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

from authward.core.attempt_limits import AttemptLimit, AttemptsLeft, AttemptWindow, Locked
from authward.core.clients import Client
from authward.core.device_codes import (
    InvalidUserCode,
    format_user_code,
    normalise_user_code,
)
from authward.core.policy import Authentication, Event
from authward.stores.device_codes import (
    AlreadyDecided,
    Approval,
    Decided,
    Expired,
    Found,
    PendingView,
)

if TYPE_CHECKING:
    from authward.core.server import AuthorizationServer

__all__ = [
    "CORRECT_STEPS_PER_WINDOW",
    "USER_CODE_NAMESPACE",
    "CodeRefused",
    "Decision",
    "DeviceApproved",
    "DeviceDenied",
    "DevicePrompt",
    "RefusalReason",
    "TooManyAttempts",
    "decide",
    "look_up",
]

USER_CODE_NAMESPACE: Final = "device_user_code"
#: Steps with a known user code (show, approve, deny) one subject may take per window.
CORRECT_STEPS_PER_WINDOW: Final = 20

Decision = Literal["approve", "deny"]
RefusalReason = Literal["malformed", "unknown", "expired", "decided"]


@dataclass(frozen=True, slots=True)
class DevicePrompt:
    """Ask the user whether ``client`` may have ``scopes`` (the host-narrowed scope)."""

    user_code: str
    client: Client
    scopes: tuple[str, ...]
    resource: tuple[str, ...]
    expires_at: int


@dataclass(frozen=True, slots=True)
class CodeRefused:
    """The code cannot be used: ``malformed``, ``unknown``, ``expired`` or already ``decided``.

    ``attempts_left`` is the number of further unknown codes allowed in this window (set for
    ``unknown`` only).
    """

    reason: RefusalReason
    attempts_left: int | None = None


@dataclass(frozen=True, slots=True)
class TooManyAttempts:
    """The subject's budget for this window is spent; try again after ``retry_after`` s."""

    retry_after: int


@dataclass(frozen=True, slots=True)
class DeviceApproved:
    """The device code was approved for the signed-in user with ``scopes``."""

    client: Client
    scopes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DeviceDenied:
    """The device code was denied; the device's next poll gets ``access_denied``."""

    client: Client


LookUpOutcome = DevicePrompt | CodeRefused | TooManyAttempts
DecideOutcome = DeviceApproved | DeviceDenied | CodeRefused | TooManyAttempts


async def look_up(
    server: AuthorizationServer, authn: Authentication, raw_user_code: object
) -> LookUpOutcome:
    """What the user typed, as a prompt to approve or deny, or why it cannot be used."""
    now = server.clock.now()
    found = await _find(server, authn, raw_user_code, now)
    if not isinstance(found, _Usable):
        return found
    return DevicePrompt(
        user_code=format_user_code(found.view.user_code),
        client=found.client,
        scopes=found.scopes,
        resource=found.view.resource,
        expires_at=found.view.expires_at,
    )


async def decide(
    server: AuthorizationServer,
    authn: Authentication,
    raw_user_code: object,
    decision: Decision,
) -> DecideOutcome:
    """Approve or deny the device code behind ``raw_user_code`` for ``authn.subject``.

    The approval binds the subject, the host-narrowed scope and the sign-in facts
    (``auth_time``, ``acr``, ``amr``, ``sid``) the ID token will carry. Emits
    ``device.approved`` or ``device.denied``.
    """
    now = server.clock.now()
    found = await _find(server, authn, raw_user_code, now)
    if not isinstance(found, _Usable):
        return found
    store = server.stores.device_codes
    code = found.view.user_code
    if decision == "approve":
        claims: dict[str, object] = {"auth_time": authn.auth_time, "sid": authn.sid}
        if authn.acr is not None:
            claims["acr"] = authn.acr
        if authn.amr:
            claims["amr"] = list(authn.amr)
        outcome = await store.approve(
            code,
            Approval(subject=authn.subject, granted_scope=found.scopes, granted_claims=claims),
            now=now,
        )
    else:
        outcome = await store.deny(code, now=now)
    if isinstance(outcome, Expired):
        return CodeRefused("expired")
    if isinstance(outcome, AlreadyDecided):
        return CodeRefused("decided")
    if not isinstance(outcome, Decided):
        return CodeRefused("unknown")
    data = {"client_id": found.client.client_id, "subject": authn.subject}
    if decision == "approve":
        await server.policy.events.emit(
            Event("device.approved", now, {**data, "scope": " ".join(found.scopes)})
        )
        return DeviceApproved(found.client, found.scopes)
    await server.policy.events.emit(Event("device.denied", now, data))
    return DeviceDenied(found.client)


# --- lookup with the brute-force limit ---


@dataclass(frozen=True, slots=True)
class _Usable:
    view: PendingView
    client: Client
    scopes: tuple[str, ...]


async def _find(
    server: AuthorizationServer, authn: Authentication, raw_user_code: object, now: float
) -> _Usable | CodeRefused | TooManyAttempts:
    settings = server.settings.device_authorization
    code = normalise_user_code(raw_user_code, settings.user_code_length)
    if isinstance(code, InvalidUserCode):
        return CodeRefused("malformed")
    found = await server.stores.device_codes.lookup_user_code(code.value, now=now)
    limiter = _limit(server).window(server.stores.replay, authn.subject, now)
    if not isinstance(found, Found):
        failed = await limiter.fail()
        if not isinstance(failed, AttemptsLeft):
            return await _locked(server, authn, limiter)
        await server.policy.events.emit(
            Event("device.user_code_unknown", now, {"subject": authn.subject, "left": failed.left})
        )
        return CodeRefused("unknown", attempts_left=failed.left)
    if isinstance(await limiter.step(), Locked):
        return await _locked(server, authn, limiter)
    view = found.view
    if view.status != "pending":
        return CodeRefused("decided")
    if not view.expires_at > now:
        return CodeRefused("expired")
    client = await server.policy.clients.get_client(view.client_id)
    if client is None:
        return CodeRefused("unknown")
    offered = await server.policy.scopes.grantable_scopes(client, view.scope, authn.subject)
    scopes = tuple(s for s in dict.fromkeys(offered) if s in view.scope)
    return _Usable(view, client, scopes)


def _limit(server: AuthorizationServer) -> AttemptLimit:
    settings = server.settings.device_authorization
    return AttemptLimit(
        namespace=USER_CODE_NAMESPACE,
        max_failures=settings.max_failed_user_codes,
        window_seconds=settings.failed_user_code_window_seconds,
        max_steps=CORRECT_STEPS_PER_WINDOW,
    )


async def _locked(
    server: AuthorizationServer, authn: Authentication, limiter: AttemptWindow
) -> TooManyAttempts:
    await server.policy.events.emit(
        Event("device.user_code_locked", limiter.now, {"subject": authn.subject})
    )
    return TooManyAttempts(limiter.retry_after)
