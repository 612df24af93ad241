"""The Alembic migration generator and the direct schema migrator."""
