"""The consent binding builders and binding_hash (spec §3.9, §6.10 CON-18..31, CON-33)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

import pytest

from authward.stores.consent import (
    ConsentBinding,
    binding_from_params,
    binding_from_request,
    binding_hash,
)
from authward.stores.errors import StoreContractError

CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


@dataclass(frozen=True)
class Request:
    """Stands in for the core's validated authorization request (only the bound fields)."""

    client_id: str | None = "client-1"
    redirect_uri: str | None = "https://app.example/cb"
    scope: Sequence[str] | str | None = ("openid", "profile")
    code_challenge: str | None = CHALLENGE
    code_challenge_method: str | None = "S256"
    state: str | None = "xyz"
    nonce: str | None = "n-1"


PARAMS: dict[str, object] = {
    "client_id": "client-1",
    "redirect_uri": "https://app.example/cb",
    "scope": "openid profile",
    "code_challenge": CHALLENGE,
    "code_challenge_method": "S256",
    "state": "xyz",
    "nonce": "n-1",
}

BASE = binding_from_request(Request(), "alice")


def test_request_fields_and_subject_are_mapped_into_the_binding() -> None:
    """CON-18."""
    expected = ConsentBinding(
        subject="alice",
        client_id="client-1",
        redirect_uri="https://app.example/cb",
        scope=("openid", "profile"),
        code_challenge=CHALLENGE,
        code_challenge_method="S256",
        state="xyz",
        nonce="n-1",
    )
    assert expected == BASE


def test_absent_pkce_fields_stay_none() -> None:
    """CON-19."""
    b = binding_from_request(Request(code_challenge=None, code_challenge_method=None), "alice")
    assert b.code_challenge is None
    assert b.code_challenge_method is None
    p = binding_from_params({"client_id": "c", "redirect_uri": "https://r.example/"}, "alice")
    assert p.code_challenge is None
    assert p.code_challenge_method is None


def test_none_scope_becomes_empty() -> None:
    """CON-20."""
    assert binding_from_request(Request(scope=None), "alice").scope == ()


def test_params_builder_gives_the_same_binding_as_the_request_builder() -> None:
    """CON-21."""
    assert binding_from_params(PARAMS, "alice") == BASE


def test_the_two_builders_hash_byte_identically() -> None:
    """CON-22."""
    assert binding_hash(binding_from_params(PARAMS, "alice")) == binding_hash(BASE)


def test_scope_order_does_not_matter_across_builders() -> None:
    """CON-23."""
    reordered = binding_from_params({**PARAMS, "scope": "profile  openid "}, "alice")
    assert reordered.scope == ("profile", "openid")
    assert binding_hash(reordered) == binding_hash(BASE)


def test_absent_pkce_params_hash_the_same_through_both_builders() -> None:
    """CON-24."""
    params = {k: v for k, v in PARAMS.items() if not k.startswith("code_challenge")}
    request = Request(code_challenge=None, code_challenge_method=None)
    assert binding_hash(binding_from_params(params, "alice")) == binding_hash(
        binding_from_request(request, "alice")
    )


def test_missing_scope_param_hashes_like_a_none_request_scope() -> None:
    """CON-25."""
    params = {k: v for k, v in PARAMS.items() if k != "scope"}
    assert binding_hash(binding_from_params(params, "alice")) == binding_hash(
        binding_from_request(Request(scope=None), "alice")
    )


def test_unknown_params_do_not_change_the_hash() -> None:
    """CON-26."""
    noisy = {**PARAMS, "response_type": "code", "prompt": "none", "max_age": "60"}
    assert binding_hash(binding_from_params(noisy, "alice")) == binding_hash(BASE)


@pytest.mark.parametrize("name", ["state", "nonce"])
def test_state_and_nonce_are_part_of_the_binding(name: str) -> None:
    """A grant approved for one request does not stand for another that differs only in
    ``state`` or ``nonce`` (and one without them hashes apart from one with them)."""
    other = binding_from_params({**PARAMS, name: "something-else"}, "alice")
    missing = binding_from_params({k: v for k, v in PARAMS.items() if k != name}, "alice")
    assert len({binding_hash(BASE), binding_hash(other), binding_hash(missing)}) == 3


def test_hash_is_url_safe_base64_without_padding_and_stable() -> None:
    """CON-27: and it is exactly digest() of the documented canonical JSON array."""
    h = binding_hash(BASE)
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", h)
    assert binding_hash(BASE) == h
    canonical = json.dumps(
        ["alice", "client-1", "https://app.example/cb", ["openid", "profile"], CHALLENGE, "S256",
         "xyz", "n-1"],
        separators=(",", ":"),
        ensure_ascii=False,
    )
    expected = base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest())
    assert h == expected.rstrip(b"=").decode()


