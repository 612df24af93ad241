"""Settings: defaults (spec §8), validation, environment and TOML builders."""

from __future__ import annotations

from pathlib import Path

import pytest

from authward.core.config import (
    LONGEST_SCHEMA_IDENTIFIER_BYTES,
    ClientIdMetadataSettings,
    DeviceAuthorizationSettings,
    FeatureSettings,
    LogoutSettings,
    Settings,
    SettingsError,
    SuccessorKey,
)
from authward.stores.sql.schema import build_metadata, identifier_names

ISSUER = "https://as.example"
KEY = SuccessorKey("k1", b"k" * 32)


def settings(**overrides: object) -> Settings:
    values: dict[str, object] = {"issuer": ISSUER, "refresh_successor_keys": (KEY,)}
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def test_defaults_are_the_spec_section_8_values() -> None:
    s = settings()
    assert s.authorization_code_ttl == 60
    assert s.access_token_ttl == 900
    assert s.refresh_token_ttl == 1_209_600
    assert s.refresh_token_rotation_grace_seconds == 0  # strict reuse detection (RFC 9700)
    assert s.par_ttl == 90
    assert s.require_pushed_authorization_requests is False
    assert s.dpop_nonce_required is False
    assert s.dpop_nonce_policy == "windowed"
    assert s.dpop_nonce_ttl == 300
    assert s.dpop_proof_window_seconds == 60
    assert s.table_prefix == ""
    assert s.sweep_interval_seconds is None
    assert s.device_authorization == DeviceAuthorizationSettings(600, 5, 8)
    assert s.logout.session_ttl_seconds == 86_400
    assert s.logout.delivery_timeout_seconds == 5.0
    cimd = s.client_id_metadata
    assert cimd.enabled is False
    assert cimd.max_document_bytes == 5_120
    assert cimd.request_timeout_ms == 5_000
    assert cimd.cache_ttl_bounds == (60, 86_400)
    assert cimd.allow_loopback is False
    assert cimd.allowed_hosts is None
    assert cimd.blocked_hosts == ()
    assert cimd.require_same_origin_redirect_uri is True


def test_settings_are_frozen() -> None:
    s = settings()
    with pytest.raises(AttributeError):
        s.access_token_ttl = 1  # type: ignore[misc]


def test_grace_window_without_successor_key_refuses_to_start() -> None:
    """Spec §7 item 4: a window above zero needs a key; the default (0) loads without one."""
    with pytest.raises(SettingsError, match="refresh_successor_keys") as caught:
        Settings(issuer=ISSUER, refresh_token_rotation_grace_seconds=60)
    assert "grace" in str(caught.value)
    assert Settings(issuer=ISSUER).active_successor_key is None


def test_strict_rotation_needs_no_successor_key() -> None:
    strict = Settings(issuer=ISSUER, refresh_token_rotation_grace_seconds=0)
    assert strict.active_successor_key is None


def test_successor_secret_shorter_than_32_bytes_is_refused() -> None:
    with pytest.raises(SettingsError, match=r"refresh_successor_keys\.k1: must be at least 32"):
        SuccessorKey("k1", b"x" * 31)


def test_successor_secret_is_not_in_repr() -> None:
    assert "kkkk" not in repr(settings())


def test_several_successor_keys_need_an_active_kid() -> None:
    old = SuccessorKey("old", b"o" * 32)
    with pytest.raises(SettingsError, match="refresh_successor_active_kid"):
        settings(refresh_successor_keys=(old, KEY))
    s = settings(refresh_successor_keys=(old, KEY), refresh_successor_active_kid="k1")
    assert s.active_successor_key == KEY
    assert s.successor_key("old") == old
    assert s.successor_key("nope") is None
    with pytest.raises(SettingsError, match="refresh_successor_active_kid"):
        settings(refresh_successor_active_kid="nope")
    with pytest.raises(SettingsError, match="unique"):
        settings(refresh_successor_keys=(KEY, KEY), refresh_successor_active_kid="k1")


@pytest.mark.parametrize(
    "issuer",
    [
        "https://as.example",
        "https://as.example/tenant/1",
        "http://localhost:8000",
        "http://127.0.0.1",
    ],
)
def test_acceptable_issuers(issuer: str) -> None:
    assert settings(issuer=issuer).issuer == issuer


