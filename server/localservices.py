"""`sitrep services`: start, stop and inspect the local PostgreSQL 15 + PostGIS and Redis.

For a developer's or CI machine running Debian 12 as root (or with sudo). It uses the Debian
PostgreSQL cluster `15/main` (pg_ctlcluster), and a Redis server bound to 127.0.0.1 with its data
under `.sitrep/redis`. `setup` creates the `sitrep` role and database with PostGIS.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import urlparse

STATE_DIR = Path(os.environ.get("SITREP_STATE_DIR", Path.cwd() / ".sitrep"))
PG_VERSION = "15"
PG_CLUSTER = "main"


def _run(cmd: list[str], check: bool = True, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=check, text=True, capture_output=True, **kw)  # type: ignore[call-overload, no-any-return]


def _as_postgres(cmd: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return ["sudo", "-u", "postgres", *cmd]


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _wait(host: str, port: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if port_open(host, port):
            return True
        time.sleep(0.2)
    return False


MIN_CONNECTIONS = 300


def start_postgres() -> str:
    if port_open("127.0.0.1", 5432):
        return "postgresql: already running on 127.0.0.1:5432" + _ensure_connections()
    if shutil.which("pg_ctlcluster") is None:
        raise SystemExit("pg_ctlcluster not found: install postgresql-15 and postgresql-15-postgis-3")
    _run(["pg_ctlcluster", PG_VERSION, PG_CLUSTER, "start"], check=False)
    if not _wait("127.0.0.1", 5432, 30):
        raise SystemExit("postgresql did not start; see /var/log/postgresql/")
    return "postgresql: started" + _ensure_connections()


def _ensure_connections() -> str:
    """Each worker keeps a small pool plus leader connections, and the test suite runs several servers
    at once: the Debian default of 100 connections is too tight, so raise it once (needs a restart)."""
    try:
        current = int(_psql("SHOW max_connections"))
    except (subprocess.CalledProcessError, ValueError):
        return ""
    if current >= MIN_CONNECTIONS:
        return ""
    _psql(f"ALTER SYSTEM SET max_connections = {MIN_CONNECTIONS}")
    _run(["pg_ctlcluster", PG_VERSION, PG_CLUSTER, "restart"], check=False)
    if not _wait("127.0.0.1", 5432, 30):
        raise SystemExit("postgresql did not restart; see /var/log/postgresql/")
    return f" (max_connections raised from {current} to {MIN_CONNECTIONS})"


def _redis_target(redis_url: str) -> tuple[str, int]:
    parsed = urlparse(redis_url)
    return parsed.hostname or "127.0.0.1", parsed.port or 6379


def start_redis(redis_url: str) -> str:
    host, port = _redis_target(redis_url)
    if port_open(host, port):
        return f"redis: already running on {host}:{port}"
    server = shutil.which("redis-server")
    if server is None:
        raise SystemExit("redis-server not found: install redis-server")
    data = STATE_DIR / "redis"
    data.mkdir(parents=True, exist_ok=True)
    _run(
        [
            server,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--daemonize",
            "yes",
            "--dir",
            str(data),
            "--pidfile",
            str(data / "redis.pid"),
            "--logfile",
            str(data / "redis.log"),
            "--save",
            "",
            "--appendonly",
            "no",
        ]
    )
    if not _wait("127.0.0.1", port, 15):
        raise SystemExit(f"redis did not start; see {data / 'redis.log'}")
    return f"redis: started on 127.0.0.1:{port}"


def stop_redis(redis_url: str) -> str:
    host, port = _redis_target(redis_url)
    if not port_open(host, port):
        return "redis: not running"
    _run(["redis-cli", "-h", host, "-p", str(port), "shutdown", "nosave"], check=False)
    return "redis: stopped"


def stop_postgres() -> str:
    _run(["pg_ctlcluster", PG_VERSION, PG_CLUSTER, "stop"], check=False)
    return "postgresql: stopped"


def status(redis_url: str) -> list[str]:
    host, port = _redis_target(redis_url)
    return [
        f"postgresql 127.0.0.1:5432: {'up' if port_open('127.0.0.1', 5432) else 'down'}",
        f"redis {host}:{port}: {'up' if port_open(host, port) else 'down'}",
    ]


def _psql(sql: str, db: str = "postgres") -> str:
    return _run(_as_postgres(["psql", "-v", "ON_ERROR_STOP=1", "-qAt", "-d", db, "-c", sql])).stdout.strip()


def setup_database(database_url: str) -> list[str]:
    """Create the role and database named in the DSN, with PostGIS. Idempotent."""
    parsed = urlparse(database_url)
    user = parsed.username or "sitrep"
    password = parsed.password or "sitrep"
    dbname = (parsed.path or "/sitrep").lstrip("/") or "sitrep"
    done = []
    if _psql(f"SELECT 1 FROM pg_roles WHERE rolname = '{user}'") != "1":
        _psql(f"CREATE ROLE \"{user}\" LOGIN CREATEDB PASSWORD '{password}'")
        done.append(f"created role {user}")
    if _psql(f"SELECT 1 FROM pg_database WHERE datname = '{dbname}'") != "1":
        _psql(f'CREATE DATABASE "{dbname}" OWNER "{user}"')
        done.append(f"created database {dbname}")
    _psql("CREATE EXTENSION IF NOT EXISTS postgis", db=dbname)
    done.append(f"database {dbname} has PostGIS")
    return done


def create_database(database_url: str, template_from: str | None = None) -> None:
    """(Re)create a database for tests, owned by the DSN's role, with PostGIS."""
    parsed = urlparse(database_url)
    dbname = parsed.path.lstrip("/")
    _psql(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
    _psql(f'CREATE DATABASE "{dbname}" OWNER "{parsed.username or "sitrep"}"')
    _psql("CREATE EXTENSION IF NOT EXISTS postgis", db=dbname)
