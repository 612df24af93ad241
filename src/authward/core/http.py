"""The request and response values that cross the core boundary, and error-to-response helpers.

Spec: RFC 9110 §5 (header fields: case-insensitive names, repeated fields), RFC 6749 §3.1 and
§3.2 (parameters without a value count as omitted; no parameter may appear twice), §4.1.2.1
(error redirects), §5.1/§5.2 (no-store JSON responses); RFC 6750 §3 (challenges).

The transport layer builds a ``Request`` from what arrived and turns a ``Response`` back into
bytes: ``json`` is serialised as ``application/json`` (UTF-8) unless the headers name another
content type, and ``location`` becomes the ``Location`` header of a redirect. Core code never
sees a framework object.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import parse_qsl, urlsplit

from authward.core.errors import Challenge, InvalidRequestError, OAuthError, render_challenge
from authward.core.redirects import append_params
from authward.stores.json import JsonValue as JsonValue

Pair = tuple[str, str]
RedirectStatus = Literal[302, 303]


def _pairs(items: Iterable[Pair]) -> tuple[Pair, ...]:
    pairs = tuple(items)
    for pair in pairs:
        if len(pair) != 2 or not isinstance(pair[0], str) or not isinstance(pair[1], str):
            raise TypeError("expected (str, str) pairs")
    return pairs


def _by_name(pairs: tuple[Pair, ...], *, fold_case: bool) -> dict[str, tuple[str, ...]]:
    """Each distinct name (lower-cased with ``fold_case``) to its values, in first-occurrence
    order: lookups cost one dict access instead of a scan."""
    index: dict[str, tuple[str, ...]] = {}
    for key, value in pairs:
        name = key.lower() if fold_case else key
        index[name] = (*index[name], value) if name in index else (value,)
    return index


@dataclass(frozen=True, slots=True)
class Headers:
    """Immutable HTTP header fields: names compare case-insensitively, repeats are kept in order."""

    items: tuple[Pair, ...] = ()
    _index: dict[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)

    def __init__(self, items: Iterable[Pair] = ()) -> None:
        pairs = _pairs(items)
        object.__setattr__(self, "items", pairs)
        object.__setattr__(self, "_index", _by_name(pairs, fold_case=True))

    def get(self, name: str) -> str | None:
        """The first value of ``name``, or ``None``."""
        values = self._index.get(name.lower())
        return values[0] if values else None

    def get_all(self, name: str) -> tuple[str, ...]:
        """Every value of ``name``, in arrival order."""
        return self._index.get(name.lower(), ())

    def get_one(self, name: str) -> str | None:
        """The single value of ``name``, ``None`` if absent; a repeat raises InvalidRequestError."""
        values = self.get_all(name)
        if len(values) > 1:
            raise InvalidRequestError(f"the {name} header must not be repeated")
        return values[0] if values else None

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and bool(self.get_all(name))

    def __iter__(self) -> Iterator[Pair]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    @classmethod
    def of_strings(cls, pairs: tuple[Pair, ...]) -> Headers:
        """Headers from ``pairs`` the caller built as ``(str, str)`` (the transport, from
        decoded bytes): the per-pair type check of the constructor is skipped."""
        headers = cls.__new__(cls)
        object.__setattr__(headers, "items", pairs)
        object.__setattr__(headers, "_index", _by_name(pairs, fold_case=True))
        return headers

    def added(self, items: Iterable[Pair]) -> Headers:
        """A copy with ``items`` appended (existing fields kept)."""
        return Headers((*self.items, *_pairs(items)))


@dataclass(frozen=True, slots=True)
class MultiDict:
    """Immutable query or form parameters that keep every occurrence, in order.

    Repeats are kept so endpoints can refuse them (RFC 6749 §3.1: parameters MUST NOT be
    included more than once); ``get_one`` does exactly that.
    """

    items: tuple[Pair, ...] = ()
    _index: dict[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)

    def __init__(self, items: Iterable[Pair] | Mapping[str, str] = ()) -> None:
        pairs = _pairs(items.items() if isinstance(items, Mapping) else items)
        object.__setattr__(self, "items", pairs)
        object.__setattr__(self, "_index", _by_name(pairs, fold_case=False))

    @classmethod
    def of_strings(cls, pairs: tuple[Pair, ...]) -> MultiDict:
        """Parameters from ``pairs`` the caller built as ``(str, str)`` (``parse_qsl``'s
        output): the per-pair type check of the constructor is skipped."""
        params = cls.__new__(cls)
        object.__setattr__(params, "items", pairs)
        object.__setattr__(params, "_index", _by_name(pairs, fold_case=False))
        return params

    @classmethod
    def parse(cls, encoded: str) -> MultiDict:
        """Parse ``application/x-www-form-urlencoded`` text (a query string or a form body).

        Blank values are kept; malformed percent escapes decode leniently as ``parse_qsl``
        does. Decoding is UTF-8 with replacement characters for invalid bytes.
        """
        return cls(parse_qsl(encoded, keep_blank_values=True, errors="replace"))

    def get(self, name: str) -> str | None:
        """The first value of ``name`` (possibly ``""``), or ``None``."""
        values = self._index.get(name)
        return values[0] if values else None

    def get_all(self, name: str) -> tuple[str, ...]:
        """Every value of ``name``, in order."""
        return self._index.get(name, ())

    def get_one(self, name: str) -> str | None:
        """The parameter's value, ``None`` when absent or empty (RFC 6749 §3.1).

        Raises ``InvalidRequestError`` when the parameter appears more than once.
        """
        values = self.get_all(name)
        if len(values) > 1:
            raise InvalidRequestError(f"{name} must not be repeated")
        if not values or values[0] == "":
            return None
        return values[0]

    def repeated(self) -> tuple[str, ...]:
        """Names that occur more than once, in first-occurrence order."""
        return tuple(name for name, values in self._index.items() if len(values) > 1)

    def keys(self) -> tuple[str, ...]:
        """Distinct names, in first-occurrence order."""
        return tuple(self._index)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._index

    def __iter__(self) -> Iterator[Pair]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


@dataclass(frozen=True, slots=True)
class Request:
    """One HTTP request as core sees it.

    ``url`` is the absolute URL the client used (the transport reconstructs it behind proxies);
    ``query`` is parsed from it, ``form`` holds an ``application/x-www-form-urlencoded`` body,
    ``json`` a parsed JSON body; each is empty/``None`` when absent. ``client_address`` is the
    network address of the peer as the transport saw it (the ASGI server's, after its own
    proxy-header handling), ``None`` when unknown; core uses it only to count failures.
    """

    method: str
    url: str
    headers: Headers = field(default_factory=Headers)
    query: MultiDict = field(default_factory=MultiDict)
    form: MultiDict = field(default_factory=MultiDict)
    json: JsonValue = None
    client_address: str | None = None

    def __post_init__(self) -> None:
        if not self.method or self.method != self.method.upper():
            raise ValueError("method must be an upper-case HTTP method name")

    @classmethod
    def build(
        cls,
        method: str,
        url: str,
        *,
        headers: Iterable[Pair] = (),
        form: Iterable[Pair] | Mapping[str, str] | None = None,
        json: JsonValue = None,
        client_address: str | None = None,
    ) -> Request:
        """Build a request, parsing ``query`` from ``url``'s query component."""
        return cls(
            method=method.upper(),
            url=url,
            headers=Headers(headers),
            query=MultiDict.parse(urlsplit(url).query),
            form=MultiDict(form or ()),
            json=json,
            client_address=client_address,
        )


