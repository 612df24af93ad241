"""Redirect URIs: match the requested one against the registered list and build the redirect.

Spec: RFC 6749 §3.1.2 (absolute, no fragment, query kept), §3.1.2.3 (omitted with one
registration), §4.1.2 and Appendix B (form-encoded response parameters); RFC 8252 §7.3 and §8.3
(loopback IP literals with any port for native clients, never "localhost"); OAuth 2.1 draft
§2.3.1 (exact string matching).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Final
from urllib.parse import SplitResult, urlencode, urlsplit, urlunsplit

from authward.core.errors import InvalidRequestError

#: RFC 8252 §7.3 loopback IP literals, as ``urlsplit().hostname`` reports them.
_LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "::1"})
#: A port number as a client writes one: decimal, no leading zero, not empty.
_PORT: Final = re.compile(r"[1-9][0-9]{0,4}")


def check_syntax(uri: str) -> None:
    """Raise ``InvalidRequestError`` unless ``uri`` is absolute with a host-or-path and no fragment.

    Private-use schemes (``com.example.app:/cb``) are accepted; only the shape is checked here.
    """
    try:
        parts = urlsplit(uri)
    except ValueError as exc:
        raise InvalidRequestError("redirect_uri is not a valid URI", detail=str(exc)) from exc
    if not parts.scheme:
        raise InvalidRequestError("redirect_uri must be an absolute URI")
    if "#" in uri:
        raise InvalidRequestError("redirect_uri must not contain a fragment")
    if not (parts.netloc or parts.path):
        raise InvalidRequestError("redirect_uri must not be empty after its scheme")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in uri):
        raise InvalidRequestError("redirect_uri must not contain whitespace or control characters")


def resolve(requested: str | None, registered: Sequence[str], *, native: bool = False) -> str:
    """Return the redirect URI to use, or raise ``InvalidRequestError``.

    * ``requested is None``: allowed only when exactly one URI is registered, which is returned.
    * Otherwise ``requested`` must equal a registered URI character for character.
    * For native clients only, a registered ``http://127.0.0.1...`` or ``http://[::1]...``
      URI also matches the same URI with any port (RFC 8252 §7.3); ``localhost`` gets no such
      exception.

    A failure here means the server MUST NOT redirect: the caller shows an error to the user.
    """
    if requested is None:
        if len(registered) == 1:
            return registered[0]
        raise InvalidRequestError("redirect_uri is required when several are registered")
    check_syntax(requested)
    if requested in registered:
        return requested
    if native and any(_loopback_match(requested, candidate) for candidate in registered):
        return requested
    raise InvalidRequestError(
        "redirect_uri does not match a registered redirect URI",
        detail=f"requested {requested!r}",
    )


def is_loopback(uri: str) -> bool:
    """True for an ``http`` URI whose host is the IP literal 127.0.0.1 or [::1]."""
    parts = _split(uri)
    return parts is not None and _is_loopback_parts(parts)


def append_params(uri: str, params: Iterable[tuple[str, str]]) -> str:
    """Return ``uri`` with ``params`` form-encoded and appended to its query.

    An existing query is kept and extended with ``&``. A URI with a fragment raises
    ``ValueError``: only validated redirect URIs may be passed here.
    """
    parts = urlsplit(uri)
    if "#" in uri:
        raise ValueError("a redirect URI must not contain a fragment")
    extra = urlencode(list(params))
    if not extra:
        return uri
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def _split(uri: str) -> SplitResult | None:
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises ValueError for a malformed or out-of-range port
    except ValueError:
        return None
    return parts


def _is_loopback_parts(parts: SplitResult) -> bool:
    return (
        parts.scheme == "http"
        and parts.username is None
        and parts.password is None
        and parts.hostname in _LOOPBACK_HOSTS
    )


def _canonical_port(netloc: str) -> bool:
    """True when ``netloc`` has no port, or a port of 1-65535 written without leading zeros
    (``:0`` names no port a client could listen on; ``:080`` is not the form RFC 3986 §6.2.3
    normalises to, and comparing it as 80 would accept a spelling no client registered)."""
    host_end = netloc.rfind("]") + 1
    _, colon, port = netloc[host_end:].rpartition(":")
    if not colon:
        return True
    return _PORT.fullmatch(port) is not None and int(port) <= 65535


def _loopback_match(requested: str, registered: str) -> bool:
    req = _split(requested)
    reg = _split(registered)
    if req is None or reg is None:
        return False
    if not (_is_loopback_parts(req) and _is_loopback_parts(reg)):
        return False
    if not _canonical_port(req.netloc):
        return False
    return (
        req.hostname == reg.hostname
        and req.path == reg.path
        and req.query == reg.query
        and req.fragment == reg.fragment == ""
    )
