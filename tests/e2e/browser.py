"""A scripted browser for the default HTML pages: follow redirects, fill the login form, answer
the consent form, and stop at the redirect back to the client.

Spec: RFC 6749 §4.1.1-§4.1.2 (the front channel); OIDC Core 1.0 §3.1.2.3-§3.1.2.4 (login and
consent); HTML Living Standard §4.10 (form submission: hidden inputs and the pressed button).

Forms are read with ``tests.asgi.forms`` (the standard library's ``html.parser``): every
``<form>`` with its action, method, named ``<input>`` fields and named ``<button>`` values.
Cookies persist in the ``httpx.AsyncClient`` like a browser's cookie jar. The number of steps
is bounded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit

import httpx

from tests.asgi.forms import forms as forms_of

MAX_STEPS: Final = 12


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
