"""Reading HTML forms the way a browser submits them (stdlib ``html.parser`` only).

Used by the ASGI route tests, the ``authward serve`` test and the end-to-end browser script to
drive the login and consent pages.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urlencode

import httpx


@dataclass
class Form:
    """One ``<form>``: its ``action``, ``method``, named inputs and submit buttons."""

    action: str
    method: str
    inputs: list[tuple[str, str, str]] = field(default_factory=list)  # (type, name, value)
    buttons: list[tuple[str, str]] = field(default_factory=list)  # (name, value)

    def field_names(self) -> set[str]:
        """The names of the form's inputs."""
        return {name for _, name, _ in self.inputs}

    def fields(self, **fill: str) -> list[tuple[str, str]]:
        """Every input as submitted, ``fill`` replacing values by name (no button, no checks)."""
        return [(name, fill.get(name, value)) for _, name, value in self.inputs]

    def hidden(self) -> dict[str, str]:
        """The hidden fields by name (each name once)."""
        return {name: value for kind, name, value in self.inputs if kind == "hidden"}

    def submission(
        self, *, button: tuple[str, str] | None = None, **filled: str
    ) -> list[tuple[str, str]]:
        """What a browser posts: every input (``filled`` replaces values by name, in place),
        then the pressed ``button`` if any. A button not in the form is an AssertionError."""
        pairs = [(name, filled.get(name, value)) for _, name, value in self.inputs]
        missing = set(filled) - {name for name, _ in pairs}
        assert not missing, f"no such fields: {missing}"
        if button is not None:
            assert button in self.buttons, f"no button {button} in {self.buttons}"
            pairs.append(button)
        return pairs


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self._current: Form | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form":
            self._current = Form(values.get("action", ""), values.get("method", "get").upper())
            self.forms.append(self._current)
        elif self._current is not None and tag == "input" and values.get("name"):
            self._current.inputs.append(
                (values.get("type", "text").lower(), values["name"], values.get("value", ""))
            )
        elif self._current is not None and tag == "button" and values.get("name"):
            self._current.buttons.append((values["name"], values.get("value", "")))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None


def forms(page: str) -> list[Form]:
    """Every form of the HTML ``page``, in document order."""
    parser = _FormParser()
    parser.feed(page)
    parser.close()
    return parser.forms


def only_form(page: str) -> Form:
    """The page's single form (AssertionError unless there is exactly one)."""
    found = forms(page)
    assert len(found) == 1, f"expected one form, found {len(found)}"
    return found[0]


async def submit(
    client: httpx.AsyncClient,
    form: Form,
    *,
    button: tuple[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    **filled: str,
) -> httpx.Response:
    """Post ``form`` as a browser would (``application/x-www-form-urlencoded``)."""
    assert form.method == "POST"
    return await client.post(
        form.action,
        content=urlencode(form.submission(button=button, **filled)).encode("ascii"),
        headers={"Content-Type": "application/x-www-form-urlencoded", **(headers or {})},
    )
