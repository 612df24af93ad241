"""The table factory: names, prefixes, identifier lengths (spec §2, §1.2, §7 item 1)."""

from __future__ import annotations

import pytest

from authward.stores.errors import InvalidTablePrefixError
from authward.stores.sql.schema import TABLE_NAMES, build_metadata, identifier_names
from tests.dbkit import Db


def test_unprefixed_tables_have_the_seed_names() -> None:
    tables = build_metadata()
    assert [t.name for t in tables.in_creation_order()] == list(TABLE_NAMES)


def test_prefix_goes_in_front_of_every_table_and_index() -> None:
    tables = build_metadata("oauth_")
    for name in identifier_names(tables.metadata):
        assert name.startswith("oauth_"), name
    assert "oauth_attesto_authorization_codes_code_hash_index" in identifier_names(
        tables.metadata
    )


@pytest.mark.parametrize("bad", ["bad-prefix;", "Upper_", "1abc", "a b", "x'"])
def test_invalid_prefix_is_refused(bad: str) -> None:
    with pytest.raises(InvalidTablePrefixError, match="invalid --table-prefix"):
        build_metadata(bad)


def test_non_string_prefix_is_refused() -> None:
    with pytest.raises(InvalidTablePrefixError, match="must be a string"):
        build_metadata(3)  # type: ignore[arg-type]


def test_prefix_that_pushes_an_identifier_over_63_bytes_is_refused() -> None:
    build_metadata("abcdefghi")  # 9 characters: the longest index name is exactly 63 bytes
    with pytest.raises(InvalidTablePrefixError, match="63 bytes"):
        build_metadata("abcdefghij")


def test_authorization_codes_have_no_primary_key() -> None:
    codes = build_metadata().authorization_codes
    assert not codes.primary_key.columns


async def test_tables_are_created_on_both_engines(db: Db) -> None:
    for table in db.tables.in_creation_order():
        assert await db.rows(table) == []
