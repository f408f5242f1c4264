"""Alembic migrations for sitrep (run with `sitrep migrate`)."""
