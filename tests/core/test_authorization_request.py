"""Authorization request parsing: client and redirect first (direct), the rest by redirect.

RFC 6749 §3.1, §4.1.1, §4.1.2.1; RFC 7636 §4.3; RFC 8707 §2; RFC 8252 §7.3; RFC 9126 §4;
OIDC Core §3.1.2.1. No database: the host registry is the in-test one from the endpoint kit.
"""

from __future__ import annotations

import pytest

from authward.core.authorization_request import (
    AuthorizationRequest,
    AuthorizationRequestError,
    params_from_json,
    params_to_json,
    parse,
)
from authward.core.errors import OAuthError
from authward.core.http import MultiDict
from authward.stores.consent import binding_from_params, binding_from_request, binding_hash
from tests.core.endpoints.authorize_flow import NONCE, STATE, request_params
from tests.core.endpoints.kit import (
    CODE_CHALLENGE,
    CONFIDENTIAL_CLIENT_ID,
    NATIVE_CLIENT_ID,
    OTHER_REDIRECT_URI,
    PUBLIC_CLIENT_ID,
    REDIRECT_URI,
    Registry,
    default_clients,
)

JKT = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"


@pytest.fixture
def registry() -> Registry:
    reg = Registry()
    default_clients(reg)
    return reg


async def refused(registry: Registry, pairs: list[tuple[str, str]]) -> AuthorizationRequestError:
    with pytest.raises(AuthorizationRequestError) as info:
        await parse(MultiDict(pairs), registry)
    return info.value


def code(err: AuthorizationRequestError) -> str:
    error: OAuthError = err.error
    return error.error


async def test_valid_request_parses_every_field(registry: Registry) -> None:
    pairs = [
        *request_params(
            prompt="login consent", max_age="300", dpop_jkt=JKT, response_mode="query"
        ),
        ("resource", "https://api.example/a"),
        ("resource", "https://api.example/b"),
    ]
    req = await parse(MultiDict(pairs), registry)
    assert req == AuthorizationRequest(
        client=registry.clients[PUBLIC_CLIENT_ID],
        client_id=PUBLIC_CLIENT_ID,
        redirect_uri=REDIRECT_URI,
        scope=("openid", "profile"),
        state=STATE,
        nonce=NONCE,
        code_challenge=CODE_CHALLENGE,
        code_challenge_method="S256",
        prompt=frozenset({"login", "consent"}),
        max_age=300,
        resource=("https://api.example/a", "https://api.example/b"),
        dpop_jkt=JKT,
        response_mode="query",
    )


async def test_unknown_client_is_a_direct_error(registry: Registry) -> None:
    err = await refused(registry, request_params("nobody"))
    assert (code(err), err.target) == ("invalid_client", None)


@pytest.mark.parametrize(
    "pairs",
    [
        request_params(omit=["client_id"]),
        [*request_params(), ("client_id", PUBLIC_CLIENT_ID)],
        request_params("x" * 256),
    ],
    ids=["missing", "repeated", "too-long"],
)
async def test_bad_client_id_is_a_direct_invalid_request(
    registry: Registry, pairs: list[tuple[str, str]]
) -> None:
    err = await refused(registry, pairs)
    assert (code(err), err.target) == ("invalid_request", None)


@pytest.mark.parametrize(
    ("client_id", "redirect_uri"),
    [
        (PUBLIC_CLIENT_ID, "https://client.example/cb/"),
        (PUBLIC_CLIENT_ID, "https://attacker.example/cb"),
        (PUBLIC_CLIENT_ID, REDIRECT_URI + "#frag"),
        (PUBLIC_CLIENT_ID, "/cb"),
        (CONFIDENTIAL_CLIENT_ID, None),
        (NATIVE_CLIENT_ID, "http://localhost:5000/callback"),
        (PUBLIC_CLIENT_ID, "https://client.example/" + "a" * 2100),
    ],
    ids=["trailing-slash", "foreign", "fragment", "relative", "omitted-of-several",
         "native-localhost", "too-long"],
)
async def test_bad_redirect_uri_is_a_direct_error_rfc6749_4_1_2_1(
    registry: Registry, client_id: str, redirect_uri: str | None
) -> None:
    pairs = request_params(client_id, omit=["redirect_uri"])
    if redirect_uri is not None:
        pairs.append(("redirect_uri", redirect_uri))
    err = await refused(registry, pairs)
    assert (code(err), err.target) == ("invalid_request", None)


async def test_repeated_redirect_uri_is_direct(registry: Registry) -> None:
    err = await refused(registry, [*request_params(), ("redirect_uri", REDIRECT_URI)])
    assert (code(err), err.target) == ("invalid_request", None)


async def test_redirect_uri_may_be_omitted_with_one_registration(registry: Registry) -> None:
    req = await parse(MultiDict(request_params(omit=["redirect_uri"])), registry)
    assert req.redirect_uri == REDIRECT_URI


async def test_native_client_loopback_redirect_matches_any_port_rfc8252_7_3(
    registry: Registry,
) -> None:
    pairs = request_params(NATIVE_CLIENT_ID, redirect_uri="http://127.0.0.1:51004/callback")
    req = await parse(MultiDict(pairs), registry)
    assert req.redirect_uri == "http://127.0.0.1:51004/callback"


