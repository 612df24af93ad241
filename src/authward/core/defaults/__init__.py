"""Host defaults that run out of the box: TOML clients and users, signed-cookie login, policies.

Spec: see each module (RFC 6749 §2, OIDC Core §5.4, RFC 6265). A host replaces any of them by
passing its own implementation of the matching ``authward.core.policy`` Protocol.
"""

from __future__ import annotations

from authward.core.defaults.clients import FileClientRegistry
from authward.core.defaults.hashing import (
    Argon2Verifier,
    GeneratedSecret,
    generate_client_secret,
    hash_secret,
    is_argon2_hash,
    is_fast_digest,
)
from authward.core.defaults.login import MIN_COOKIE_SECRET_BYTES, SignedCookieLogin
from authward.core.defaults.policies import (
    AllowRequestedScopes,
    AlwaysAskConsent,
    LoggingEventSink,
)
from authward.core.defaults.toml_file import HostFileError
from authward.core.defaults.users import SCOPE_CLAIMS, FileUserDirectory, User
from authward.core.defaults.verified_secrets import VerifiedSecretCache

__all__ = [
    "MIN_COOKIE_SECRET_BYTES",
    "SCOPE_CLAIMS",
    "AllowRequestedScopes",
    "AlwaysAskConsent",
    "Argon2Verifier",
    "FileClientRegistry",
    "FileUserDirectory",
    "GeneratedSecret",
    "HostFileError",
    "LoggingEventSink",
    "SignedCookieLogin",
    "User",
    "VerifiedSecretCache",
    "generate_client_secret",
    "hash_secret",
    "is_argon2_hash",
    "is_fast_digest",
]
