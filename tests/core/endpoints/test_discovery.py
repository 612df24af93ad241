"""Discovery metadata: RFC 8414 §2 / OIDC Discovery 1.0 §3, listing only what is enabled."""

from __future__ import annotations

from authward.core.config import FeatureSettings
from authward.core.endpoints import discovery
from tests.core.endpoints import kit
from tests.dbkit import Db


async def test_metadata_lists_every_enabled_endpoint_under_the_issuer(db: Db) -> None:
    """RFC 8414 §2: issuer and endpoint URLs; every URL starts with the issuer."""
    k = kit.build(db)
    url = kit.ISSUER + "/.well-known/openid-configuration"
    response = await discovery.handle(k.server, kit.get(url))
    assert response.status == 200
    body = response.json
    assert body is not None
    assert body["issuer"] == kit.ISSUER
    assert body["authorization_endpoint"] == kit.ISSUER + "/authorize"
    assert body["token_endpoint"] == kit.ISSUER + "/token"
    assert body["jwks_uri"] == kit.ISSUER + "/jwks.json"
    assert body["userinfo_endpoint"] == kit.ISSUER + "/userinfo"
    assert body["revocation_endpoint"] == kit.ISSUER + "/revoke"
    assert body["introspection_endpoint"] == kit.ISSUER + "/introspect"
    assert body["pushed_authorization_request_endpoint"] == kit.ISSUER + "/par"
    assert body["require_pushed_authorization_requests"] is False
    assert body["grant_types_supported"] == [
        "authorization_code", "refresh_token", "client_credentials",
        "urn:ietf:params:oauth:grant-type:device_code",
    ]
    assert body["scopes_supported"] == ["openid", "offline_access"]
    assert body["dpop_signing_alg_values_supported"] == ["ES256", "EdDSA", "PS256", "RS256"]
    assert body["request_uri_parameter_supported"] is True


async def test_metadata_states_the_fixed_protocol_profile(db: Db) -> None:
    """OAuth 2.1 profile: code only, query mode, S256 only, RFC 9207 iss, no request objects."""
    body = discovery.metadata(kit.build(db).server)
    assert body["response_types_supported"] == ["code"]
    assert body["response_modes_supported"] == ["query"]
    assert body["code_challenge_methods_supported"] == ["S256"]
    assert body["subject_types_supported"] == ["public"]
    # the default first, then every other algorithm a client may register (active keys)
    assert body["id_token_signing_alg_values_supported"] == ["RS256", "ES256"]
    assert body["authorization_response_iss_parameter_supported"] is True
    assert body["claims_parameter_supported"] is False
    assert body["request_parameter_supported"] is False
    assert body["token_endpoint_auth_methods_supported"] == [
        "client_secret_basic", "client_secret_post", "private_key_jwt", "none"
    ]
    assert "RS256" in body["token_endpoint_auth_signing_alg_values_supported"]
    # RFC 7009 §2.1: public clients revoke their own tokens by client_id; introspection is
    # for clients that can authenticate.
    assert "none" in body["revocation_endpoint_auth_methods_supported"]
    assert "none" not in body["introspection_endpoint_auth_methods_supported"]


async def test_disabled_features_are_not_advertised(db: Db) -> None:
    """RFC 8414 §2: a disabled endpoint or grant is absent, not listed."""
    features = FeatureSettings(
        refresh_token_grant=False,
        client_credentials_grant=False,
        device_authorization_grant=False,
        pushed_authorization_requests=False,
        dpop=False,
        introspection=False,
        revocation=False,
        userinfo=False,
    )
    body = discovery.metadata(kit.build(db, features=features).server)
    for absent in (
        "userinfo_endpoint", "revocation_endpoint", "introspection_endpoint",
        "pushed_authorization_request_endpoint", "require_pushed_authorization_requests",
        "dpop_signing_alg_values_supported",
    ):
        assert absent not in body
    assert body["grant_types_supported"] == ["authorization_code"]
    assert body["scopes_supported"] == ["openid"]
    assert body["request_uri_parameter_supported"] is False


async def test_issue5_features_are_never_advertised_yet(db: Db) -> None:
    """Device, logout and CIMD are not implemented: no fields even when switched on."""
    body = discovery.metadata(kit.build(db).server)
    assert kit.build(db).server.settings.features.device_authorization_grant is True
    for absent in ("client_id_metadata_document_supported",):
        assert absent not in body


async def test_required_par_is_advertised(db: Db) -> None:
    """RFC 9126 §5: require_pushed_authorization_requests follows the server setting."""
    body = discovery.metadata(kit.build(db, require_pushed_authorization_requests=True).server)
    assert body["require_pushed_authorization_requests"] is True


async def test_metadata_is_publicly_cacheable(db: Db) -> None:
    """The document holds no secret: public caching, JSON content."""
    response = await discovery.handle(kit.build(db).server, kit.get(kit.ISSUER + "/x"))
    assert response.headers.get("cache-control") == f"public, max-age={discovery.CACHE_SECONDS}"
    assert "no-store" not in (response.headers.get("cache-control") or "")


async def test_the_device_grant_is_advertised_while_its_feature_is_on(db: Db) -> None:
    """RFC 8628 §4: device_authorization_endpoint and the device_code grant type, only when
    features.device_authorization_grant is on."""
    device = "urn:ietf:params:oauth:grant-type:device_code"
    body = discovery.metadata(kit.build(db).server)
    assert body["device_authorization_endpoint"] == kit.ISSUER + "/device_authorization"
    assert device in body["grant_types_supported"]
    off = FeatureSettings(device_authorization_grant=False)
    body = discovery.metadata(kit.build(db, features=off).server)
    assert "device_authorization_endpoint" not in body
    assert device not in body["grant_types_supported"]
