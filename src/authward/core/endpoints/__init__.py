"""Core endpoints: one module per endpoint, each with ``async def handle(server, request)``.

Spec: RFC 6749 §3; authward ARCHITECTURE.md (``core/endpoints``).
"""
