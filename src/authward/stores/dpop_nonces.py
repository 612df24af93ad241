"""The DPoP nonce store contract: server-issued ``DPoP-Nonce`` values and their policy.

Spec: authward spec/stores.md §2.7 (table), §3.5 (store), §7 item 7, "Project decisions" item 7;
RFC 9449 §8.

A nonce is 32 random bytes, base64url without padding. ``valid`` is a read-only check (the
``windowed`` policy: a nonce may be reused until it expires); ``accept`` is the atomic single-use
consume (the ``single_use`` policy).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, Protocol

NoncePolicy = Literal["windowed", "single_use"]
"""How endpoints check a proof's nonce; ``windowed`` is the default.

``windowed``: the read-only ``valid`` check, so a nonce is reusable until it expires (RFC 9449
allows this, and clients that send parallel requests keep working). ``single_use``: the atomic
``accept``, so each nonce is good for exactly one request.
"""

DEFAULT_NONCE_POLICY: Final[NoncePolicy] = "windowed"
#: Seconds an issued nonce lives when the store is built without another default (spec §8).
DEFAULT_NONCE_TTL_SECONDS: Final = 300


# --- outcomes of accept ---


@dataclass(frozen=True, slots=True)
class Accepted:
    """This call consumed the nonce (``used_at`` is now set)."""


@dataclass(frozen=True, slots=True)
class Unknown:
    """No such nonce (or a non-string / impossible value)."""


@dataclass(frozen=True, slots=True)
class Used:
    """The nonce was already consumed."""


@dataclass(frozen=True, slots=True)
class Expired:
    """The nonce was issued more than ``ttl`` seconds ago and is unused."""


AcceptOutcome = Accepted | Unknown | Used | Expired


class DpopNonceStore(Protocol):
    """Persistence of server-issued DPoP nonces. ``now`` is Unix seconds (None: store clock)."""

    async def issue(self, ttl: int | None = None, *, now: float | None = None) -> str:
        """Store and return a fresh nonce living ``ttl`` seconds (None: the store's default).

        ``ttl`` must be a positive integer; anything else raises ``StoreContractError``.
        """
        ...

    async def valid(self, nonce: object, *, now: float | None = None) -> bool:
        """Read-only: True iff ``nonce`` is a stored, unused nonce with ``expires_at > now``.

        A non-string ``nonce`` is False. Nothing is written.
        """
        ...

    async def accept(
        self, nonce: object, ttl: int, *, now: float | None = None
    ) -> AcceptOutcome:
        """Consume ``nonce`` once if it was issued at most ``ttl`` seconds ago (inclusive).

        One ``UPDATE ... SET used_at = now WHERE nonce = ? AND used_at IS NULL AND
        issued_at >= now - ttl``; the stored ``expires_at`` is not consulted. Exactly one of any
        number of concurrent callers gets ``Accepted``. On 0 rows a follow-up read classifies:
        ``Unknown``, ``Used`` or ``Expired``. A non-positive ``ttl`` raises.
        """
        ...
