"""The device verification step: the signed-in user enters a user code, then approves or denies.

Spec: RFC 8628 §3.3 (user interaction: enter the code, see the client and scopes, decide),
§3.3.1 (``verification_uri_complete`` prefill), §5.1 (user-code brute forcing), §5.4 (the user
is shown what they approve); authward spec/stores.md §3.3 ("Verification page": approval is an
explicit POST, granted scope is the host-narrowed scope).

Transport-free: the caller (the HTML pages of ``authward.asgi.device_pages``) passes the
signed-in ``Authentication`` and what the user typed, and gets a typed outcome back.

Brute-force limit (RFC 8628 §5.1), kept in the shared replay table so every node enforces the
same budget (no process memory). Per signed-in subject and fixed window of
``failed_user_code_window_seconds`` (``window = floor(now / window_seconds)``), under the replay
namespace ``device_user_code``:

* a well-formed but unknown user code is a failure: it records the first free key of
  ``F1..FN`` (``N = max_failed_user_codes``). When none is free, the answer is
  ``TooManyAttempts`` (the page says 429 until the window ends). The call that records ``FN``
  also claims every ``C`` key below, locking the correct-code path too;
* a step with a known user code (showing it, approving or denying) records the first free key
  of ``C1..C{CORRECT_STEPS_PER_WINDOW}``; none free is ``TooManyAttempts`` as well. So once the
  budget is spent, right and wrong codes get the same answer and guessing learns nothing.

Only unknown codes are counted as failures; malformed input (wrong length or characters) never
reaches the store and is not counted. Keys expire with their window.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

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
from authward.stores.replay import Recorded

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
    limiter = _Limiter(server, authn.subject, now)
    if not isinstance(found, Found):
        left = await limiter.fail()
        if left is None:
            return await _locked(server, authn, limiter)
        await server.policy.events.emit(
            Event("device.user_code_unknown", now, {"subject": authn.subject, "left": left})
        )
        return CodeRefused("unknown", attempts_left=left)
    if not await limiter.step():
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


async def _locked(
    server: AuthorizationServer, authn: Authentication, limiter: _Limiter
) -> TooManyAttempts:
    await server.policy.events.emit(
        Event("device.user_code_locked", limiter.now, {"subject": authn.subject})
    )
    return TooManyAttempts(limiter.retry_after)


class _Limiter:
    """The per-subject fixed-window counters of the module docstring."""

    def __init__(self, server: AuthorizationServer, subject: str, now: float) -> None:
        settings = server.settings.device_authorization
        self._replay = server.stores.replay
        self._max_failures = settings.max_failed_user_codes
        window = settings.failed_user_code_window_seconds
        self._window = int(now) // window
        self.now = now
        #: Seconds until the window ends (at least 1): the keys' TTL and the Retry-After.
        self.retry_after = max(1, (self._window + 1) * window - int(now))
        self._prefix = f"{subject}\0{self._window}\0"

    async def _record(self, key: str) -> bool:
        outcome = await self._replay.check_and_record(
            USER_CODE_NAMESPACE, self._prefix + key, self.retry_after, now=self.now
        )
        return isinstance(outcome, Recorded)

    async def fail(self) -> int | None:
        """Count a failure: the failures still allowed after it, or None when none was free."""
        for k in range(1, self._max_failures + 1):
            if await self._record(f"F{k}"):
                if k == self._max_failures:
                    for step in range(1, CORRECT_STEPS_PER_WINDOW + 1):
                        await self._record(f"C{step}")
                return self._max_failures - k
        return None

    async def step(self) -> bool:
        """Claim one known-code step; False when the window's steps are spent or locked."""
        for step in range(1, CORRECT_STEPS_PER_WINDOW + 1):
            if await self._record(f"C{step}"):
                return True
        return False
