"""PKCE with S256 only: syntax checks for verifier and challenge, and the verification.

Spec: RFC 7636 §4.1 (code_verifier), §4.2 (code_challenge, S256), §4.6 (server verification);
OAuth 2.1 draft §4.1.1 (S256 required, plain refused by this server).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Final, Literal

from authward.core.errors import InvalidGrantError, InvalidRequestError
from authward.stores.digest import b64url

ChallengeMethod = Literal["S256"]

#: RFC 7636 §4.1: 43-128 characters of [A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~".
_VERIFIER: Final = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
#: RFC 7636 §4.2: BASE64URL(SHA256(verifier)) without padding is always 43 characters.
_CHALLENGE: Final = re.compile(r"[A-Za-z0-9\-_]{43}")


def check_challenge(code_challenge: str | None, method: str | None) -> ChallengeMethod:
    """Validate the authorization request's PKCE parameters; return the method.

    A missing challenge, a method other than ``S256`` (``plain`` included; a missing method
    means ``plain`` per RFC 7636 §4.3) or a malformed challenge raises ``InvalidRequestError``.
    """
    if code_challenge is None or code_challenge == "":
        raise InvalidRequestError("code_challenge is required")
    if method is None or method == "":
        raise InvalidRequestError("code_challenge_method must be S256")
    if method != "S256":
        raise InvalidRequestError("code_challenge_method must be S256; plain is not supported")
    if not _CHALLENGE.fullmatch(code_challenge):
        raise InvalidRequestError("code_challenge must be 43 base64url characters")
    return "S256"


def is_valid_verifier(code_verifier: str) -> bool:
    """True when ``code_verifier`` has RFC 7636 §4.1 syntax."""
    return _VERIFIER.fullmatch(code_verifier) is not None


def s256_challenge(code_verifier: str) -> str:
    """BASE64URL(SHA256(ASCII(code_verifier))) without padding (RFC 7636 §4.2)."""
    return b64url(hashlib.sha256(code_verifier.encode("ascii")).digest())


def verify(code_verifier: str | None, code_challenge: str) -> None:
    """Check the token request's verifier against the stored S256 challenge (RFC 7636 §4.6).

    A missing or malformed verifier raises ``InvalidRequestError``; a well-formed one that does
    not match raises ``InvalidGrantError``. The comparison is constant-time.
    """
    if code_verifier is None or code_verifier == "":
        raise InvalidRequestError("code_verifier is required")
    if not is_valid_verifier(code_verifier):
        raise InvalidRequestError("code_verifier must be 43-128 unreserved characters")
    computed = s256_challenge(code_verifier).encode("ascii")
    if not hmac.compare_digest(computed, code_challenge.encode("utf-8")):
        raise InvalidGrantError("code_verifier does not match the code_challenge")
