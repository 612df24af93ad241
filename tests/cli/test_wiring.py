"""build_server: settings, database, keys and the host file wired into one working app.

Spec: authward ARCHITECTURE.md (layer ``cli``); spec/stores.md §1.2 (one table prefix for every
store).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from argon2 import PasswordHasher
from starlette.applications import Starlette
from starlette.routing import Mount

from authward.cli.wiring import build_server, load_host_config, load_settings, prepare_database
from authward.core.defaults import HostFileError, hash_secret
from authward.core.keys import KeySet, save_key_file
from tests.dbkit import T0

CHEAP = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
ISSUER = "http://127.0.0.1:8000"


def write_files(tmp_path: Path, *, extra: str = "") -> tuple[Path, Path]:
    key_file = tmp_path / "keys.json"
    save_key_file(KeySet.generate(("ES256", "RS256"), now=T0), key_file, overwrite=False)
    config = tmp_path / "authward.toml"
    config.write_text(
        f"""
[authward]
issuer = "{ISSUER}"
table_prefix = "oauth_"
refresh_successor_keys = {{ k1 = "{"x" * 40}" }}

[login]
cookie_secret = "{"c" * 40}"

[[clients]]
client_id = "svc"
client_type = "confidential"
client_secret_hash = "{hash_secret("svc-secret", hasher=CHEAP)}"
grant_types = ["client_credentials"]
scope = "api"
{extra}
""",
        encoding="utf-8",
    )
    return key_file, config


async def test_built_server_serves_client_credentials_on_prefixed_tables(tmp_path: Path) -> None:
    key_file, config = write_files(tmp_path)
    settings = load_settings(config)
    assert settings.table_prefix == "oauth_"
    built = build_server(
        settings,
        database_url=f"sqlite:///{tmp_path / 'a.db'}",
        key_file=key_file,
        config_file=config,
        hasher=CHEAP,
    )
    try:
        report = await prepare_database(built.engine, settings)
        assert "oauth_attesto_authorization_codes" in report.created_tables
        transport = httpx.ASGITransport(app=built.app)
        async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as client:
            meta = (await client.get("/.well-known/openid-configuration")).json()
            assert meta["token_endpoint"] == ISSUER + "/token"
            response = await client.post(
                "/token", data={"grant_type": "client_credentials", "scope": "api"},
                auth=("svc", "svc-secret"),
            )
        assert response.status_code == 200, response.text
        assert response.json()["token_type"] in ("Bearer", "DPoP")
    finally:
        await built.engine.dispose()


def test_issuer_option_overrides_the_file(tmp_path: Path) -> None:
    _, config = write_files(tmp_path)
    assert load_settings(config, issuer="http://localhost:9000").issuer == (
        "http://localhost:9000"
    )


def test_short_login_secret_is_refused_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[login]\ncookie_secret = "short"\n', encoding="utf-8")
    with pytest.raises(HostFileError, match=r"^login\.cookie_secret"):
        load_host_config(config)


def test_unknown_login_key_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[login]\ncookie_secrte = "x"\n', encoding="utf-8")
    with pytest.raises(HostFileError, match=r"login\.cookie_secrte"):
        load_host_config(config)


async def test_sweep_interval_runs_a_sweeper_for_the_app_lifetime(tmp_path: Path) -> None:
    """``sweep_interval_seconds`` starts an in-process sweeper with the app and stops it with
    the app; while it runs, an expired row disappears within about one interval."""
    key_file, config = write_files(tmp_path)
    text = config.read_text(encoding="utf-8").replace(
        'table_prefix = "oauth_"', 'table_prefix = "oauth_"\nsweep_interval_seconds = 1'
    )
    config.write_text(text, encoding="utf-8")
    settings = load_settings(config)
    built = build_server(
        settings,
        database_url=f"sqlite:///{tmp_path / 'a.db'}",
        key_file=key_file,
        config_file=config,
        hasher=CHEAP,
    )
    sweeper = built.sweeper
    assert sweeper is not None
    assert sweeper.interval_seconds == 1
    await prepare_database(built.engine, settings)
    par = built.server.stores.pushed_authorization_requests
    uri = "urn:ietf:params:oauth:request_uri:expired"
    await par.put(uri, {"client_id": "svc"}, 1, now=T0)
    async with built.app.router.lifespan_context(built.app):
        assert sweeper.running
        for _ in range(50):
            if sweeper.last_report is not None:
                break
            await asyncio.sleep(0.1)
    assert not sweeper.running
    report = sweeper.last_report
    assert report is not None
    assert report.deleted["oauth_attesto_pushed_authorization_requests"] == 1


async def test_no_sweep_interval_means_no_sweeper(tmp_path: Path) -> None:
    key_file, config = write_files(tmp_path)
    built = build_server(
        load_settings(config),
        database_url=f"sqlite:///{tmp_path / 'a.db'}",
        key_file=key_file,
        config_file=config,
        hasher=CHEAP,
    )
    try:
        assert built.sweeper is None
    finally:
        await built.engine.dispose()


async def test_a_host_that_mounts_the_app_runs_its_lifespan_inside_its_own(tmp_path: Path) -> None:
    """The docs/server.md pattern: Starlette does not run a mounted app's lifespan, so the
    host enters authward's from its own; the sweeper then runs while the host runs."""
    key_file, config = write_files(tmp_path)
    text = config.read_text(encoding="utf-8").replace(
        'table_prefix = "oauth_"', 'table_prefix = "oauth_"\nsweep_interval_seconds = 60'
    )
    config.write_text(text, encoding="utf-8")
    settings = load_settings(config)
    built = build_server(
        settings, database_url=f"sqlite:///{tmp_path / 'a.db'}", key_file=key_file,
        config_file=config, hasher=CHEAP,
    )
    assert built.sweeper is not None

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await prepare_database(built.engine, settings)
        async with built.app.router.lifespan_context(built.app):
            yield

    host = Starlette(routes=[Mount("/auth", app=built.app)], lifespan=lifespan)
    async with host.router.lifespan_context(host):
        assert built.sweeper.running
        transport = httpx.ASGITransport(app=host)
        async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as client:
            response = await client.post(
                "/auth/token", data={"grant_type": "client_credentials", "scope": "api"},
                auth=("svc", "svc-secret"),
            )
        assert response.status_code == 200, response.text
    assert not built.sweeper.running
