"""Schema maintenance: migrations to head, daily ``positions`` partitions, retention.

Positions are partitioned by ``fix_time`` per UTC day (``positions_pYYYYMMDD``). Partitions are
created from the retention horizon up to a few days ahead; whole partitions older than
``SITREP_RETENTION_DAYS`` are dropped, never rows one by one.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import asyncpg

log = logging.getLogger("sitrep.maintenance")

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
_PARTITION_RE = re.compile(r"^positions_p(\d{8})$")


def alembic_config(database_url: str):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    from .db import sync_url

    cfg = Config(str(MIGRATIONS_DIR / "alembic.ini"))
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", sync_url(database_url).replace("%", "%%"))
    return cfg


def migrate(database_url: str, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    from alembic import command

    command.downgrade(alembic_config(database_url), revision)


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(MIGRATIONS_DIR))
    head = script.get_current_head()
    assert head is not None
    return head


def partition_name(day: date) -> str:
    return f"positions_p{day:%Y%m%d}"


async def ensure_partitions(
    conn: asyncpg.Connection, *, retention_days: int, ahead_days: int, today: date | None = None
) -> list[str]:
    """Create the daily partitions covering [today - retention, today + ahead]. Returns new names."""
    today = today or datetime.now(UTC).date()
    existing = await _existing_partitions(conn)
    created = []
    day = today - timedelta(days=retention_days)
    while day <= today + timedelta(days=ahead_days):
        name = partition_name(day)
        if name not in existing:
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            end = start + timedelta(days=1)
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF positions "
                f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
            )
            created.append(name)
        day += timedelta(days=1)
    if created:
        log.info("created position partitions", extra={"partitions": created})
    return created


async def drop_expired_partitions(
    conn: asyncpg.Connection, *, retention_days: int, today: date | None = None
) -> list[str]:
    """Drop whole partitions whose day ended before the retention horizon."""
    today = today or datetime.now(UTC).date()
    horizon = today - timedelta(days=retention_days)
    dropped = []
    for name in sorted(await _existing_partitions(conn)):
        match = _PARTITION_RE.match(name)
        if match and datetime.strptime(match.group(1), "%Y%m%d").date() < horizon:
            await conn.execute(f"DROP TABLE IF EXISTS {name}")
            dropped.append(name)
    if dropped:
        log.info("dropped expired position partitions", extra={"partitions": dropped})
    return dropped


async def run_partition_maintenance(
    conn: asyncpg.Connection, *, retention_days: int, ahead_days: int, today: date | None = None
) -> tuple[list[str], list[str]]:
    # One worker at a time: DDL on the parent takes strong locks.
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('sitrep.partitions'))")
        created = await ensure_partitions(conn, retention_days=retention_days, ahead_days=ahead_days, today=today)
        dropped = await drop_expired_partitions(conn, retention_days=retention_days, today=today)
    return created, dropped


async def _existing_partitions(conn: asyncpg.Connection) -> set[str]:
    rows = await conn.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'positions'"
    )
    return {r["relname"] for r in rows}
