"""The nine SQL stores run against tables created by a generated, prefixed Alembic revision.

Spec: authward spec/stores.md §1.2 "Runtime parity", §7 items 1 and 10: the prefix that named
the migrated tables is the prefix the stores and the sweeper use, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from alembic import command

from authward.stores import (
    client_metadata,
    codes,
    consent,
    device_codes,
    dpop_nonces,
    par,
    refresh,
    replay,
)
from authward.stores.codes import CodeEntry
from authward.stores.consent import ConsentBinding
from authward.stores.device_codes import NewDeviceCode
from authward.stores.digest import digest
from authward.stores.logout_sessions import LogoutCriteria, LogoutSession
from authward.stores.refresh import RefreshData, RefreshEntry
from authward.stores.sql.client_metadata import SqlClientMetadataCache
from authward.stores.sql.codes import SqlAuthorizationCodeStore
from authward.stores.sql.consent import SqlConsentGrantStore
from authward.stores.sql.device_codes import SqlDeviceCodeStore
from authward.stores.sql.dpop_nonces import SqlDpopNonceStore
from authward.stores.sql.engine import create_engine
from authward.stores.sql.logout_sessions import SqlLogoutSessionStore
from authward.stores.sql.par import SqlPushedAuthorizationRequestStore
from authward.stores.sql.refresh import SqlRefreshTokenStore
from authward.stores.sql.replay import SqlReplayStore
from authward.stores.sql.schema import build_metadata
from authward.stores.sql.sweeper import sweep
from tests.dbkit import KINDS, T0, empty_database
from tests.migrations.test_round_trip import gen_migration, make_environment

PREFIX = "oauth_"


@pytest.mark.parametrize("kind", KINDS)
async def test_every_store_works_on_tables_from_the_prefixed_revision(
    kind: str, tmp_path: Path
) -> None:
    async with empty_database(kind, tmp_path) as (url, options):
        config = make_environment(tmp_path / "env", url, options)
        gen_migration(config, PREFIX)
        await asyncio.to_thread(command.upgrade, config, "head")
        engine = create_engine(url, **options)
        now = T0
        try:
            code_store = SqlAuthorizationCodeStore(engine, table_prefix=PREFIX)
            await code_store.put(
                CodeEntry(
                    code_hash=digest("code"), client_id="c", subject="alice",
                    redirect_uri="https://rp.example/cb", expires_at=int(now) + 60,
                    family_id="fam",
                ),
                now=now,
            )
            assert isinstance(await code_store.take(digest("code"), now=now), codes.Taken)

            refresh_store = SqlRefreshTokenStore(
                engine, table_prefix=PREFIX, successor_keys={"k": b"s" * 32}
            )
            entry = RefreshEntry(
                token_hash=digest("rt"), family_id="fam", generation=0,
                data=RefreshData(subject="alice", client_id="c"), expires_at=int(now) + 60,
            )
            assert isinstance(await refresh_store.insert(entry, now=now), refresh.Inserted)
            assert isinstance(await refresh_store.consume(digest("rt"), now=now), refresh.Claimed)

            device_store = SqlDeviceCodeStore(engine, table_prefix=PREFIX)
            new = NewDeviceCode(
                device_code_hash=digest("dc"), user_code="BCDFGHJK", client_id="c",
                expires_at=int(now) + 600,
            )
            assert isinstance(await device_store.put(new, now=now), device_codes.Stored)

            logout_store = SqlLogoutSessionStore(engine, table_prefix=PREFIX)
            await logout_store.record(
                LogoutSession(
                    sid="sid-1", subject="alice", client_id="c",
                    backchannel_logout_uri="https://rp.example/logout",
                    expires_at=int(now) + 60,
                ),
                now=now,
            )
            taken = await logout_store.take_targets(LogoutCriteria(sid="sid-1"), now=now)
            assert [t.client_id for t in taken] == ["c"]

            nonce_store = SqlDpopNonceStore(engine, table_prefix=PREFIX)
            nonce = await nonce_store.issue(now=now)
            assert isinstance(await nonce_store.accept(nonce, 300, now=now), dpop_nonces.Accepted)

            replay_store = SqlReplayStore(engine, table_prefix=PREFIX)
            assert isinstance(
                await replay_store.check_and_record("dpop", "jti-1", now=now), replay.Recorded
            )
            assert isinstance(
                await replay_store.check_and_record("dpop", "jti-1", now=now), replay.Replay
            )

            par_store = SqlPushedAuthorizationRequestStore(engine, table_prefix=PREFIX)
            uri = "urn:ietf:params:oauth:request_uri:abc"
            assert isinstance(await par_store.put(uri, {"client_id": "c"}, 90, now=now), par.Stored)
            assert isinstance(await par_store.take(uri, now=now), par.Taken)

            cimd = SqlClientMetadataCache(engine, table_prefix=PREFIX)
            doc_url = "https://app.example/client.json"
            await cimd.put(doc_url, {"client_id": doc_url}, now + 60, now=now)
            assert isinstance(await cimd.get(doc_url, now=now), client_metadata.Hit)

            consent_store = SqlConsentGrantStore(engine, table_prefix=PREFIX)
            binding = ConsentBinding(
                subject="alice", client_id="c", redirect_uri="https://rp.example/cb",
                scope=("openid",), code_challenge=None, code_challenge_method=None,
            )
            token = await consent_store.mint(binding, 60, now=now)
            assert isinstance(await consent_store.consume(token, binding, now=now), consent.Granted)

            tables = build_metadata(PREFIX, "postgresql" if kind == "postgresql" else "sqlite")
            report = await sweep(engine, tables, now=now + 100_000)
            assert set(report.deleted) == {t.name for t in tables.in_creation_order()}
            assert report.deleted[f"{PREFIX}attesto_device_codes"] == 1
        finally:
            await engine.dispose()
