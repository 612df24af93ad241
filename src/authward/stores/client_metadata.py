"""The CIMD metadata cache contract: outcomes and the Protocol.

Spec: authward spec/stores.md §2.10, §3.8 (draft-ietf-oauth-client-id-metadata-document-01)
and project decision 4 (``client_id`` URLs of at most 255 characters).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Protocol, TypeAlias

from authward.stores.json import JsonObject

#: The longest CIMD ``client_id`` URL the cache accepts (the ``url`` column size).
MAX_URL_LENGTH: Final = 255

#: A validated, string-keyed client metadata document.
ClientMetadata: TypeAlias = JsonObject


@dataclass(frozen=True, slots=True)
class Hit:
    """``get`` found a fresh cached document."""

    metadata: ClientMetadata


@dataclass(frozen=True, slots=True)
class Miss:
    """Nothing fresh is cached for that URL (unknown or expired)."""


GetOutcome: TypeAlias = Hit | Miss


class ClientMetadataCache(Protocol):
    """Validated CIMD documents keyed by their ``client_id`` URL, one row per URL.

    Only validated documents are ever put; the cache validates nothing itself. Every method
    takes ``now`` (Unix seconds; ``None`` means the store's clock). An entry is fresh while
    ``expires_at > now``.
    """

    async def get(self, url: str, *, now: float | None = None) -> GetOutcome:
        """Return the fresh document for ``url`` (a lookup does not consume it), else ``Miss``."""
        ...

    async def put(
        self, url: str, metadata: ClientMetadata, expires_at: float, *, now: float | None = None
    ) -> None:
        """Cache ``metadata`` for ``url`` until ``expires_at`` (Unix seconds, truncated).

        Atomic: one ``INSERT ... ON CONFLICT (url) DO UPDATE``. The newest put wins, also over
        an expired row; ``inserted_at`` keeps the first insert's time. A URL longer than
        ``MAX_URL_LENGTH`` raises ``ValueTooLongError`` before any write; a metadata value that
        is not a string-keyed JSON object raises ``StoreContractError``.
        """
        ...
