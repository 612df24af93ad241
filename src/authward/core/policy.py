"""The host Protocols: what the application embedding authward supplies (clients, ...).

Spec: RFC 6749 §2 (client registration is out of band), §2.3.1 (client passwords), §10.10
(credential guessing); RFC 6819 §5.1.4.2.2 (secrets hashed at rest).

The host owns its client registry and secret hashing; authward only asks. Further host
Protocols (resource-owner login, consent, claims, scope policy, event sink) join this module
later. Every method is async so a host can reach a database or a remote service.
"""

from __future__ import annotations

from typing import Protocol

from authward.core.clients import Client

__all__ = ["ClientRegistry"]


class ClientRegistry(Protocol):
    """The host's registry of clients (opaque ``client_id`` values; CIMD URLs never reach it)."""

    async def get_client(self, client_id: str) -> Client | None:
        """Return the client registered as ``client_id`` (exact string match), else ``None``.

        ``client_id`` is whatever the request presented: possibly long, odd or hostile. The
        registry must treat it as data (no logging of surrounding secrets, no injection) and
        answer ``None`` for anything it does not know.
        """
        ...

    async def verify_client_secret(self, client: Client, presented_secret: str) -> bool:
        """True when ``presented_secret`` is ``client``'s current secret.

        The host stores only a hash of each secret and compares in constant time (for example
        ``hmac.compare_digest`` over digests, or a password-hash verify). It must not log or
        keep the presented value, must answer ``False`` (never raise) for a wrong or empty
        secret or a client without one, and may accept several secrets during a rotation.
        """
        ...
