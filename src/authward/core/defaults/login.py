"""The default login session: an HMAC-SHA256-signed cookie naming the signed-in end-user.

Spec: RFC 2104 (HMAC); RFC 6265 §4.1 (cookies: HttpOnly, Secure, SameSite); OIDC Core 1.0
§2 (auth_time, amr), §3.1.2.1 (max_age); RFC 6749 §10.15 and RFC 9700 §4.11 (open redirectors:
``return_to`` is followed only when it points under the issuer).

The cookie value is ``base64url(JSON payload) "." base64url(HMAC-SHA256(secret, payload))``;
the payload holds ``sub``, ``auth_time``, ``sid`` (random), ``amr`` and ``exp``. Nothing in it is
secret, but nothing in it can be forged without the key. Signatures are compared in constant
time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from typing import Final
from urllib.parse import unquote, urlencode, urlsplit

from authward.core.clock import Clock, SystemClock
from authward.core.http import Request
from authward.core.policy import Authentication, EndedSession

__all__ = ["MIN_COOKIE_SECRET_BYTES", "SignedCookieLogin"]

MIN_COOKIE_SECRET_BYTES: Final = 32
_MAX_COOKIE_CHARS: Final = 4096


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SignedCookieLogin:
    """``ResourceOwnerLogin`` backed by a signed cookie set by the default login page.

    ``secret`` signs the cookie (at least 32 bytes; every node of a deployment shares it).
    ``issuer`` is the server's issuer; the login page lives at ``issuer + login_path``.
    ``lifetime`` bounds a session in seconds.
    """

    def __init__(
        self,
        secret: bytes,
        *,
        issuer: str,
        login_path: str = "/login",
        cookie_name: str = "authward_login",
        lifetime: int = 8 * 3600,
        clock: Clock | None = None,
    ) -> None:
        if not isinstance(secret, bytes) or len(secret) < MIN_COOKIE_SECRET_BYTES:
            raise ValueError(f"the login cookie secret must be at least "
                             f"{MIN_COOKIE_SECRET_BYTES} bytes")
        if not login_path.startswith("/"):
            raise ValueError("login_path must start with '/'")
        if type(lifetime) is not int or lifetime <= 0:
            raise ValueError("lifetime must be a positive number of seconds")
        self._secret = secret
        self.issuer = issuer.rstrip("/")
        self.login_path = login_path
        self.cookie_name = cookie_name
        self.lifetime = lifetime
        self._clock = clock or SystemClock()

    @property
    def secure(self) -> bool:
        """Whether the cookie must carry ``Secure`` (an https issuer)."""
        return urlsplit(self.issuer).scheme == "https"

    @property
    def cookie_path(self) -> str:
        """The cookie's ``Path``: the issuer's path, so a mounted server keeps to its prefix."""
        return urlsplit(self.issuer).path or "/"

    # --- ResourceOwnerLogin ---------------------------------------------------------------

    async def authenticated(self, request: Request) -> Authentication | None:
        """The user named by a valid, unexpired cookie on ``request``, else ``None``."""
        for value in cookie_values(request, self.cookie_name):
            found = self.verify(value)
            if found is not None:
                return found
        return None

    def login_url(self, return_to: str) -> str:
        """The login page URL carrying ``return_to`` (followed only if under the issuer)."""
        return f"{self.issuer}{self.login_path}?{urlencode({'return_to': return_to})}"

    async def terminate_session(self, request: Request) -> EndedSession | None:
        """``SessionTerminator``: the session named by the request's cookie, with a
        ``Set-Cookie`` header that deletes the cookie; ``None`` when no valid cookie was sent.

        A signed cookie cannot be revoked on the server: deleting it on the user agent is what
        ends the session (a copy taken before stays valid until its ``exp``).
        """
        found = await self.authenticated(request)
        if found is None:
            return None
        return EndedSession(found, headers=(("Set-Cookie", self.deletion_cookie()),))

    def deletion_cookie(self) -> str:
        """The ``Set-Cookie`` value that deletes the session cookie (same name, path, flags)."""
        parts = [
            f"{self.cookie_name}=\"\"",
            "expires=Thu, 01 Jan 1970 00:00:00 GMT",
            "Max-Age=0",
            f"Path={self.cookie_path}",
            "HttpOnly",
            "SameSite=lax",
        ]
        if self.secure:
            parts.append("Secure")
        return "; ".join(parts)

    # --- issuing and checking ---------------------------------------------------------------

    def issue(self, subject: str, *, amr: tuple[str, ...] = ("pwd",), now: float | None = None
              ) -> str:
        """A fresh cookie value for ``subject`` signed in now (new random ``sid``)."""
        at = int(self._clock.now() if now is None else now)
        payload = {
            "sub": subject,
            "auth_time": at,
            "sid": secrets.token_urlsafe(16),
            "amr": list(amr),
            "exp": at + self.lifetime,
        }
        body = _b64(json.dumps(payload, separators=(",", ":")).encode())
        return f"{body}.{self._sign(body)}"

    def verify(self, value: str, *, now: float | None = None) -> Authentication | None:
        """The session in cookie ``value`` when the signature checks out and it has not
        expired; ``None`` for anything else (never raises)."""
        if not isinstance(value, str) or len(value) > _MAX_COOKIE_CHARS or value.count(".") != 1:
            return None
        body, signature = value.split(".")
        if not hmac.compare_digest(signature.encode("ascii", "replace"),
                                   self._sign(body).encode("ascii")):
            return None
        try:
            payload = json.loads(_unb64(body))
        except (ValueError, binascii.Error):
            return None
        if not isinstance(payload, dict):
            return None
        sub, auth_time, sid = payload.get("sub"), payload.get("auth_time"), payload.get("sid")
        exp, amr = payload.get("exp"), payload.get("amr")
        if not (
            isinstance(sub, str) and sub and isinstance(sid, str) and sid
            and type(auth_time) is int and type(exp) is int
            and isinstance(amr, list) and all(isinstance(a, str) for a in amr)
        ):
            return None
        current = self._clock.now() if now is None else now
        if current >= exp:
            return None
        return Authentication(subject=sub, auth_time=auth_time, sid=sid, amr=tuple(amr))

    def safe_return_to(self, return_to: str | None) -> str:
        """``return_to`` when it is an absolute URL under the issuer, else the issuer root.

        Under the issuer means: same scheme and host[:port] as the issuer, a path equal to or
        below the issuer's path, no dot segments, no backslashes or control characters.
        """
        fallback = self.issuer + "/"
        if not return_to or not isinstance(return_to, str):
            return fallback
        if any(ch in return_to for ch in "\\\t\r\n ") or any(ord(ch) < 0x20 for ch in return_to):
            return fallback
        try:
            target = urlsplit(return_to)
            issuer = urlsplit(self.issuer)
        except ValueError:
            return fallback
        if (target.scheme, target.netloc.lower()) != (issuer.scheme, issuer.netloc.lower()):
            return fallback
        if target.username is not None or target.password is not None or target.fragment:
            return fallback
        base = issuer.path.rstrip("/")
        if not (target.path == base or target.path.startswith(base + "/")):
            return fallback
        if any(segment in (".", "..") for segment in unquote(target.path).split("/")):
            return fallback
        return return_to

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self._secret, body.encode("ascii", "replace"),
                             hashlib.sha256).digest())


def cookie_values(request: Request, name: str) -> tuple[str, ...]:
    """Every value of cookie ``name`` in the request's ``Cookie`` header(s), in order."""
    found: list[str] = []
    for header in request.headers.get_all("cookie"):
        for part in header.split(";"):
            key, sep, value = part.strip().partition("=")
            if sep and key == name:
                found.append(value.strip().strip('"'))
    return tuple(found)