def test_reordered_scope_set_gives_the_same_hash() -> None:
    """CON-28."""
    assert binding_hash(replace(BASE, scope=("profile", "openid"))) == binding_hash(BASE)


def test_list_scope_and_string_scope_give_the_same_hash() -> None:
    """CON-29: through either builder."""
    as_string = binding_from_request(Request(scope="openid profile"), "alice")
    as_list = binding_from_params({**PARAMS, "scope": ["openid", "profile"]}, "alice")
    assert binding_hash(as_string) == binding_hash(as_list) == binding_hash(BASE)


@pytest.mark.parametrize(
    "changed",
    [
        replace(BASE, scope=("openid",)),
        replace(BASE, scope=("openid", "profile", "email")),
        replace(BASE, scope=("openid", "profile", "profile")),
        replace(BASE, client_id="client-2"),
        replace(BASE, redirect_uri="https://app.example/cb2"),
        replace(BASE, subject="bob"),
        replace(BASE, code_challenge=CHALLENGE[:-1] + "N"),
        replace(BASE, code_challenge_method="plain"),
    ],
)
def test_each_field_changes_the_hash(changed: ConsentBinding) -> None:
    """CON-30 (scope duplicates are not collapsed)."""
    assert binding_hash(changed) != binding_hash(BASE)


def test_none_and_empty_pkce_values_hash_the_same_and_differ_from_real_ones() -> None:
    """CON-31."""
    none = binding_hash(replace(BASE, code_challenge=None))
    assert none == binding_hash(replace(BASE, code_challenge=""))
    assert none != binding_hash(BASE)
    none = binding_hash(replace(BASE, code_challenge_method=None))
    assert none == binding_hash(replace(BASE, code_challenge_method=""))
    assert none != binding_hash(BASE)
    assert none != binding_hash(replace(BASE, code_challenge_method="plain"))


def _newline_joined(b: ConsentBinding) -> str:
    """The 0.19 (Elixir) canonical form, to show what it would have collided on."""
    return "\n".join(
        [b.subject, b.client_id, b.redirect_uri, " ".join(sorted(b.scope)),
         b.code_challenge or "", b.code_challenge_method or ""]
    )


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (replace(BASE, subject="alice\nclient-1", client_id="x"),
         replace(BASE, subject="alice", client_id="client-1\nx")),
        (replace(BASE, redirect_uri="https://app.example/cb\nopenid", scope=("profile",)),
         replace(BASE, redirect_uri="https://app.example/cb", scope=("openid\nprofile",))),
        (replace(BASE, code_challenge="c\nS256", code_challenge_method="x"),
         replace(BASE, code_challenge="c", code_challenge_method="S256\nx")),
        (replace(BASE, scope=("openid profile",)), replace(BASE, scope=("openid", "profile"))),
    ],
)
def test_newline_in_a_field_cannot_make_two_bindings_collide(
    first: ConsentBinding, second: ConsentBinding
) -> None:
    """CON-33: these pairs collide under the newline join but not under the JSON array."""
    assert first != second
    assert _newline_joined(first) == _newline_joined(second)
    assert binding_hash(first) != binding_hash(second)


def test_non_ascii_fields_hash_as_utf8() -> None:
    b = replace(BASE, subject="ålice", scope=("é", "z", "Z"))
    canonical = (
        '["ålice","client-1","https://app.example/cb",["Z","z","é"],"' + CHALLENGE
        + '","S256","xyz","n-1"]'
    )
    expected = base64.urlsafe_b64encode(hashlib.sha256(canonical.encode("utf-8")).digest())
    assert binding_hash(b) == expected.rstrip(b"=").decode()


@pytest.mark.parametrize("field", ["client_id", "redirect_uri"])
def test_missing_required_field_raises(field: str) -> None:
    with pytest.raises(StoreContractError, match=field):
        binding_from_params({k: v for k, v in PARAMS.items() if k != field}, "alice")
    with pytest.raises(StoreContractError, match=field):
        binding_from_request(replace(Request(), **{field: None}), "alice")


def test_missing_subject_raises() -> None:
    with pytest.raises(StoreContractError, match="subject"):
        binding_from_params(PARAMS, "")


def test_non_string_scope_param_raises() -> None:
    with pytest.raises(StoreContractError, match="scope"):
        binding_from_params({**PARAMS, "scope": 3}, "alice")
    with pytest.raises(StoreContractError, match="scope"):
        binding_from_params({**PARAMS, "scope": ["openid", 3]}, "alice")
