"""authward: an OAuth 2.1 / OpenID Connect authorization server that brings its own persistence."""

__all__: list[str] = []
