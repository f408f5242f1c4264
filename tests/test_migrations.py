"""Alembic upgrade and downgrade on an empty database; partitions and retention."""

from __future__ import annotations

import os
from datetime import date, timedelta

import asyncpg
import pytest
from sqlalchemy import create_engine

from server.db import sync_url
from server.maintenance import downgrade, drop_expired_partitions, ensure_partitions, migrate, partition_name
from tests.conftest import create_database, drop_database


@pytest.fixture
def empty_db():  # type: ignore[no-untyped-def]
    name = f"sitrep_mig_{os.getpid()}"
    url = create_database(name)
    yield url
    drop_database(name)


async def _tables(url: str) -> set[str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {r["tablename"] for r in rows}
    finally:
        await conn.close()


async def test_upgrade_downgrade_upgrade_on_empty_database(empty_db: str) -> None:
    migrate(empty_db)
    tables = await _tables(empty_db)
    for expected in (
        "users",
        "teams",
        "devices",
        "responders",
        "positions",
        "latest_positions",
        "incidents",
        "incident_events",
        "assignments",
        "resources",
        "hazards",
        "hazard_cells",
        "geofences",
        "fence_states",
        "fence_events",
        "alerts",
        "subscribers",
        "deliveries",
        "outbox",
        "feed_state",
        "audit_log",
        "boundaries",
    ):
        assert expected in tables, expected
    downgrade(empty_db)
    assert await _tables(empty_db) <= {"alembic_version", "spatial_ref_sys"}
    migrate(empty_db)
    assert "positions" in await _tables(empty_db)


async def test_schema_matches_table_metadata(empty_db: str) -> None:
    """The migration and server/tables.py describe the same schema (no drift)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from server.tables import metadata

    migrate(empty_db)
    engine = create_engine(sync_url(empty_db))

    def include(obj, name, type_, reflected, compare_to):  # type: ignore[no-untyped-def]
        return not (type_ == "table" and (name == "spatial_ref_sys" or (name or "").startswith("positions_p")))

    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"include_object": include, "compare_type": False})
        diff = compare_metadata(ctx, metadata)
    engine.dispose()
    assert diff == []


async def test_positions_are_partitioned_daily_and_old_partitions_drop(empty_db: str) -> None:
    migrate(empty_db)
    conn = await asyncpg.connect(empty_db)
    try:
        today = date(2026, 3, 10)
        created = await ensure_partitions(conn, retention_days=3, ahead_days=2, today=today)
        assert created == [partition_name(today + timedelta(days=d)) for d in range(-3, 3)]
        assert await ensure_partitions(conn, retention_days=3, ahead_days=2, today=today) == []
        later = today + timedelta(days=2)
        dropped = await drop_expired_partitions(conn, retention_days=3, today=later)
        assert dropped == [partition_name(today - timedelta(days=3)), partition_name(today - timedelta(days=2))]
        kind = await conn.fetchval(
            "SELECT partstrat::text FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid "
            "WHERE c.relname = 'positions'"
        )
        assert kind == "r"
    finally:
        await conn.close()
