"""Alembic migrations (a package so that installs without the source tree carry them)."""
