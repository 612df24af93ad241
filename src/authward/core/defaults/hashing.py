"""The two at-rest forms of host secrets (fast SHA-256 digests, argon2id) and their verification.

Spec: RFC 6819 §5.1.4.1.3 (no cleartext credentials at rest), §5.1.4.2.2 (high-entropy secrets),
§5.1.4.2.3 (guessing); RFC 9106 (Argon2); RFC 4648 §4 (base64); authward ARCHITECTURE.md
("secrets authward generates ... stored as SHA-256 digests checked in constant time; argon2 is
for human-chosen secrets and passwords only, with bounded concurrency").

Two forms, chosen by who picked the secret:

* **Fast digest** ``$sha256$<unpadded standard base64 of SHA-256(secret as UTF-8)>``, for
  secrets authward (or any CSPRNG) generated: at least 43 characters, i.e. 256 random bits as
  base64url. A digest of such a secret cannot be brute-forced, so no key stretching is needed;
  checking it costs one SHA-256 and one ``hmac.compare_digest`` (microseconds, no thread hop).
  :func:`hash_secret` with ``fast=True`` refuses anything shorter than 43 characters or with
  fewer than 16 distinct characters (a human-chosen value, not a random one).
* **argon2id** ``$argon2id$...`` (64 MiB, t=3, p=4 by default; 100-200 ms per verify) for
  human-chosen secrets and passwords. :class:`Argon2Verifier` runs it in a worker thread
  through a bounded semaphore, so at most ``max_concurrent`` argon2 computations run at once
  in the process, whatever the load, and the event loop never blocks.

Produce either without the CLI (or use ``authward secret generate`` / ``authward secret hash``)::

    python -c "from authward.core.defaults import generate_client_secret as g; print(g())"
    python -c "from authward.core.defaults import hash_secret; print(hash_secret('pw'))"

Nothing here logs, and no error message contains a secret.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import re
import secrets
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError

__all__ = [
    "FAST_DIGEST_PREFIX",
    "MIN_FAST_SECRET_CHARS",
    "MIN_FAST_SECRET_DISTINCT_CHARS",
    "Argon2Verifier",
    "GeneratedSecret",
    "check_fast_secret",
    "default_argon2_concurrency",
    "fast_digest_bytes",
    "fast_digest_matches",
    "generate_client_secret",
    "hash_secret",
    "is_argon2_hash",
    "is_fast_digest",
]

#: The prefix of the fast form (PHC-string-like: ``$<algorithm>$<digest>``).
FAST_DIGEST_PREFIX: Final = "$sha256$"
#: The shortest secret the fast form accepts: 32 random bytes as unpadded base64url.
MIN_FAST_SECRET_CHARS: Final = 43
#: Fewer distinct characters than this and a secret does not look random (43 random base64url
#: characters hold about 31 distinct ones; fewer than 16 happens with probability ~1e-15).
MIN_FAST_SECRET_DISTINCT_CHARS: Final = 16
_DIGEST_BYTES: Final = 32
_FAST_FORM: Final = re.compile(r"\$sha256\$([A-Za-z0-9+/]{43})")

#: A syntactically valid hash nobody knows the secret of, verified against when there is no
#: real hash so an unknown user or client costs about as much time as a known one.
_PLACEHOLDER_SECRET = "authward: no such account"  # noqa: S105 - a placeholder, not a secret
#: The fast-form counterpart: compared against, and the answer thrown away.
_PLACEHOLDER_DIGEST: Final = hashlib.sha256(_PLACEHOLDER_SECRET.encode("utf-8")).digest()


@dataclass(frozen=True, slots=True)
class GeneratedSecret:
    """A new random client secret and its fast digest; ``secret`` is kept out of ``repr``."""

    secret: str = field(repr=False)
    digest: str


def check_fast_secret(plain: str) -> None:
    """Raise ``ValueError`` unless ``plain`` looks like a generated secret (module docstring).

    The message names the rule broken (never the secret) and points at argon2 for
    human-chosen values.
    """
    if not isinstance(plain, str) or not plain:
        raise ValueError("cannot hash an empty secret")
    if len(plain) < MIN_FAST_SECRET_CHARS:
        raise ValueError(
            f"a fast $sha256$ digest is only for generated secrets of at least "
            f"{MIN_FAST_SECRET_CHARS} characters (32 random bytes, e.g. "
            f"secrets.token_urlsafe(32)); this one has {len(plain)}. Generate one with "
            "`authward secret generate`, or store a human-chosen secret as argon2"
        )
    distinct = len(set(plain))
    if distinct < MIN_FAST_SECRET_DISTINCT_CHARS:
        raise ValueError(
            f"a fast $sha256$ digest is only for random secrets; this one uses only {distinct} "
            f"distinct characters (at least {MIN_FAST_SECRET_DISTINCT_CHARS} expected). Generate "
            "one with `authward secret generate`, or store a human-chosen secret as argon2"
        )


def hash_secret(plain: str, *, fast: bool = False, hasher: PasswordHasher | None = None) -> str:
    """The at-rest form of ``plain`` for the TOML file.

    ``fast=True``: the ``$sha256$`` digest, for a generated client secret only; raises
    ``ValueError`` when ``plain`` is shorter than 43 characters or does not look random
    (:func:`check_fast_secret`). Otherwise the argon2id hash (``hasher`` sets its cost; the
    default is argon2-cffi's RFC 9106 low-memory profile), for passwords and human-chosen
    secrets. An empty ``plain`` is a ``ValueError`` either way.
    """
    if fast:
        if hasher is not None:
            raise ValueError("hasher sets argon2 parameters; a fast digest takes none")
        check_fast_secret(plain)
        return FAST_DIGEST_PREFIX + _b64(_sha256(plain))
    if not isinstance(plain, str) or not plain:
        raise ValueError("cannot hash an empty secret")
    return (hasher or PasswordHasher()).hash(plain)


def generate_client_secret() -> GeneratedSecret:
    """A new client secret (``secrets.token_urlsafe(32)``: 256 bits, 43 characters) and its
    fast digest. Show the secret once; store only the digest."""
    while True:
        plain = secrets.token_urlsafe(32)
        try:
            return GeneratedSecret(secret=plain, digest=hash_secret(plain, fast=True))
        except ValueError:  # pragma: no cover - fewer than 16 distinct characters: ~1e-15
            continue


def is_argon2_hash(value: object) -> bool:
    """True when ``value`` looks like an encoded argon2 hash (``$argon2id$...``)."""
    if not isinstance(value, str) or not value.startswith("$argon2"):
        return False
    try:
        PasswordHasher().check_needs_rehash(value)
    except (InvalidHashError, ValueError):
        return False
    return True


def is_fast_digest(value: object) -> bool:
    """True when ``value`` is a well-formed fast digest (``$sha256$`` + 43 base64 chars)."""
    return fast_digest_bytes(value) is not None


def fast_digest_bytes(value: object) -> bytes | None:
    """The 32 digest bytes a fast digest encodes, or ``None`` when ``value`` is not one
    (wrong prefix, padding, alphabet, length, or non-canonical trailing bits)."""
    if not isinstance(value, str):
        return None
    match = _FAST_FORM.fullmatch(value)
    if match is None:
        return None
    encoded = match.group(1)
    raw = base64.b64decode(encoded + "=", validate=True)
    if len(raw) != _DIGEST_BYTES or _b64(raw) != encoded:
        return None
    return raw


def fast_digest_matches(digests: Sequence[bytes], presented: str) -> bool:
    """True when SHA-256 of ``presented`` equals one of ``digests`` (from
    :func:`fast_digest_bytes`).

    Every digest is compared with ``hmac.compare_digest`` (no early exit); with no digest the
    placeholder is compared instead, so the work does not depend on whether the client has
    one. An empty or non-string ``presented`` is ``False`` after the same work.
    """
    usable = isinstance(presented, str) and bool(presented)
    candidate = _sha256(presented if usable else "")
    matched = False
    for stored in digests or (_PLACEHOLDER_DIGEST,):
        matched |= hmac.compare_digest(stored, candidate)
    return matched and usable and bool(digests)


def default_argon2_concurrency() -> int:
    """The number of CPUs this process may run on, at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - platforms without affinity
        return max(1, os.cpu_count() or 1)


class Argon2Verifier:
    """Checks a presented secret against stored argon2 hashes, off the event loop, bounded.

    Each :meth:`verify` runs in a worker thread after taking one slot of a semaphore of
    ``max_concurrent`` slots (default :func:`default_argon2_concurrency`); a slot is given back
    only when the thread has finished, even if the awaiting request was cancelled, so at most
    ``max_concurrent`` argon2 computations run at once through this verifier. Share one
    verifier between the client registry and the user directory to bound them together.

    ``hasher`` fixes the cost of the placeholder hash (tests pass a cheap one); stored hashes
    are verified with the parameters they encode.
    """

    def __init__(
        self, hasher: PasswordHasher | None = None, *, max_concurrent: int | None = None
    ) -> None:
        if max_concurrent is None:
            max_concurrent = default_argon2_concurrency()
        if type(max_concurrent) is not int or max_concurrent < 1:
            raise ValueError(f"max_concurrent must be an integer of at least 1, got "
                             f"{max_concurrent!r}")
        self._hasher = hasher or PasswordHasher()
        self._max_concurrent = max_concurrent
        self._placeholder: str | None = None
        self._placeholder_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slots: asyncio.Semaphore | None = None

    @property
    def max_concurrent(self) -> int:
        """The most argon2 computations this verifier runs at once."""
        return self._max_concurrent

    async def verify(self, hashes: Iterable[str], presented: str) -> bool:
        """True when ``presented`` matches one of ``hashes``; ``False`` for anything else.

        Never raises and never logs. With no hash or an empty secret it still spends one
        argon2 verification so timing does not reveal whether the account exists. Every hash
        of the list is tried (no early exit).
        """
        candidates = tuple(hashes)
        if not isinstance(presented, str) or not presented or not candidates:
            await self._run(self._verify_placeholder)
            return False
        return await self._run(self._verify_all, candidates, presented)

    async def _run(self, job: Callable[..., bool], *args: object) -> bool:
        loop = asyncio.get_running_loop()
        slots = self._slots_for(loop)
        await slots.acquire()
        try:
            future = loop.run_in_executor(None, job, *args)
        except BaseException:
            slots.release()
            raise
        future.add_done_callback(lambda _: slots.release())
        return await asyncio.shield(future)

    def _slots_for(self, loop: asyncio.AbstractEventLoop) -> asyncio.Semaphore:
        """The semaphore of ``loop`` (asyncio primitives belong to one loop; a verifier built
        outside any loop, or reused by tests across loops, gets one per loop)."""
        if self._slots is None or self._loop is not loop:
            self._loop = loop
            self._slots = asyncio.Semaphore(self._max_concurrent)
        return self._slots

    def _verify_placeholder(self) -> bool:
        with self._placeholder_lock:
            if self._placeholder is None:
                self._placeholder = self._hasher.hash(_PLACEHOLDER_SECRET)
            placeholder = self._placeholder
        self._verify_one(placeholder, "x")
        return False

    def _verify_all(self, candidates: tuple[str, ...], presented: str) -> bool:
        results = [self._verify_one(stored, presented) for stored in candidates]
        return any(results)

    def _verify_one(self, stored: str, presented: str) -> bool:
        try:
            return self._hasher.verify(stored, presented)
        except Exception:  # any failure is "no match", by contract
            return False


def _sha256(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).rstrip(b"=").decode("ascii")
