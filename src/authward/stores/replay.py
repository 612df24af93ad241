"""The replay check contract: first-sighting records of DPoP proof and assertion ``jti``s.

Spec: authward spec/stores.md §2.8 (table ``dpop_replays``), §3.6 (check and keys), §7 item 6
(fixed-length keys); RFC 9449 §11.1, RFC 7523 §3 item 7.

Every caller shares one table. The key written is ``namespace + ":" + digest(raw_jti)`` (digest =
base64url(SHA-256), 43 characters), so its length is fixed whatever the client sent. Namespaces:

* ``"dpop"``: a DPoP proof's ``jti`` (token, PAR, device authorization, UserInfo, resource
  servers); TTL = the proof acceptance window (typically 60 s); a replay is
  ``invalid_dpop_proof``.
* ``"client_assertion"``: a ``private_key_jwt`` assertion, raw value
  ``client_assertion_jti(client_id, jti)`` = ``client_id + "\\0" + jti``; TTL = the assertion
  policy's maximum lifetime; a replay is ``invalid_client``.
* ``"idjag"``: an ID-JAG (``jwt-bearer``) assertion's ``jti``; TTL =
  ``max(1, min(exp - now, 300))``; a replay is ``invalid_grant``.

The same insert-if-absent serves as a counter shared by every node (a key per counted event):

* ``"device_slow_down"``: the ``slow_down`` answers one device code got (the interval grows by
  5 s for each, RFC 8628 §3.5); TTL = the code's lifetime plus the widest interval;
* ``"device_user_code"`` and ``"login_password"``: fixed-window attempt limits
  (``authward.core.attempt_limits``) on user-code entry per signed-in user and on password
  logins per username; TTL = the window.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Protocol

from authward.stores.digest import digest
from authward.stores.errors import StoreContractError, ValueTooLongError

DPOP_NAMESPACE: Final = "dpop"
CLIENT_ASSERTION_NAMESPACE: Final = "client_assertion"
IDJAG_NAMESPACE: Final = "idjag"
#: A namespace is a short lowercase token (the key then stays well under 255 characters).
NAMESPACE_PATTERN: Final = re.compile(r"[a-z_]{1,32}")
#: A raw ``jti`` longer than this is a malformed proof or assertion (spec §3.6 hardening).
MAX_RAW_JTI_LENGTH: Final = 1024
DEFAULT_REPLAY_TTL_SECONDS: Final = 60


# --- outcomes ---


@dataclass(frozen=True, slots=True)
class Recorded:
    """First sighting: the key was recorded by this call."""


@dataclass(frozen=True, slots=True)
class Replay:
    """The key was already recorded (even if expired and not yet swept): reject the request."""


RecordOutcome = Recorded | Replay


def replay_key(namespace: str, raw_jti: str) -> str:
    """The stored key ``namespace:digest(raw_jti)``; bad input raises before any write.

    ``namespace`` must match ``[a-z_]{1,32}`` and ``raw_jti`` must be a non-empty string of at
    most ``MAX_RAW_JTI_LENGTH`` characters (else ``ValueTooLongError``).
    """
    if not isinstance(namespace, str) or not NAMESPACE_PATTERN.fullmatch(namespace):
        raise StoreContractError(f"replay namespace must match [a-z_]{{1,32}}, got {namespace!r}")
    if not isinstance(raw_jti, str) or not raw_jti:
        raise StoreContractError("jti must be a non-empty string")
    if len(raw_jti) > MAX_RAW_JTI_LENGTH:
        raise ValueTooLongError("jti", len(raw_jti), MAX_RAW_JTI_LENGTH)
    return f"{namespace}:{digest(raw_jti)}"


def client_assertion_jti(client_id: str, jti: str) -> str:
    """The raw value recorded for a client assertion: ``client_id + "\\0" + jti``.

    Scoping by client keeps one client from burning another's ``jti``. Record it under
    ``CLIENT_ASSERTION_NAMESPACE``; the ``MAX_RAW_JTI_LENGTH`` limit applies to the whole value.
    """
    return f"{client_id}\0{jti}"


class ReplayStore(Protocol):
    """The shared replay cache. ``now`` is Unix seconds (None: the store clock)."""

    async def check_and_record(
        self,
        namespace: str,
        raw_jti: str,
        ttl_seconds: int = DEFAULT_REPLAY_TTL_SECONDS,
        *,
        now: float | None = None,
    ) -> RecordOutcome:
        """Record ``replay_key(namespace, raw_jti)`` unless present; the database decides.

        One ``INSERT ... ON CONFLICT (jti) DO NOTHING`` with ``expires_at = now + ttl`` and
        ``inserted_at = now`` (microseconds); 1 affected row is ``Recorded``, 0 is ``Replay``.
        Exactly one of any number of concurrent callers gets ``Recorded``. An expired but unswept
        key is still a ``Replay``. A bad namespace, empty or over-long ``jti`` or non-positive
        ttl raises before any write; any database error propagates (never "not a replay").
        """
        ...

    async def is_recorded(
        self, namespace: str, raw_jti: str, *, now: float | None = None
    ) -> bool:
        """Whether ``replay_key(namespace, raw_jti)`` is recorded; reads only, writes nothing.

        Same key rules as :meth:`check_and_record`, and the same answer it would give: an
        expired but unswept key still counts. For counters that must be checked without being
        claimed (an attempt limit's lock marker); a replay check must use ``check_and_record``.
        """
        ...

    async def sweep(self, *, now: float | None = None) -> int:
        """Delete keys with ``expires_at < now`` and return how many went."""
        ...
