"""A scripted browser for the default HTML pages: follow redirects, fill the login form, answer
the consent form, and stop at the redirect back to the client.

Spec: RFC 6749 §4.1.1-§4.1.2 (the front channel); OIDC Core 1.0 §3.1.2.3-§3.1.2.4 (login and
consent); HTML Living Standard §4.10 (form submission: hidden inputs and the pressed button).

Forms are parsed with the standard library's ``html.parser``: every ``<form>`` with its action,
method, ``<input>`` fields and named ``<button>`` values. Cookies persist in the
``httpx.AsyncClient`` like a browser's cookie jar. The number of steps is bounded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Final
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit

import httpx

MAX_STEPS: Final = 12


@dataclass
class Form:
    """One HTML form: where it posts and what it would submit."""

    action: str
    method: str
    inputs: list[tuple[str, str, str]] = field(default_factory=list)  # (type, name, value)
    buttons: list[tuple[str, str]] = field(default_factory=list)  # (name, value)

    def field_names(self) -> set[str]:
        return {name for _, name, _ in self.inputs}

    def fields(self, **fill: str) -> list[tuple[str, str]]:
        """The submitted pairs: every named input (``fill`` overrides by name)."""
        pairs = [(name, fill.get(name, value)) for _, name, value in self.inputs if name]
        return pairs


class FormParser(HTMLParser):
    """Collects the forms of a page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self._current: Form | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "form":
            self._current = Form(
                action=attributes.get("action", ""),
                method=attributes.get("method", "get").upper(),
            )
            self.forms.append(self._current)
        elif self._current is not None and tag == "input":
            self._current.inputs.append(
                (
                    attributes.get("type", "text").lower(),
                    attributes.get("name", ""),
                    attributes.get("value", ""),
                )
            )
        elif self._current is not None and tag == "button" and attributes.get("name"):
            self._current.buttons.append((attributes["name"], attributes.get("value", "")))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None


def forms_of(page: str) -> list[Form]:
    """Every form on ``page``."""
    parser = FormParser()
    parser.feed(page)
    parser.close()
    return parser.forms


class FlowError(AssertionError):
    """The front channel did something a browser script cannot continue from."""


@dataclass(frozen=True)
class Arrival:
    """The redirect that reached the client: its ``url`` and query ``params``."""

    url: str
    params: dict[str, str]
    #: Every URL the browser visited, for failure messages.
    visited: tuple[str, ...]


class Browser:
    """Drives one end-user's browser against the server at ``issuer``.

    ``username``/``password`` are typed into a login form when one appears; ``decision``
    (``approve`` or ``deny``) is pressed on a consent form.
    """

    def __init__(self, http: httpx.AsyncClient, *, username: str, password: str) -> None:
        self.http = http
        self.username = username
        self.password = password
        self.logins = 0
        self.consents = 0

    async def authorize(
        self, url: str, *, redirect_uri: str, decision: str = "approve"
    ) -> Arrival:
        """Open ``url`` (an authorization request) and go on until a redirect to
        ``redirect_uri``; returns it. A page that is neither login nor consent is an error."""
        visited: list[str] = []
        response = await self.http.get(url)
        visited.append(url)
        for _ in range(MAX_STEPS):
            if response.is_redirect:
                location = urljoin(str(response.url), response.headers["location"])
                visited.append(location)
                if _same_endpoint(location, redirect_uri):
                    query = dict(parse_qsl(urlsplit(location).query, keep_blank_values=True))
                    return Arrival(location, query, tuple(visited))
                response = await self.http.get(location)
                continue
            if response.status_code != 200:
                raise FlowError(
                    f"{response.request.method} {response.url} answered "
                    f"{response.status_code}: {response.text[:2000]}\nvisited: {visited}"
                )
            response = await self._submit(response, decision, visited)
        raise FlowError(f"no redirect to the client after {MAX_STEPS} steps: {visited}")

    async def _submit(
        self, page: httpx.Response, decision: str, visited: list[str]
    ) -> httpx.Response:
        forms = forms_of(page.text)
        for form in forms:
            names = form.field_names()
            target = urljoin(str(page.url), form.action)
            if "password" in names:
                self.logins += 1
                visited.append("POST " + target + " (login)")
                pairs = form.fields(username=self.username, password=self.password)
                return await post_form(self.http, target, pairs)
            if "consent_token" in names:
                self.consents += 1
                visited.append(f"POST {target} (consent: {decision})")
                pairs = form.fields()
                pairs.append(("decision", decision))
                return await post_form(self.http, target, pairs)
        raise FlowError(f"page at {page.url} has no login or consent form: {page.text[:2000]}")


async def post_form(
    http: httpx.AsyncClient, url: str, pairs: list[tuple[str, str]]
) -> httpx.Response:
    """POST ``pairs`` (order and repeats kept) as ``application/x-www-form-urlencoded``."""
    return await http.post(
        url,
        content=urlencode(pairs).encode("ascii"),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )


def _same_endpoint(location: str, redirect_uri: str) -> bool:
    a, b = urlsplit(location), urlsplit(redirect_uri)
    return (a.scheme, a.netloc, a.path) == (b.scheme, b.netloc, b.path)
