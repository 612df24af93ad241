"""HTML forms read from a page: action, method, named inputs and buttons (for the scripted
browser that signs in and answers the consent page before timing).

Spec: HTML Living Standard §4.10 (forms; hidden inputs and the pressed submit button are
submitted, in tree order).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser

__all__ = ["Form", "forms"]


@dataclass
class Form:
    """One ``<form>``: where it posts, its named inputs and its named buttons."""

    action: str
    method: str
    inputs: list[tuple[str, str]] = field(default_factory=list)
    buttons: list[tuple[str, str]] = field(default_factory=list)

    def names(self) -> set[str]:
        """The names of its inputs."""
        return {name for name, _ in self.inputs}

    def fields(self, **values: str) -> list[tuple[str, str]]:
        """Its inputs in order, with ``values`` replacing (or adding) inputs by name."""
        pairs = [(name, values.get(name, value)) for name, value in self.inputs]
        known = self.names()
        pairs.extend((name, value) for name, value in values.items() if name not in known)
        return pairs


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[Form] = []
        self._current: Form | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "form":
            self._current = Form(
                action=attributes.get("action", ""),
                method=attributes.get("method", "get").lower(),
            )
            self.found.append(self._current)
        elif self._current is not None and "name" in attributes:
            if tag == "input":
                self._current.inputs.append((attributes["name"], attributes.get("value", "")))
            elif tag == "button":
                self._current.buttons.append((attributes["name"], attributes.get("value", "")))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None


def forms(html: str) -> list[Form]:
    """Every form of ``html``, in document order."""
    parser = _Parser()
    parser.feed(html)
    parser.close()
    return parser.found