@dataclass(frozen=True, slots=True)
class Response:
    """One HTTP response as core produces it: a JSON body, a redirect, or no body."""

    status: int
    headers: Headers = field(default_factory=Headers)
    json: Mapping[str, object] | None = None
    location: str | None = None

    def __post_init__(self) -> None:
        if not 100 <= self.status <= 599:
            raise ValueError(f"not an HTTP status: {self.status}")
        if self.json is not None and self.location is not None:
            raise ValueError("a response is either a JSON body or a redirect, not both")
        if self.location is not None and not 300 <= self.status <= 399:
            raise ValueError("a redirect needs a 3xx status")


def json_response(
    body: Mapping[str, object],
    *,
    status: int = 200,
    headers: Iterable[Pair] = (),
    no_store: bool = True,
) -> Response:
    """A JSON response; ``no_store`` adds ``Cache-Control: no-store`` (RFC 6749 §5.1)."""
    base: tuple[Pair, ...] = (("Cache-Control", "no-store"),) if no_store else ()
    return Response(status=status, headers=Headers((*base, *headers)), json=body)


def redirect_response(
    location: str, *, status: RedirectStatus = 302, headers: Iterable[Pair] = ()
) -> Response:
    """A redirect to ``location`` with ``Cache-Control: no-store`` (it may carry a code)."""
    return Response(
        status=status,
        headers=Headers((("Cache-Control", "no-store"), *headers)),
        location=location,
    )


def error_response(error: OAuthError) -> Response:
    """The JSON error response: the error's status, headers and body (RFC 6749 §5.2)."""
    return Response(status=error.status, headers=Headers(error.headers()), json=error.body())


def error_redirect(
    error: OAuthError,
    redirect_uri: str,
    *,
    state: str | None = None,
    iss: str | None = None,
    status: RedirectStatus = 302,
) -> Response:
    """Redirect the error to the client's (already validated) ``redirect_uri``.

    The parameters are appended to any query the URI already has (RFC 6749 §4.1.2.1,
    RFC 9207 §2). Only call this once ``redirect_uri`` and the client are trusted; otherwise
    answer with ``error_response`` or an error page.
    """
    location = append_params(redirect_uri, error.redirect_params(state=state, iss=iss))
    return redirect_response(location, status=status)


def challenge_response(challenges: Iterable[Challenge]) -> Response:
    """401 with bare challenges and no error code, for a request without credentials.

    RFC 6750 §3.1: when the request lacks any authentication information the resource SHOULD
    NOT include an error code.
    """
    rendered = tuple(("WWW-Authenticate", render_challenge(c)) for c in challenges)
    if not rendered:
        raise ValueError("a 401 needs at least one challenge (RFC 9110 §15.5.2)")
    return Response(status=401, headers=Headers((("Cache-Control", "no-store"), *rendered)))
