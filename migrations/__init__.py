"""Alembic migrations: the only way Tapeline's schema changes."""
