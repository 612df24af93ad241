"""End to end over HTTP: RP-Initiated Logout at ``authward serve`` and Back-Channel Logout to two
relying parties listening on 127.0.0.1 in this test process, one of them stuck.

Spec: OIDC RP-Initiated Logout 1.0 §2-§3; OIDC Back-Channel Logout 1.0 §2.4 (the token a
relying party validates: signature against the JWKS, ``typ``, ``iss``, ``aud``, ``iat``/``exp``,
``events``, ``sid``, no ``nonce``), §2.5 (POST of ``logout_token``); spec/stores.md §5.4 (the
user's page does not wait for slow receivers).

"Does not wait" is shown by construction, not by a clock: the stuck receiver is held until the
browser has its redirect, and the delivery deadline (30 s) is longer than the suite's HTTP
timeout (15 s), so a server that delivered inside the request would time the request out.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.asgi.forms import only_form
from tests.core.logout_receivers import receiver
from tests.dbkit import KINDS
from tests.e2e.browser import post_form
from tests.e2e.flows import discover, run_code_flow
from tests.e2e.harness import HTTP_TIMEOUT, REDIRECT_URI, SUBJECT, deployment, http_client

GOOD_RP = "e2e-rp-good"
SLOW_RP = "e2e-rp-slow"
SIGNED_OUT = "https://rp.e2e.example/signed-out"
EVENT = "http://schemas.openid.net/event/backchannel-logout"
DEADLINE = 30.0


def relying_party(client_id: str, backchannel_uri: str) -> dict[str, object]:
    """The ``[[clients]]`` table of a relying party that takes part in logout."""
    return {
        "client_id": client_id,
        "client_type": "public",
        "token_endpoint_auth_method": "none",
        "redirect_uris": [REDIRECT_URI],
        "grant_types": ["authorization_code"],
        "scope": "openid profile",
        "post_logout_redirect_uris": [SIGNED_OUT],
        "backchannel_logout_uri": backchannel_uri,
    }


def validated_logout_token(
    token: str, jwks: Any, *, issuer: str, client_id: str, sid: str
) -> dict[str, Any]:
    """Check ``token`` as a relying party must (Back-Channel Logout 1.0 §2.6): signed by a key
    of ``jwks``, ``typ`` logout+jwt, ``iss``, ``aud`` = ``client_id``, ``iat``/``exp``/``jti``,
    the logout event, the session's ``sid`` and the user's ``sub``, and no ``nonce``."""
    decoded = jwt.decode(token, KeySet.import_key_set(jwks),
                         algorithms=["RS256", "ES256", "PS256", "EdDSA"])
    assert decoded.header["typ"] == "logout+jwt"
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": issuer},
        aud={"essential": True, "value": client_id},
        iat={"essential": True},
        exp={"essential": True},
        jti={"essential": True},
    ).validate(decoded.claims)
    claims = dict(decoded.claims)
    assert claims["events"] == {EVENT: {}}
    assert claims["sid"] == sid
    assert claims["sub"] == SUBJECT
    assert "nonce" not in claims
    return claims


def unverified_claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


@pytest.mark.parametrize("kind", KINDS)
async def test_logout_redirects_at_once_and_tells_both_relying_parties(
    kind: str, tmp_path: Path, e2e_keys: Path
) -> None:
    async with receiver() as good, receiver(held=True) as slow:
        settings: dict[str, object] = {"logout": {
            "enabled": True, "allow_loopback": True, "delivery_timeout_seconds": DEADLINE,
        }}
        clients = [relying_party(GOOD_RP, good.url), relying_party(SLOW_RP, slow.url)]
        assert DEADLINE > HTTP_TIMEOUT
        with deployment(kind, tmp_path / kind, e2e_keys, settings=settings,
                        extra_clients=clients) as deployed:
            metadata = await discover(deployed)
            assert metadata.raw["backchannel_logout_supported"] is True
            assert metadata.raw["backchannel_logout_session_supported"] is True
            end_session = metadata.raw["end_session_endpoint"]
            assert end_session == deployed.url("/end_session")

            async with http_client(deployed.issuer) as browser:
                flows = [await run_code_flow(deployed, rp, scope="openid", http=browser)
                         for rp in (GOOD_RP, SLOW_RP)]
                id_tokens = [str(flow.token["id_token"]) for flow in flows if flow.token]
                sids = {unverified_claims(token)["sid"] for token in id_tokens}
                assert len(id_tokens) == 2
                assert len(sids) == 1  # one browser session, one sid for both clients
                sid = sids.pop()
                assert len(await deployed.database.rows("logout_sessions")) == 2

                page = await browser.get(end_session, params={
                    "id_token_hint": id_tokens[0], "post_logout_redirect_uri": SIGNED_OUT,
                    "state": "bye-42",
                })
                assert page.status_code == 200, page.text
                form = only_form(page.text)
                started = time.monotonic()
                done = await post_form(browser, form.action,
                                       [*form.fields(), ("decision", "logout")])
                elapsed = time.monotonic() - started
                assert done.status_code == 303, done.text
                location = done.headers["location"]
                assert location.split("?")[0] == SIGNED_OUT
                assert dict(parse_qsl(urlsplit(location).query)) == {"state": "bye-42"}
                # The browser has its answer while the stuck receiver still holds its request.
                assert slow.answered == 0
                await good.arrived.wait()
                assert len(good.tokens) == 1
                await slow.arrived.wait()
                slow.release()
                jwks = (await browser.get(metadata.jwks_uri)).json()
                again = await browser.get(end_session, params={
                    "id_token_hint": id_tokens[0], "post_logout_redirect_uri": SIGNED_OUT,
                })
                assert again.status_code == 303  # the login cookie is gone
            assert await deployed.database.rows("logout_sessions") == []

    print(f"\n[{kind}] confirm-to-redirect took {elapsed * 1000:.0f} ms "
          f"(delivery deadline {DEADLINE:.0f} s, stuck receiver held)")
    claims = validated_logout_token(good.tokens[0], jwks, issuer=deployed.issuer,
                                    client_id=GOOD_RP, sid=sid)
    assert claims["exp"] - claims["iat"] == 120
    assert len(slow.tokens) == 1
    assert unverified_claims(slow.tokens[0])["aud"] == SLOW_RP
