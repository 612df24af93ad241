"""The device authorization grant's decisions: user codes, issuance and the polling state machine.

Spec: RFC 8628 §3.2, §3.3, §3.5, §6.1; authward spec/stores.md §3.3 ("Core rules").

Transport-free and store-agnostic: every function takes a ``DeviceCodeStore`` and an explicit
``now`` (Unix seconds). User codes come from the base-20 alphabet ``BCDFGHJKLMNPQRSTVWXZ`` (no
vowels, nothing that looks alike), are stored normalised and shown hyphenated in groups of four.
Device codes are 32 random bytes; only their digest reaches the store.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from authward.stores.device_codes import (
    Approval,
    Consumed,
    DecisionOutcome,
    DeviceCodeStore,
    LookupOutcome,
    Missing,
    NewDeviceCode,
    SlowDown,
    Stored,
)
from authward.stores.digest import b64url, digest

USER_CODE_ALPHABET: Final = "BCDFGHJKLMNPQRSTVWXZ"
DEFAULT_USER_CODE_LENGTH: Final = 8
DEFAULT_CODE_TTL_SECONDS: Final = 600
DEFAULT_POLL_INTERVAL_SECONDS: Final = 5
#: How many user codes ``issue_device_code`` tries before giving up (spec §3.3: 5).
USER_CODE_ATTEMPTS: Final = 5
DEVICE_CODE_BYTES: Final = 32
#: Random bytes at or above this value are discarded so ``byte % 20`` is unbiased (240 = 12 * 20).
_REJECTION_CEILING: Final = 256 // len(USER_CODE_ALPHABET) * len(USER_CODE_ALPHABET)
_SEPARATORS: Final = frozenset("-")

RandomBytes = Callable[[int], bytes]
"""A source of cryptographically secure random bytes (``secrets.token_bytes`` by default)."""

DeviceTokenError = Literal[
    "authorization_pending", "slow_down", "expired_token", "access_denied", "invalid_grant"
]
"""The token-endpoint error codes of a device-code redemption (RFC 8628 §3.5), as on the wire."""


# --- user codes ---


@dataclass(frozen=True, slots=True)
class UserCode:
    """A well-formed, normalised user code (upper-case, no separators)."""

    value: str


@dataclass(frozen=True, slots=True)
class InvalidUserCode:
    """User input that cannot be a user code; no store was asked."""

    error: Literal["invalid_user_code"] = "invalid_user_code"


def generate_user_code(
    length: int = DEFAULT_USER_CODE_LENGTH, *, random_bytes: RandomBytes = secrets.token_bytes
) -> str:
    """Draw a normalised user code of ``length`` alphabet characters from a CSPRNG.

    Each character is one random byte below 240 taken modulo 20 (rejection sampling, unbiased).
    """
    if isinstance(length, bool) or not isinstance(length, int) or length <= 0:
        raise ValueError(f"user code length must be a positive integer, got {length!r}")
    chars: list[str] = []
    while len(chars) < length:
        for byte in random_bytes(length - len(chars)):
            if byte < _REJECTION_CEILING:
                chars.append(USER_CODE_ALPHABET[byte % len(USER_CODE_ALPHABET)])
    return "".join(chars)


def format_user_code(code: str) -> str:
    """The display form of a normalised user code: groups of four joined by hyphens."""
    return "-".join(code[i : i + 4] for i in range(0, len(code), 4))


def normalise_user_code(
    raw: object, length: int = DEFAULT_USER_CODE_LENGTH
) -> UserCode | InvalidUserCode:
    """Upper-case ``raw``, drop whitespace and hyphens, then require ``length`` alphabet chars."""
    if not isinstance(raw, str):
        return InvalidUserCode()
    value = "".join(c for c in raw.upper() if not c.isspace() and c not in _SEPARATORS)
    if len(value) != length or any(c not in USER_CODE_ALPHABET for c in value):
        return InvalidUserCode()
    return UserCode(value)


async def look_up_user_code(
    store: DeviceCodeStore,
    raw_user_code: object,
    *,
    user_code_length: int = DEFAULT_USER_CODE_LENGTH,
    now: float | None = None,
) -> LookupOutcome | InvalidUserCode:
    """The pending view for what the user typed; malformed input never reaches the store."""
    code = normalise_user_code(raw_user_code, user_code_length)
    if isinstance(code, InvalidUserCode):
        return code
    return await store.lookup_user_code(code.value, now=now)


async def approve_user_code(
    store: DeviceCodeStore,
    raw_user_code: object,
    approval: Approval,
    *,
    user_code_length: int = DEFAULT_USER_CODE_LENGTH,
    now: float | None = None,
) -> DecisionOutcome | InvalidUserCode:
    """Approve what the user typed; malformed input never reaches the store."""
    code = normalise_user_code(raw_user_code, user_code_length)
    if isinstance(code, InvalidUserCode):
        return code
    return await store.approve(code.value, approval, now=now)


async def deny_user_code(
    store: DeviceCodeStore,
    raw_user_code: object,
    *,
    user_code_length: int = DEFAULT_USER_CODE_LENGTH,
    now: float | None = None,
) -> DecisionOutcome | InvalidUserCode:
    """Deny what the user typed; malformed input never reaches the store."""
    code = normalise_user_code(raw_user_code, user_code_length)
    if isinstance(code, InvalidUserCode):
        return code
    return await store.deny(code.value, now=now)


# --- issuance ---


def new_device_code(random_bytes: RandomBytes = secrets.token_bytes) -> str:
    """A fresh device code: 32 random bytes, base64url without padding (43 characters)."""
    return b64url(random_bytes(DEVICE_CODE_BYTES))


@dataclass(frozen=True, slots=True)
class IssuedDeviceCode:
    """A stored device authorization: the plaintext device code goes to the client only."""

    device_code: str
    #: The display form (``BCDF-GHJK``).
    user_code: str
    expires_at: int
    expires_in: int


@dataclass(frozen=True, slots=True)
class UserCodeUnavailable:
    """Every attempted user code was taken; the endpoint answers ``server_error``."""

    reason: Literal["user_code_unavailable"] = "user_code_unavailable"
    error: Literal["server_error"] = "server_error"
    description: str = "could not allocate a user code; retry"


IssueOutcome = IssuedDeviceCode | UserCodeUnavailable


async def issue_device_code(
    store: DeviceCodeStore,
    *,
    client_id: str,
    now: float,
    scope: tuple[str, ...] = (),
    resource: tuple[str, ...] = (),
    dpop_jkt: str | None = None,
    code_ttl: int = DEFAULT_CODE_TTL_SECONDS,
    user_code_length: int = DEFAULT_USER_CODE_LENGTH,
    random_bytes: RandomBytes = secrets.token_bytes,
) -> IssueOutcome:
    """Store a new pending device code and return its plaintext and display user code.

    One device code; on ``UserCodeTaken`` a fresh user code is drawn, ``USER_CODE_ATTEMPTS``
    (5) attempts in all, then ``UserCodeUnavailable``.
    """
    device_code = new_device_code(random_bytes)
    expires_at = int(now) + code_ttl
    for _ in range(USER_CODE_ATTEMPTS):
        user_code = generate_user_code(user_code_length, random_bytes=random_bytes)
        outcome = await store.put(
            NewDeviceCode(
                device_code_hash=digest(device_code),
                user_code=user_code,
                client_id=client_id,
                expires_at=expires_at,
                scope=tuple(scope),
                resource=tuple(resource),
                dpop_jkt=dpop_jkt,
            ),
            now=now,
        )
        if isinstance(outcome, Stored):
            return IssuedDeviceCode(
                device_code=device_code,
                user_code=format_user_code(user_code),
                expires_at=expires_at,
                expires_in=code_ttl,
            )
        # UserCodeTaken: draw another user code for the same device code.
    return UserCodeUnavailable()


# --- redemption ---


@dataclass(frozen=True, slots=True)
class DeviceGrant:
    """What the token endpoint mints from: the consumed, approved device code."""

    client_id: str
    subject: str
    scope: tuple[str, ...]
    resource: tuple[str, ...]
    dpop_jkt: str | None
    claims: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DeviceRedeemError:
    """A refused redemption; ``error`` is rendered on the wire as is (HTTP 400)."""

    error: DeviceTokenError


RedeemOutcome = DeviceGrant | DeviceRedeemError


async def redeem_device_code(
    store: DeviceCodeStore,
    device_code: object,
    client_id: str,
    dpop_jkt: str | None,
    interval: int,
    now: float,
) -> RedeemOutcome:
    """Run the RFC 8628 §3.5 polling state machine for one token request.

    Precedence (exact): poll (``slow_down``; unknown code ``invalid_grant``), then expiry
    (``expired_token``, beating a stale approval), then the client binding and the DPoP
    pre-binding (``invalid_grant``), then the status (``authorization_pending``,
    ``access_denied``, anything but ``approved`` ``invalid_grant``), and finally the single-use
    consume (a lost consume is ``invalid_grant``). Every check runs before the consume, so a
    mismatched poll never burns the code.
    """
    if not isinstance(device_code, str) or not device_code:
        return DeviceRedeemError("invalid_grant")
    device_code_hash = digest(device_code)
    polled = await store.poll(device_code_hash, interval, now=now)
    if isinstance(polled, SlowDown):
        return DeviceRedeemError("slow_down")
    if isinstance(polled, Missing):
        return DeviceRedeemError("invalid_grant")
    entry = polled.entry
    if not entry.expires_at > now:
        return DeviceRedeemError("expired_token")
    if entry.client_id != client_id:
        return DeviceRedeemError("invalid_grant")
    if entry.dpop_jkt and dpop_jkt != entry.dpop_jkt:
        return DeviceRedeemError("invalid_grant")
    if entry.status == "pending":
        return DeviceRedeemError("authorization_pending")
    if entry.status == "denied":
        return DeviceRedeemError("access_denied")
    if entry.status != "approved":
        return DeviceRedeemError("invalid_grant")
    consumed = await store.consume(device_code_hash, now=now)
    if not isinstance(consumed, Consumed):
        return DeviceRedeemError("invalid_grant")
    row = consumed.entry
    subject = row.subject
    if subject is None:  # an approved row always has one; refuse rather than mint for nobody
        return DeviceRedeemError("invalid_grant")
    return DeviceGrant(
        client_id=row.client_id,
        subject=subject,
        scope=row.granted_scope if row.granted_scope is not None else row.scope,
        resource=row.resource,
        dpop_jkt=row.dpop_jkt,
        claims=dict(row.granted_claims or {}),
    )
