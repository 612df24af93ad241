"""The refresh-successor envelope: AES-256-GCM over canonical JSON, bound to its parent row.

Spec: authward spec/stores.md §3.2.6 "Python (PROPOSAL)", §7 item 4.

Envelope (the ``successor`` column value)::

    {"v": 2, "kid": "<key id>", "ct": "<base64url(nonce || ciphertext || tag)>"}

* key: HKDF-SHA256 (no salt, ``info=b"authward:refresh-successor:v2"``, 32 bytes) of a secret
  of at least 32 bytes; several secrets may be configured, selected by ``kid``, one of them
  active for sealing;
* nonce: 96 random bits per envelope;
* AAD: the canonical JSON array ``[label, parent token_hash, family_id, successor generation]``,
  so an envelope copied onto another row fails authentication;
* plaintext: canonical JSON ``{token, generation, context, retry_until}`` (never pickle).

Opening never raises on bad input: a missing key, an unknown ``kid``, tampering, a copied
envelope or a malformed value all give None, which callers treat as "no successor".
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping
from typing import Any, Final, Literal, TypedDict, TypeGuard

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from authward.stores.digest import b64url
from authward.stores.errors import StoreContractError
from authward.stores.refresh import RefreshData, Successor

VERSION: Final = 2
HKDF_INFO: Final = b"authward:refresh-successor:v2"
AAD_LABEL: Final = "authward:refresh-successor:v2"
MIN_SECRET_BYTES: Final = 32
MAX_KID_LENGTH: Final = 64
_NONCE_BYTES: Final = 12


class SuccessorKeyError(StoreContractError):
    """The successor key configuration is unusable (short secret, bad or unknown kid)."""


class SuccessorEnvelope(TypedDict):
    """The JSON object stored in the ``successor`` column."""

    v: Literal[2]
    kid: str
    ct: str


def check_successor_keys(keys: Mapping[str, bytes], active_kid: str | None) -> str:
    """Validate a key set and return the active ``kid``; raise ``SuccessorKeyError`` if unusable.

    Every secret must be ``bytes`` of at least 32 bytes and every ``kid`` a non-empty string of
    at most 64 characters. ``active_kid`` may be omitted only when there is exactly one key.
    """
    if not keys:
        raise SuccessorKeyError("no refresh successor key is configured")
    for kid, secret in keys.items():
        if not isinstance(kid, str) or not kid or len(kid) > MAX_KID_LENGTH:
            raise SuccessorKeyError(
                f"successor key ids must be non-empty strings of at most {MAX_KID_LENGTH} "
                f"characters, got {kid!r}"
            )
        if not isinstance(secret, bytes) or len(secret) < MIN_SECRET_BYTES:
            raise SuccessorKeyError(
                f"refresh successor secret {kid!r} must be at least {MIN_SECRET_BYTES} bytes"
            )
    if active_kid is None:
        if len(keys) != 1:
            raise SuccessorKeyError("several successor keys are configured: name the active kid")
        return next(iter(keys))
    if active_kid not in keys:
        raise SuccessorKeyError(f"the active successor kid {active_kid!r} is not configured")
    return active_kid


class SuccessorCipher:
    """Seals and opens successor envelopes with a set of keys, one of them active."""

    def __init__(self, keys: Mapping[str, bytes], active_kid: str | None = None) -> None:
        """Derive one AES-256-GCM key per ``kid``; see ``check_successor_keys`` for the rules."""
        self._active = check_successor_keys(keys, active_kid)
        self._aeads = {kid: AESGCM(_derive(secret)) for kid, secret in keys.items()}

    @property
    def active_kid(self) -> str:
        """The ``kid`` new envelopes are sealed with."""
        return self._active

    def seal(self, successor: Successor, *, parent_hash: str, family_id: str) -> SuccessorEnvelope:
        """Encrypt ``successor`` for the row ``parent_hash`` of ``family_id``."""
        nonce = os.urandom(_NONCE_BYTES)
        aad = _aad(parent_hash, family_id, successor.generation)
        ct = self._aeads[self._active].encrypt(nonce, _plaintext(successor), aad)
        return {"v": VERSION, "kid": self._active, "ct": b64url(nonce + ct)}

    def open(
        self, envelope: object, *, parent_hash: str, family_id: str, generation: int
    ) -> Successor | None:
        """Decrypt an envelope stored on row ``parent_hash`` of ``family_id`` whose successor
        must have ``generation``. Any failure of any kind gives None."""
        if not isinstance(envelope, dict) or envelope.get("v") != VERSION:
            return None
        kid, ct = envelope.get("kid"), envelope.get("ct")
        if not isinstance(kid, str) or not isinstance(ct, str) or kid not in self._aeads:
            return None
        try:
            raw = base64.urlsafe_b64decode(ct + "=" * (-len(ct) % 4))
        except (binascii.Error, ValueError):
            return None
        if len(raw) <= _NONCE_BYTES + 16:
            return None
        try:
            plain = self._aeads[kid].decrypt(
                raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], _aad(parent_hash, family_id, generation)
            )
            payload = json.loads(plain)
        except (InvalidTag, ValueError):
            return None
        successor = successor_from_json(payload)
        if successor is None or successor.generation != generation:
            return None
        return successor


def successor_to_json(successor: Successor) -> dict[str, Any]:
    """The JSON object form of ``successor`` (plaintext of an envelope)."""
    c = successor.context
    extra = {} if successor.access_token is None else {"access_token": successor.access_token}
    return {
        **extra,
        "token": successor.token,
        "generation": successor.generation,
        "retry_until": successor.retry_until,
        "context": {
            "subject": c.subject,
            "scope": list(c.scope),
            "resource": list(c.resource),
            "acr": c.acr,
            "auth_time": c.auth_time,
            "client_id": c.client_id,
            "dpop_jkt": c.dpop_jkt,
            "claims": dict(c.claims),
        },
    }


def successor_from_json(payload: object) -> Successor | None:
    """Normalise a successor object (string keys) to the contract shape, filling defaults
    (``scope``/``resource`` ``[]``, ``claims`` ``{}``, optional fields None). A malformed
    value gives None."""
    if not isinstance(payload, dict):
        return None
    token, generation, context = (payload.get(k) for k in ("token", "generation", "context"))
    retry_until = payload.get("retry_until")
    access_token = payload.get("access_token")
    if not isinstance(token, str) or not token or not _is_int(generation):
        return None
    if access_token is not None and not isinstance(access_token, str):
        return None
    if retry_until is not None and not _is_int(retry_until):
        return None
    if not isinstance(context, dict):
        return None
    subject = context.get("subject")
    scope = context.get("scope") or []
    resource = context.get("resource") or []
    claims = context.get("claims") or {}
    auth_time = context.get("auth_time")
    optional = [context.get(k) for k in ("acr", "client_id", "dpop_jkt")]
    if (
        not isinstance(subject, str)
        or not _str_list(scope)
        or not _str_list(resource)
        or not isinstance(claims, dict)
        or (auth_time is not None and not _is_int(auth_time))
        or not all(v is None or isinstance(v, str) for v in optional)
    ):
        return None
    acr, client_id, dpop_jkt = optional
    return Successor(
        token=token,
        generation=generation,
        retry_until=retry_until,
        access_token=access_token,
        context=RefreshData(
            subject=subject,
            scope=tuple(scope),
            resource=tuple(resource),
            acr=acr,
            auth_time=auth_time,
            client_id=client_id,
            dpop_jkt=dpop_jkt,
            claims=claims,
        ),
    )


def _derive(secret: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=HKDF_INFO).derive(secret)


def _canonical(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _aad(parent_hash: str, family_id: str, generation: int) -> bytes:
    return _canonical([AAD_LABEL, parent_hash, family_id, generation])


def _plaintext(successor: Successor) -> bytes:
    return _canonical(successor_to_json(successor))


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _str_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)
