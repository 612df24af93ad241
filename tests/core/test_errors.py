"""The OAuth error hierarchy: wire codes, statuses, bodies, redirect params and headers."""

from __future__ import annotations

import pytest

from authward.core import errors
from authward.core.errors import (
    AccessDeniedError,
    BearerChallenge,
    DPoPChallenge,
    InsufficientScopeError,
    InvalidClientError,
    InvalidDPoPProofError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidTokenError,
    OAuthError,
    ServerError,
    UseDPoPNonceError,
    render_challenge,
)

EXPECTED = {
    "InvalidRequestError": ("invalid_request", 400),
    "InvalidClientError": ("invalid_client", 400),
    "InvalidGrantError": ("invalid_grant", 400),
    "UnauthorizedClientError": ("unauthorized_client", 400),
    "UnsupportedGrantTypeError": ("unsupported_grant_type", 400),
    "InvalidScopeError": ("invalid_scope", 400),
    "AccessDeniedError": ("access_denied", 400),
    "UnsupportedResponseTypeError": ("unsupported_response_type", 400),
    "ServerError": ("server_error", 500),
    "TemporarilyUnavailableError": ("temporarily_unavailable", 503),
    "InvalidTokenError": ("invalid_token", 401),
    "InsufficientScopeError": ("insufficient_scope", 403),
    "UnsupportedTokenTypeError": ("unsupported_token_type", 400),
    "AuthorizationPendingError": ("authorization_pending", 400),
    "SlowDownError": ("slow_down", 400),
    "ExpiredTokenError": ("expired_token", 400),
    "InvalidRequestUriError": ("invalid_request_uri", 400),
    "RequestUriNotSupportedError": ("request_uri_not_supported", 400),
    "InvalidRequestObjectError": ("invalid_request_object", 400),
    "RequestNotSupportedError": ("request_not_supported", 400),
    "RegistrationNotSupportedError": ("registration_not_supported", 400),
    "InvalidTargetError": ("invalid_target", 400),
    "InvalidDPoPProofError": ("invalid_dpop_proof", 400),
    "InteractionRequiredError": ("interaction_required", 400),
    "LoginRequiredError": ("login_required", 400),
    "AccountSelectionRequiredError": ("account_selection_required", 400),
    "ConsentRequiredError": ("consent_required", 400),
}


@pytest.mark.parametrize(("name", "expected"), sorted(EXPECTED.items()))
def test_each_error_class_has_its_rfc_wire_code_and_status(
    name: str, expected: tuple[str, int]
) -> None:
    cls = getattr(errors, name)
    assert issubclass(cls, OAuthError)
    error = cls("why")
    assert (error.error, error.status) == expected
    assert cls.error == expected[0]


def test_every_concrete_error_is_covered_and_codes_are_unique() -> None:
    classes = {
        name: obj
        for name, obj in vars(errors).items()
        if isinstance(obj, type) and issubclass(obj, OAuthError) and obj is not OAuthError
    }
    assert set(classes) == {*EXPECTED, "UseDPoPNonceError"}
    codes = [cls.error for cls in classes.values()]
    assert len(codes) == len(set(codes))


def test_base_class_cannot_be_raised_directly() -> None:
    with pytest.raises(TypeError):
        OAuthError("x")


def test_body_carries_description_and_uri_but_never_detail() -> None:
    error = InvalidGrantError(
        "code expired", detail="code_hash=abc family=f1", error_uri="https://docs/x"
    )
    body = error.body()
    assert body == {
        "error": "invalid_grant",
        "error_description": "code expired",
        "error_uri": "https://docs/x",
    }
    assert "abc" not in repr(body)
    assert "code_hash=abc" in str(error)  # the log line keeps it


def test_body_without_description_is_just_the_code() -> None:
    assert InvalidRequestError().body() == {"error": "invalid_request"}


def test_description_characters_outside_rfc6749_set_are_replaced() -> None:
    """RFC 6749 §5.2: no '"', no '\\', nothing outside %x20-7E."""
    error = InvalidRequestError('bad "scope"\\ \n é')
    assert error.description == "bad ?scope?? ? ?"


def test_error_uri_with_forbidden_characters_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="error_uri"):
        InvalidRequestError("x", error_uri="https://x/ y")


def test_token_endpoint_errors_are_no_store() -> None:
    """RFC 6749 §5.2 JSON errors carry Cache-Control: no-store."""
    assert InvalidGrantError().headers() == (("Cache-Control", "no-store"),)


def test_redirect_params_carry_state_and_issuer_in_order() -> None:
    """RFC 6749 §4.1.2.1 and RFC 9207 §2."""
    params = AccessDeniedError("user said no", detail="uid 7").redirect_params(
        state="xyz", iss="https://as.example"
    )
    assert params == (
        ("error", "access_denied"),
        ("error_description", "user said no"),
        ("state", "xyz"),
        ("iss", "https://as.example"),
    )