async def test_loopback_port_is_exact_for_a_web_client(registry: Registry) -> None:
    reg = registry.clients[CONFIDENTIAL_CLIENT_ID]
    assert OTHER_REDIRECT_URI in reg.redirect_uris
    err = await refused(
        registry, request_params(CONFIDENTIAL_CLIENT_ID, redirect_uri="http://127.0.0.1:9/cb")
    )
    assert err.target is None


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        (request_params(omit=["response_type"]), "invalid_request"),
        (request_params(response_type="token"), "unsupported_response_type"),
        (request_params(response_type="code id_token"), "unsupported_response_type"),
        (request_params(response_mode="fragment"), "invalid_request"),
        (request_params(response_mode="form_post"), "invalid_request"),
        (request_params(request="eyJhbGciOiJub25lIn0.e30."), "request_not_supported"),
        (request_params(request_uri="https://client.example/req.jwt"),
         "request_uri_not_supported"),
        (request_params(registration="{}"), "registration_not_supported"),
        (request_params(omit=["code_challenge", "code_challenge_method"]), "invalid_request"),
        (request_params(code_challenge_method="plain"), "invalid_request"),
        (request_params(omit=["code_challenge_method"]), "invalid_request"),
        (request_params(code_challenge="short"), "invalid_request"),
        (request_params(scope="openid  profile"), "invalid_scope"),
        (request_params(scope="a\"b"), "invalid_scope"),
        (request_params(scope="s" * 300), "invalid_scope"),
        (request_params(scope="s " * 5000), "invalid_request"),
        (request_params(state="s" * 3000), "invalid_request"),
        (request_params(nonce="n" * 256), "invalid_request"),
        (request_params(prompt="none login"), "invalid_request"),
        (request_params(prompt="sometimes"), "invalid_request"),
        (request_params(max_age="-1"), "invalid_request"),
        (request_params(max_age="1.5"), "invalid_request"),
        (request_params(max_age="99999999999"), "invalid_request"),
        (request_params(dpop_jkt="not-a-thumbprint"), "invalid_request"),
        (request_params(resource="/relative"), "invalid_target"),
        (request_params(resource="https://api.example/#frag"), "invalid_target"),
        (request_params(resource="https://api.example/" + "r" * 300), "invalid_target"),
        ([*request_params(), ("scope", "openid")], "invalid_request"),
        ([*request_params(), ("code_challenge", CODE_CHALLENGE)], "invalid_request"),
        ([*request_params(), ("x-unknown", "y" * 5000)], "invalid_request"),
    ],
)
async def test_other_errors_go_back_by_redirect_with_state(
    registry: Registry, pairs: list[tuple[str, str]], expected: str
) -> None:
    err = await refused(registry, pairs)
    assert code(err) == expected
    assert err.target is not None
    assert err.target.redirect_uri == REDIRECT_URI
    expected_state = STATE if dict(pairs)["state"] == STATE else None
    assert err.target.state == expected_state


async def test_repeated_state_is_refused_without_echoing_either_value(registry: Registry) -> None:
    err = await refused(registry, [*request_params(), ("state", "other")])
    assert code(err) == "invalid_request"
    assert err.target is not None
    assert err.target.state is None


async def test_a_300_character_state_is_fine(registry: Registry) -> None:
    req = await parse(MultiDict(request_params(state="s" * 300)), registry)
    assert req.state == "s" * 300


async def test_empty_values_count_as_omitted_rfc6749_3_1(registry: Registry) -> None:
    req = await parse(MultiDict(request_params(state="", nonce="", prompt="", max_age="")),
                      registry)
    assert (req.state, req.nonce, req.prompt, req.max_age) == (None, None, frozenset(), None)
    err = await refused(registry, request_params(code_challenge=""))
    assert code(err) == "invalid_request"


async def test_unknown_parameters_are_ignored(registry: Registry) -> None:
    req = await parse(MultiDict([*request_params(), ("ui_locales", "de"), ("foo", "")]), registry)
    assert req.scope == ("openid", "profile")


async def test_client_without_the_code_flow_is_unauthorized(registry: Registry) -> None:
    from authward.core.clients import Client

    registry.add(Client("cc-only", "confidential", "client_secret_basic",
                        redirect_uris=(REDIRECT_URI,), grant_types=("client_credentials",)), "s")
    err = await refused(registry, request_params("cc-only"))
    assert code(err) == "unauthorized_client"
    assert err.target is not None


async def test_stored_params_round_trip_and_bind_like_the_request(registry: Registry) -> None:
    pairs = [*request_params(), ("resource", "https://api.example/a"),
             ("resource", "https://api.example/b"), ("empty", "")]
    params = MultiDict(pairs)
    stored = params_to_json(params, drop=("nonce",))
    assert stored["resource"] == ["https://api.example/a", "https://api.example/b"]
    assert "nonce" not in stored
    assert "empty" not in stored
    back = params_from_json(stored)
    assert back is not None
    req = await parse(back, registry)
    assert req.resource == ("https://api.example/a", "https://api.example/b")
    assert binding_hash(binding_from_request(req, "alice")) == binding_hash(
        binding_from_params(stored, "alice")
    )


def test_foreign_stored_shapes_are_not_params() -> None:
    assert params_from_json({"scope": ["a", "b"]}) is None
    assert params_from_json({"max_age": 5}) is None
    assert params_from_json({"resource": ["ok", 1]}) is None
