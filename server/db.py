"""The asyncpg pool and the few helpers every repository shares."""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec

from .settings import DatabaseSettings

_json_encoder = msgspec.json.Encoder()
_json_decoder = msgspec.json.Decoder()


def _encode_json(value: Any) -> str:
    return _json_encoder.encode(value).decode()


async def _init_connection(conn: asyncpg.Connection) -> None:
    for typ in ("jsonb", "json"):
        await conn.set_type_codec(
            typ, encoder=_encode_json, decoder=_json_decoder.decode, schema="pg_catalog", format="text"
        )


class PooledConnection(asyncpg.Connection):  # type: ignore[misc]
    """A pooled connection released without asyncpg's reset query.

    asyncpg sends ``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`` on every release,
    one more round trip per request. sitrep's pooled connections never keep session state: locks
    are transaction-level (``pg_advisory_xact_lock``), nobody LISTENs or SETs on them, and the
    session-level leader locks live on dedicated connections (:func:`connect`). An open
    transaction is still rolled back on release by asyncpg itself.
    """

    def get_reset_query(self) -> str:
        return ""


async def create_pool(
    settings: DatabaseSettings, *, min_size: int | None = None, max_size: int | None = None
) -> asyncpg.Pool:
    return await asyncpg.create_pool(
        settings.database_url,
        min_size=settings.db_pool_min if min_size is None else min_size,
        max_size=settings.db_pool_max if max_size is None else max_size,
        statement_cache_size=settings.db_statement_cache,
        init=_init_connection,
        command_timeout=60,
        connection_class=PooledConnection,
    )


async def connect(settings: DatabaseSettings) -> asyncpg.Connection:
    """A dedicated direct connection (leaders hold their advisory locks on one of these)."""
    conn = await asyncpg.connect(settings.database_url, statement_cache_size=settings.db_statement_cache)
    await _init_connection(conn)
    return conn


def sync_url(url: str) -> str:
    """The SQLAlchemy/psycopg2 form of a ``postgresql://`` DSN (for Alembic)."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg2://" + url[len("postgresql://") :]
    if url.startswith("postgres://"):
        return "postgresql+psycopg2://" + url[len("postgres://") :]
    return url