@pytest.mark.parametrize(
    "issuer",
    [
        "http://as.example",
        "http://[::1]:8000",
        "ftp://as.example",
        "https://as.example?x=1",
        "https://as.example/#f",
        "https://user@as.example",
        "as.example",
        "",
        "https://as.example:99999",
    ],
)
def test_bad_issuers_are_refused(issuer: str) -> None:
    with pytest.raises(SettingsError, match=r"^issuer: "):
        settings(issuer=issuer)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("access_token_ttl", 0, "access_token_ttl: must be a positive integer"),
        ("access_token_ttl", "900", "access_token_ttl: must be a positive integer"),
        ("access_token_ttl", True, "access_token_ttl: must be a positive integer"),
        ("authorization_code_ttl", -1, "authorization_code_ttl: must be a positive integer"),
        ("par_ttl", 1.5, "par_ttl: must be a positive integer"),
        ("refresh_token_rotation_grace_seconds", -1, "refresh_token_rotation_grace_seconds:"),
        ("sweep_interval_seconds", 0, "sweep_interval_seconds: must be a positive integer"),
        ("dpop_nonce_policy", "sometimes", "dpop_nonce_policy: must be one of"),
        ("dpop_nonce_required", "yes", "dpop_nonce_required: must be true or false"),
        ("dpop_algs", ("HS256",), "dpop_algs: must be one of"),
        ("dpop_algs", (), "dpop_algs: must name at least one"),
        ("id_token_signing_alg", "none", "id_token_signing_alg: must be one of"),
        ("access_token_signing_alg", "HS256", "access_token_signing_alg: must be one of"),
        ("access_token_audience", "", "access_token_audience:"),
        ("table_prefix", "Oauth_", "table_prefix:"),
        ("table_prefix", "1x", "table_prefix:"),
        ("table_prefix", "a" * 10, "table_prefix: must be at most 9 bytes"),
    ],
)
def test_bad_values_name_their_key(key: str, value: object, message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        settings(**{key: value})
    assert str(caught.value).startswith(message)
    assert caught.value.key == key


def test_nested_bad_values_name_the_dotted_key() -> None:
    with pytest.raises(SettingsError, match=r"^device_authorization\.code_ttl_seconds: "):
        DeviceAuthorizationSettings(code_ttl_seconds=0)
    with pytest.raises(SettingsError, match=r"^client_id_metadata\.cache_ttl_bounds: "):
        ClientIdMetadataSettings(cache_ttl_bounds=(100, 10))
    with pytest.raises(SettingsError, match=r"^client_id_metadata\.blocked_hosts: "):
        ClientIdMetadataSettings(blocked_hosts=("Evil.Example",))
    with pytest.raises(SettingsError, match=r"^logout\.delivery_timeout_seconds: "):
        LogoutSettings(delivery_timeout_seconds=0)


def test_required_par_needs_the_par_feature() -> None:
    with pytest.raises(SettingsError, match=r"^require_pushed_authorization_requests:"):
        settings(
            require_pushed_authorization_requests=True,
            features=FeatureSettings(pushed_authorization_requests=False),
        )


def test_table_prefix_room_matches_the_sql_schema() -> None:
    """Core re-implements the prefix rule; the SQL layer's identifiers must agree with it."""
    longest = max(len(n.encode()) for n in identifier_names(build_metadata("").metadata))
    assert longest == LONGEST_SCHEMA_IDENTIFIER_BYTES
    room = 63 - LONGEST_SCHEMA_IDENTIFIER_BYTES
    assert settings(table_prefix="a" * room).table_prefix == "a" * room
    build_metadata("a" * room)  # the SQL layer accepts the longest prefix core accepts


# --- environment -----------------------------------------------------------------------------

BASE_ENV = {"AUTHWARD_ISSUER": ISSUER, "AUTHWARD_REFRESH_TOKEN_ROTATION_GRACE_SECONDS": "0"}


def test_from_env_reads_flat_nested_list_and_map_values() -> None:
    s = Settings.from_env(
        {
            "AUTHWARD_ISSUER": ISSUER,
            "AUTHWARD_ACCESS_TOKEN_TTL": "600",
            "AUTHWARD_DPOP_NONCE_REQUIRED": "true",
            "AUTHWARD_DPOP_NONCE_POLICY": "single_use",
            "AUTHWARD_DPOP_ALGS": "ES256, EdDSA",
            "AUTHWARD_REFRESH_SUCCESSOR_KEYS": '{"k1": "' + "s" * 32 + '"}',
            "AUTHWARD_DEVICE_AUTHORIZATION__CODE_TTL_SECONDS": "300",
            "AUTHWARD_LOGOUT__ENABLED": "1",
            "AUTHWARD_LOGOUT__DELIVERY_TIMEOUT_SECONDS": "2.5",
            "AUTHWARD_CLIENT_ID_METADATA__CACHE_TTL_BOUNDS": "30,600",
            "AUTHWARD_CLIENT_ID_METADATA__ALLOWED_HOSTS": "a.example,b.example",
            "AUTHWARD_FEATURES__DPOP": "no",
            "PATH": "/usr/bin",
        }
    )
    assert s.access_token_ttl == 600
    assert s.dpop_nonce_required is True
    assert s.dpop_nonce_policy == "single_use"
    assert s.dpop_algs == ("ES256", "EdDSA")
    assert s.active_successor_key == SuccessorKey("k1", b"s" * 32)
    assert s.device_authorization.code_ttl_seconds == 300
    assert s.logout.enabled is True
    assert s.logout.delivery_timeout_seconds == 2.5
    assert s.client_id_metadata.cache_ttl_bounds == (30, 600)
    assert s.client_id_metadata.allowed_hosts == ("a.example", "b.example")
    assert s.features.dpop is False


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("AUTHWARD_ACCESS_TOKEN_TTL", "ten", "access_token_ttl: must be an integer"),
        ("AUTHWARD_ACCESS_TOKEN_TTL", "0", "access_token_ttl: must be a positive integer"),
        ("AUTHWARD_DPOP_NONCE_REQUIRED", "maybe", "dpop_nonce_required: must be true or false"),
        ("AUTHWARD_ACCES_TOKEN_TTL", "1", "acces_token_ttl: unknown setting"),
        (
            "AUTHWARD_DEVICE_AUTHORIZATION__CODE_TTL",
            "1",
            "device_authorization.code_ttl: unknown setting",
        ),
        ("AUTHWARD_DEVICE_AUTHORIZATION", "1", "device_authorization: must be set through"),
        ("AUTHWARD_ISSUER__X", "1", "issuer: is not a section"),
        ("AUTHWARD_REFRESH_SUCCESSOR_KEYS", "k1", "refresh_successor_keys: must be a JSON"),
        ("AUTHWARD_CLIENT_ID_METADATA__CACHE_TTL_BOUNDS", "a,b", "client_id_metadata.cache_ttl"),
    ],
)
def test_from_env_errors_name_the_key(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({**BASE_ENV, name: value})
    assert str(caught.value).startswith(message)


def test_from_env_requires_the_issuer() -> None:
    with pytest.raises(SettingsError, match=r"^issuer: is required"):
        Settings.from_env({"AUTHWARD_REFRESH_TOKEN_ROTATION_GRACE_SECONDS": "0"})


def test_from_env_skips_variables_other_components_own() -> None:
    env = {**BASE_ENV, "AUTHWARD_DATABASE_URL": "sqlite://"}
    with pytest.raises(SettingsError, match="database_url: unknown"):
        Settings.from_env(env)
    assert Settings.from_env(env, ignore={"DATABASE_URL"}).issuer == ISSUER


# --- TOML ------------------------------------------------------------------------------------

TOML = f"""
[authward]
issuer = "{ISSUER}"
access_token_ttl = 300
dpop_algs = ["ES256"]
table_prefix = "oauth_"

[authward.refresh_successor_keys]
k2 = "{'z' * 40}"

[authward.device_authorization]
user_code_length = 9

[authward.logout]
delivery_timeout_seconds = 3

[authward.client_id_metadata]
enabled = true
cache_ttl_bounds = [120, 3600]
blocked_hosts = ["bad.example"]

[other_tool]
anything = 1
"""


def test_from_toml_reads_the_authward_table(tmp_path: Path) -> None:
    path = tmp_path / "authward.toml"
    path.write_text(TOML, encoding="utf-8")
    s = Settings.from_toml(path)
    assert s.access_token_ttl == 300
    assert s.dpop_algs == ("ES256",)
    assert s.table_prefix == "oauth_"
    assert s.active_successor_key == SuccessorKey("k2", b"z" * 40)
    assert s.device_authorization.user_code_length == 9
    assert s.logout.delivery_timeout_seconds == 3.0
    assert s.client_id_metadata.enabled is True
    assert s.client_id_metadata.cache_ttl_bounds == (120, 3600)
    assert s.client_id_metadata.blocked_hosts == ("bad.example",)


def test_from_toml_accepts_a_top_level_document() -> None:
    s = Settings.from_toml_text(f'issuer = "{ISSUER}"\nrefresh_token_rotation_grace_seconds = 0\n')
    assert s.issuer == ISSUER


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('issuer = "x"\nbogus = 1', "bogus: unknown setting"),
        (f'issuer = "{ISSUER}"\n[logout]\nenabld = true', "logout.enabld: unknown setting"),
        (f'issuer = "{ISSUER}"\naccess_token_ttl = "900"', "access_token_ttl: must be"),
        (f'issuer = "{ISSUER}"\nlogout = 1', "logout: must be a table"),
        ("issuer = ", "toml:"),
        (
            f'issuer = "{ISSUER}"\n[refresh_successor_keys]\nk = "short"',
            "refresh_successor_keys.k:",
        ),
    ],
)
def test_from_toml_errors_name_the_key(text: str, message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_toml_text(text)
    assert str(caught.value).startswith(message)
