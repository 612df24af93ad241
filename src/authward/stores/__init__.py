"""The nine store contracts: Protocols, records and typed outcomes (no SQL here)."""
