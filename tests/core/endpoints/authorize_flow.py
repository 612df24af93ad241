"""Helpers for authorization-endpoint tests: request parameters, PAR pushes, consent answers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from authward.core.endpoints import authorize
from authward.core.endpoints.authorize import ConsentPrompt
from authward.core.http import Response
from tests.core.endpoints.kit import (
    AUTHORIZE_URL,
    CODE_CHALLENGE,
    PUBLIC_CLIENT_ID,
    REDIRECT_URI,
    Kit,
    get,
    post,
    query_of,
)

STATE = "st-42"
NONCE = "n-0S6_WzA2Mj"
SUBJECT = "alice"


def request_params(
    client_id: str = PUBLIC_CLIENT_ID, *, omit: Iterable[str] = (), **overrides: str
) -> list[tuple[str, str]]:
    """A valid code request for ``client_id``; ``overrides`` replace, ``omit`` removes."""
    base: dict[str, str] = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": "openid profile",
        "state": STATE,
        "nonce": NONCE,
        "code_challenge": CODE_CHALLENGE,
        "code_challenge_method": "S256",
    }
    base.update(overrides)
    dropped = set(omit)
    return [(k, v) for k, v in base.items() if k not in dropped]


async def authorize_get(
    kit: Kit, params: Iterable[tuple[str, str]] | Mapping[str, str], *, cookie: Any = None
) -> Response | ConsentPrompt:
    """GET the authorization endpoint (with the session ``cookie`` header, if any)."""
    headers = (cookie,) if cookie is not None else ()
    return await authorize.handle(kit.server, get(AUTHORIZE_URL, params, headers=headers))


async def answer_consent(
    kit: Kit, prompt: ConsentPrompt, decision: str, *, cookie: Any,
    token: str | None = None, fields: Iterable[tuple[str, str]] | None = None,
) -> Response | ConsentPrompt:
    """POST the consent page back, as the rendered form would."""
    form = list(prompt.form_fields if fields is None else fields)
    form += [("consent_token", prompt.consent_token if token is None else token),
             ("decision", decision)]
    return await authorize.handle(kit.server, post(prompt.action, form, headers=(cookie,)))


def response(result: Response | ConsentPrompt) -> Response:
    """``result`` as a Response (fails the test on a consent prompt)."""
    assert isinstance(result, Response), f"expected a response, got {result!r}"
    return result


def prompt_of(result: Response | ConsentPrompt) -> ConsentPrompt:
    """``result`` as a ConsentPrompt (fails the test on a response)."""
    assert isinstance(result, ConsentPrompt), f"expected a consent prompt, got {result!r}"
    return result


def redirect_query(result: Response | ConsentPrompt, base: str = REDIRECT_URI) -> dict[str, str]:
    """The query of a redirect to ``base``; asserts it is a 302 there."""
    res = response(result)
    assert res.status == 302, res
    assert res.location is not None
    assert res.location.split("?")[0] == base, res.location
    return query_of(res.location)
