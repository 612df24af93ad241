"""The device code store contract: its Protocol, records and typed outcomes.

Spec: authward spec/stores.md §2.5 (table), §3.3 (store and state machine), §7 item 8 (approval
and denial check expiry); RFC 8628 §3.3-§3.5.

State machine: ``pending --approve--> approved --consume--> consumed`` and
``pending --deny--> denied``. Every transition is one guarded ``UPDATE``; ``poll`` never changes
the status, it only moves ``last_polled_at`` forward. The store sees only the digest of the device
code and the normalised user code (upper-case, no separators); normalisation and secret handling
live in ``authward.core.device_codes``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

DeviceCodeStatus = Literal["pending", "approved", "denied", "consumed"]
"""A device code's lifecycle state, stored as this lowercase string."""


@dataclass(frozen=True, slots=True)
class NewDeviceCode:
    """What ``put`` stores: a fresh, pending device authorization.

    ``device_code_hash`` is ``authward.stores.digest.digest(device_code)``; ``user_code`` is
    normalised; ``expires_at`` is Unix seconds.
    """

    device_code_hash: str
    user_code: str
    client_id: str
    expires_at: int
    scope: tuple[str, ...] = ()
    resource: tuple[str, ...] = ()
    dpop_jkt: str | None = None


@dataclass(frozen=True, slots=True)
class DeviceCodeEntry:
    """A stored device code as ``poll`` and ``consume`` see it (times in Unix seconds).

    ``granted_scope`` is ``None`` until approval; ``last_polled_at`` is ``None`` until the first
    accepted poll.
    """

    device_code_hash: str
    user_code: str
    client_id: str
    scope: tuple[str, ...]
    resource: tuple[str, ...]
    dpop_jkt: str | None
    status: DeviceCodeStatus
    subject: str | None
    granted_scope: tuple[str, ...] | None
    granted_claims: Mapping[str, object] | None
    expires_at: int
    last_polled_at: int | None


@dataclass(frozen=True, slots=True)
class PendingView:
    """What the verification page may show about a user code (no secret, no subject)."""

    user_code: str
    client_id: str
    scope: tuple[str, ...]
    resource: tuple[str, ...]
    status: DeviceCodeStatus
    expires_at: int


@dataclass(frozen=True, slots=True)
class Approval:
    """The resource owner's decision data bound at approval."""

    subject: str
    granted_scope: tuple[str, ...] = ()
    granted_claims: Mapping[str, object] = field(default_factory=dict)


# --- outcomes ---


@dataclass(frozen=True, slots=True)
class Stored:
    """``put`` wrote the pending row."""


@dataclass(frozen=True, slots=True)
class UserCodeTaken:
    """``put`` found the user code already in use; pick a fresh one and retry."""


@dataclass(frozen=True, slots=True)
class Found:
    """``lookup_user_code`` found the code (whatever its status or expiry)."""

    view: PendingView


@dataclass(frozen=True, slots=True)
class NotFound:
    """No device code has this user code."""


@dataclass(frozen=True, slots=True)
class Decided:
    """``approve`` / ``deny`` moved the code out of ``pending``; ``entry`` is the new row."""

    entry: DeviceCodeEntry


@dataclass(frozen=True, slots=True)
class Expired:
    """The code is still pending but its ``expires_at`` has passed; nothing was changed."""


@dataclass(frozen=True, slots=True)
class AlreadyDecided:
    """The code was no longer pending; ``status`` is what the follow-up read saw."""

    status: DeviceCodeStatus


@dataclass(frozen=True, slots=True)
class Polled:
    """``poll`` was accepted and stamped ``last_polled_at``; ``entry`` is the row, any status."""

    entry: DeviceCodeEntry


@dataclass(frozen=True, slots=True)
class SlowDown:
    """``poll`` came sooner than ``interval`` after the last accepted poll; nothing changed."""


@dataclass(frozen=True, slots=True)
class Missing:
    """No device code has this hash."""


@dataclass(frozen=True, slots=True)
class Consumed:
    """``consume`` won: ``entry`` has status ``consumed``."""

    entry: DeviceCodeEntry


@dataclass(frozen=True, slots=True)
class Failed:
    """``consume`` lost: unknown, not approved, already consumed, or expired."""


PutOutcome = Stored | UserCodeTaken
LookupOutcome = Found | NotFound
DecisionOutcome = Decided | NotFound | Expired | AlreadyDecided
PollOutcome = Polled | SlowDown | Missing
ConsumeOutcome = Consumed | Failed


class DeviceCodeStore(Protocol):
    """Persistence of RFC 8628 device codes. Every ``now`` is Unix seconds (None: store clock)."""

    async def put(self, entry: NewDeviceCode, *, now: float | None = None) -> PutOutcome:
        """Insert ``entry`` as ``pending`` with no subject and no poll stamp.

        One ``INSERT ... ON CONFLICT DO NOTHING``. A taken ``user_code`` gives ``UserCodeTaken``
        (the caller retries with a fresh code); an existing ``device_code_hash`` is a caller bug
        and raises ``DuplicateKeyError``. Over-long values raise before any write.
        """
        ...

    async def lookup_user_code(
        self, user_code: str, *, now: float | None = None
    ) -> LookupOutcome:
        """Read the pending view of a normalised ``user_code``; no status or expiry filter."""
        ...

    async def approve(
        self, user_code: str, approval: Approval, *, now: float | None = None
    ) -> DecisionOutcome:
        """Move ``pending`` to ``approved`` binding the approval; one guarded ``UPDATE``.

        The guard is ``status = 'pending' AND expires_at > now``. On 0 rows a follow-up read
        classifies the loss: ``NotFound``, ``AlreadyDecided`` (status not pending) or ``Expired``.
        """
        ...

    async def deny(self, user_code: str, *, now: float | None = None) -> DecisionOutcome:
        """Move ``pending`` to ``denied``; same guard and classification as ``approve``."""
        ...

    async def poll(
        self, device_code_hash: str, interval: int, *, now: float | None = None
    ) -> PollOutcome:
        """Stamp ``last_polled_at = now`` if the last accepted poll is ``interval`` s old or more.

        One ``UPDATE ... RETURNING`` with no status or expiry filter, so the row comes back in
        whatever state it is. On 0 rows: ``SlowDown`` if the row exists (its stamp is not moved),
        else ``Missing``.
        """
        ...

    async def consume(
        self, device_code_hash: str, *, now: float | None = None
    ) -> ConsumeOutcome:
        """Move ``approved`` to ``consumed`` if ``expires_at > now``; one guarded ``UPDATE``.

        Exactly one of any number of concurrent callers gets ``Consumed``; the rest ``Failed``.
        """
        ...
