"""PKCE S256 only (RFC 7636)."""

from __future__ import annotations

import pytest

from authward.core.errors import InvalidGrantError, InvalidRequestError
from authward.core.pkce import check_challenge, is_valid_verifier, s256_challenge, verify

VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
#: RFC 7636 Appendix B. (The value "E9Melhoe2OwvFrEMTJguCgaKoWNnrOHNmCXL1eYNdiE" that has been
#: quoted for this vector is not the RFC's; the RFC prints the one below.)
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_rfc7636_appendix_b_verifier_gives_the_published_challenge() -> None:
    assert s256_challenge(VERIFIER) == CHALLENGE


def test_rfc7636_appendix_b_verifier_verifies() -> None:
    verify(VERIFIER, CHALLENGE)


def test_misquoted_appendix_b_challenge_does_not_verify() -> None:
    with pytest.raises(InvalidGrantError):
        verify(VERIFIER, "E9Melhoe2OwvFrEMTJguCgaKoWNnrOHNmCXL1eYNdiE")


def test_wrong_verifier_is_invalid_grant() -> None:
    """RFC 7636 §4.6."""
    other = VERIFIER[:-1] + ("A" if VERIFIER[-1] != "A" else "B")
    with pytest.raises(InvalidGrantError):
        verify(other, CHALLENGE)


def test_missing_verifier_is_invalid_request() -> None:
    with pytest.raises(InvalidRequestError):
        verify(None, CHALLENGE)
    with pytest.raises(InvalidRequestError):
        verify("", CHALLENGE)


@pytest.mark.parametrize(
    "verifier",
    [
        "a" * 42,  # too short (§4.1: 43 minimum)
        "a" * 129,  # too long (§4.1: 128 maximum)
        "a" * 42 + "+",  # not unreserved
        "a" * 42 + "/",
        "a" * 42 + "=",
        "a" * 42 + " ",
        "a" * 42 + "é",
    ],
)
def test_malformed_verifier_is_refused_before_hashing(verifier: str) -> None:
    assert not is_valid_verifier(verifier)
    with pytest.raises(InvalidRequestError):
        verify(verifier, s256_challenge(verifier.encode("ascii", "replace").decode()))


@pytest.mark.parametrize("length", [43, 128])
def test_verifier_length_bounds_are_inclusive(length: int) -> None:
    verifier = ("-._~Az09" * 20)[:length]
    assert is_valid_verifier(verifier)
    verify(verifier, s256_challenge(verifier))


def test_s256_challenge_is_accepted() -> None:
    assert check_challenge(CHALLENGE, "S256") == "S256"


def test_plain_method_is_refused() -> None:
    """OAuth 2.1: plain is not allowed."""
    with pytest.raises(InvalidRequestError, match="plain"):
        check_challenge(VERIFIER, "plain")


def test_missing_method_means_plain_and_is_refused() -> None:
    """RFC 7636 §4.3: a missing method defaults to plain."""
    with pytest.raises(InvalidRequestError):
        check_challenge(CHALLENGE, None)


def test_missing_challenge_is_refused() -> None:
    with pytest.raises(InvalidRequestError, match="code_challenge"):
        check_challenge(None, "S256")


@pytest.mark.parametrize(
    "challenge",
    [CHALLENGE[:-1], CHALLENGE + "A", CHALLENGE[:-1] + "=", CHALLENGE[:-1] + "+", ""],
)
def test_malformed_challenge_is_refused(challenge: str) -> None:
    """RFC 7636 §4.2: base64url of a SHA-256, 43 characters."""
    with pytest.raises(InvalidRequestError):
        check_challenge(challenge, "S256")


def test_unknown_method_is_refused() -> None:
    with pytest.raises(InvalidRequestError):
        check_challenge(CHALLENGE, "s256")