def test_redirect_params_omit_absent_state_and_issuer() -> None:
    assert ServerError().redirect_params() == (("error", "server_error"),)


def test_invalid_client_with_basic_auth_is_401_with_basic_challenge() -> None:
    """RFC 6749 §5.2: a client that used the Authorization header gets 401 + its scheme."""
    error = InvalidClientError("unknown client", basic_realm="authward")
    assert error.status == 401
    assert (
        "WWW-Authenticate",
        'Basic realm="authward", error="invalid_client", error_description="unknown client"',
    ) in error.headers()
    assert ("Cache-Control", "no-store") in error.headers()


def test_invalid_client_without_header_auth_is_400_without_challenge() -> None:
    error = InvalidClientError("unknown client")
    assert error.status == 400
    assert all(name != "WWW-Authenticate" for name, _ in error.headers())


def test_bearer_invalid_token_challenge_names_realm_error_and_description() -> None:
    """RFC 6750 §3."""
    error = InvalidTokenError("The access token expired", challenges=(BearerChallenge("api"),))
    assert error.status == 401
    assert error.headers()[1] == (
        "WWW-Authenticate",
        'Bearer realm="api", error="invalid_token", error_description="The access token expired"',
    )


def test_insufficient_scope_is_403_and_names_the_scope() -> None:
    """RFC 6750 §3.1."""
    error = InsufficientScopeError(challenges=(BearerChallenge(),), scope="openid profile")
    assert error.status == 403
    assert error.headers()[1] == (
        "WWW-Authenticate",
        'Bearer error="insufficient_scope", scope="openid profile"',
    )


def test_resource_invalid_request_stays_400_with_challenge() -> None:
    """RFC 6750 §3.1: invalid_request is 400 even at a resource."""
    error = InvalidRequestError("two tokens", challenges=(BearerChallenge(),))
    assert error.status == 400


def test_dpop_proof_error_is_400_at_token_endpoint_and_401_at_resource() -> None:
    """RFC 9449 §5 (token endpoint) and §7.1 (resource)."""
    assert InvalidDPoPProofError("bad htu").status == 400
    error = InvalidDPoPProofError("bad htu", challenges=(DPoPChallenge(("ES256", "EdDSA")),))
    assert error.status == 401
    assert error.headers()[1] == (
        "WWW-Authenticate",
        'DPoP error="invalid_dpop_proof", error_description="bad htu", algs="ES256 EdDSA"',
    )


def test_use_dpop_nonce_at_token_endpoint_is_400_with_nonce_header() -> None:
    """RFC 9449 §8."""
    error = UseDPoPNonceError("nonce required", nonce="eyJ7S_zG.eyJH0-Z.HX4w-7v")
    assert error.status == 400
    assert error.headers() == (
        ("Cache-Control", "no-store"),
        ("DPoP-Nonce", "eyJ7S_zG.eyJH0-Z.HX4w-7v"),
    )


def test_use_dpop_nonce_at_resource_is_401_with_dpop_challenge_and_nonce() -> None:
    """RFC 9449 §9."""
    error = UseDPoPNonceError(
        "Resource server requires nonce in DPoP proof",
        nonce="n-1",
        challenges=(DPoPChallenge(("ES256",)), BearerChallenge()),
    )
    assert error.status == 401
    assert error.headers() == (
        ("Cache-Control", "no-store"),
        (
            "WWW-Authenticate",
            'DPoP error="use_dpop_nonce", '
            'error_description="Resource server requires nonce in DPoP proof", algs="ES256"',
        ),
        ("WWW-Authenticate", "Bearer"),
        ("DPoP-Nonce", "n-1"),
    )


def test_use_dpop_nonce_requires_a_header_safe_nonce() -> None:
    with pytest.raises(ValueError, match="nonce"):
        UseDPoPNonceError(nonce="a b")


def test_bare_challenges_carry_no_error_code() -> None:
    """RFC 6750 §3: no error code when the request had no credentials."""
    assert render_challenge(BearerChallenge("example")) == 'Bearer realm="example"'
    assert render_challenge(DPoPChallenge(("ES256", "PS256"))) == 'DPoP algs="ES256 PS256"'


def test_challenge_values_that_cannot_be_quoted_are_refused() -> None:
    with pytest.raises(ValueError, match="realm"):
        BearerChallenge('a"b')
    with pytest.raises(ValueError, match="algs"):
        DPoPChallenge(())


def test_errors_are_exceptions_that_can_be_raised_and_caught_by_base() -> None:
    with pytest.raises(OAuthError) as caught:
        raise InvalidGrantError("nope")
    assert caught.value.error == "invalid_grant"


def test_invalid_token_without_challenges_still_sends_a_bearer_challenge() -> None:
    """RFC 9110 §11.6.1: every 401 carries WWW-Authenticate."""
    headers = dict(InvalidTokenError("expired").headers())
    assert headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')
