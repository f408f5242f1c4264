"""Shared fixtures: a real PostgreSQL/PostGIS database, a private Redis, and the real server
running in a subprocess on a free port. Nothing of our own is mocked.

Each pytest session gets its own database (``sitrep_test_<pid>``) and its own redis-server on a
free port, so several sessions can run side by side on one machine.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO.parent / "shared" / "samples"
DEMO_PASSWORD = "sitrep-demo"
JWT_SECRET = "test-secret-0123456789-abcdefghijklmnop"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.3):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {port}")


@dataclass
class RedisServer:
    port: int
    proc: subprocess.Popen[bytes]
    dir: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def start(self) -> None:
        if self.proc.poll() is not None:
            self.proc = _spawn_redis(self.port, self.dir)


def _spawn_redis(port: int, directory: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [
            "redis-server",
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(directory),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_port(port)
    return proc


def start_redis(tmp: Path) -> RedisServer:
    port = free_port()
    tmp.mkdir(parents=True, exist_ok=True)
    return RedisServer(port, _spawn_redis(port, tmp), tmp)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = start_redis(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


def _admin_psql(sql: str, db: str = "postgres") -> None:
    cmd = ["psql", "-v", "ON_ERROR_STOP=1", "-qAt", "-d", db, "-c", sql]
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    subprocess.run(cmd, check=True, capture_output=True)


def create_database(name: str) -> str:
    _admin_psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    _admin_psql(f'CREATE DATABASE "{name}" OWNER sitrep')
    _admin_psql("CREATE EXTENSION IF NOT EXISTS postgis", db=name)
    return f"postgresql://sitrep:sitrep@127.0.0.1:5432/{name}"


def drop_database(name: str) -> None:
    _admin_psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def sitrep_env(database_url: str, redis_url: str, state_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SITREP_")}
    env.update(
        {
            "SITREP_DATABASE_URL": database_url,
            "SITREP_REDIS_URL": redis_url,
            "SITREP_JWT_SECRET": JWT_SECRET,
            "SITREP_DEMO_PASSWORD": DEMO_PASSWORD,
            "SITREP_STATE_DIR": str(state_dir),
            "SITREP_ENV": "development",
            "SITREP_FEEDS_ENABLED": "false",
            "SITREP_LOG_LEVEL": "WARNING",
        }
    )
    env.update(extra)
    return env


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        env=env,
        cwd=REPO,
        text=True,
        capture_output=True,
        check=True,
        timeout=300,
    )


@dataclass
class Database:
    name: str
    url: str
    state_dir: Path
    env: dict[str, str]
    devices: list[dict[str, str]] = field(default_factory=list)


@pytest.fixture(scope="session")
def database(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    """A migrated database seeded with the demo data (users admin/coord/viewer/responder, 240 responders)."""
    name = f"sitrep_test_{os.getpid()}"
    url = create_database(name)
    state = tmp_path_factory.mktemp("state")
    # Many servers share this database (the generic one, the web one, the stream pair, the alert one).
    # Only a server configured for the deliveries a test checks may claim outbox rows, so the
    # dispatcher is off unless a fixture turns it on (tests/alerts/conftest.py: alert_server).
    env = sitrep_env(url, redis_server.url, state, SITREP_OUTBOX_ENABLED="false")
    run_cli(env, "migrate")
    run_cli(env, "seed-demo")
    devices = json.loads((state / "demo-devices.json").read_text())
    yield Database(name, url, state, env, devices)
    drop_database(name)


@dataclass
class ServerProcess:
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


def start_server(
    env: dict[str, str], log_dir: Path, workers: int = 1, port: int | None = None, timeout: float = 30.0
) -> ServerProcess:
    """Run `sitrep serve` (uvicorn + uvloop + httptools) in its own process group."""
    port = port or free_port()
    log = log_dir / f"server-{port}.log"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "server.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        env=env,
        cwd=REPO,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200:
                return ServerProcess(port, proc, log)
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise TimeoutError(f"server not ready:\n{log.read_text()[-4000:]}")


@pytest.fixture(scope="session")
def server(database: Database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The shared real server (one worker) against the session database."""
    srv = start_server(database.env, tmp_path_factory.mktemp("logs"))
    yield srv
    srv.stop()


@pytest.fixture
async def client(server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as c:
        yield c


_token_cache: dict[tuple[str, str], str] = {}


async def login(client: httpx.AsyncClient, username: str, password: str = DEMO_PASSWORD) -> str:
    key = (str(client.base_url), username)
    if key not in _token_cache:
        r = await client.post("/v1/auth/token", json={"username": username, "password": password})
        assert r.status_code == 200, r.text
        _token_cache[key] = r.json()["access_token"]
    return _token_cache[key]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def admin_headers(client: httpx.AsyncClient) -> dict[str, str]:
    return bearer(await login(client, "admin"))


@pytest.fixture
async def coord_headers(client: httpx.AsyncClient) -> dict[str, str]:
    return bearer(await login(client, "coord"))


@pytest.fixture
async def viewer_headers(client: httpx.AsyncClient) -> dict[str, str]:
    return bearer(await login(client, "viewer"))


@pytest.fixture
async def responder_headers(client: httpx.AsyncClient) -> dict[str, str]:
    return bearer(await login(client, "responder"))


@pytest.fixture
async def db(database: Database) -> AsyncIterator[Any]:
    """A direct asyncpg connection to the session database, for asserting what was stored."""
    import asyncpg

    conn = await asyncpg.connect(database.url)
    try:
        yield conn
    finally:
        await conn.close()


def samples_dir() -> Path:
    if not SAMPLES.is_dir():
        pytest.skip(f"recorded samples not found at {SAMPLES}")
    return SAMPLES


async def eventually(check: Any, timeout: float = 5.0, interval: float = 0.05) -> Any:
    """Poll an async or sync predicate until it returns a truthy value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last: {last!r})")
