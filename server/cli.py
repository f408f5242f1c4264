"""The `sitrep` command: serve, migrate, seed-demo, services, create-user, simulate, fake-feeds."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from .settings import SettingsError, load_settings


def _state_dir() -> Path:
    return Path(os.environ.get("SITREP_STATE_DIR", Path.cwd() / ".sitrep"))


def cmd_serve(args: argparse.Namespace) -> int:
    settings = load_settings()
    host = args.host or settings.server.host
    port = args.port or settings.server.port
    workers = args.workers or settings.server.workers
    os.environ["SITREP_HOST"] = host
    try:
        load_settings().check_for_serving()
    except SettingsError as exc:
        print(f"sitrep: {exc}", file=sys.stderr)
        return 2
    # Metrics from every worker are aggregated through files in one directory.
    metrics_dir = Path(tempfile.gettempdir()) / f"sitrep-metrics-{port}"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    _raise_open_files()
    # uvicorn re-raises the SIGTERM it handled once it has shut down gracefully; exiting through
    # Python (status 143, as a killed process reports) lets the cleanup below run.
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    try:
        _run_uvicorn(host, port, workers)
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)  # a per-port directory: nothing else reads it
    return 0


def _run_uvicorn(host: str, port: int, workers: int) -> None:
    import uvicorn

    uvicorn.run(
        "server.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        ws="websockets-sansio",
        # The stream sends its own heartbeat every 15 s; protocol pings only find dead peers, and at the
        # default 20 s they cost a tenth of a worker with 5,000 viewers.
        ws_ping_interval=60.0,
        ws_ping_timeout=30.0,
        backlog=4096,
        # A worker busy with thousands of stream sockets on a loaded machine may answer the
        # supervisor's ping late; killing it would cut every socket it holds.
        timeout_worker_healthcheck=30,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=10,
        proxy_headers=False,
    )


def _raise_open_files() -> None:
    """Every stream viewer holds a socket: lift the soft open-file limit to the hard one (workers
    inherit it), so thousands of viewers do not hit the usual 1024."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass


async def _migrate(settings_url: str, retention: int, ahead: int) -> list[str]:
    from .db import connect
    from .maintenance import migrate, run_partition_maintenance

    await asyncio.to_thread(migrate, settings_url)
    settings = load_settings()
    conn = await connect(settings.db)
    try:
        created, _ = await run_partition_maintenance(conn, retention_days=retention, ahead_days=ahead)
    finally:
        await conn.close()
    return created


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = load_settings()
    if args.revision != "head":
        from .maintenance import downgrade, migrate

        (downgrade if args.down else migrate)(settings.db.database_url, args.revision)
        print(f"migrated to {args.revision}")
        return 0
    created = asyncio.run(
        _migrate(settings.db.database_url, settings.db.retention_days, settings.db.partitions_ahead_days)
    )
    print(f"migrated to head; {len(created)} position partitions created")
    return 0


def cmd_seed_demo(args: argparse.Namespace) -> int:
    from .db import connect
    from .demo import DemoRefused, seed

    settings = load_settings()

    async def run() -> dict[str, int]:
        conn = await connect(settings.db)
        try:
            return await seed(conn, settings, _state_dir(), responders=args.responders)
        finally:
            await conn.close()

    try:
        counts = asyncio.run(run())
    except DemoRefused as exc:
        print(f"sitrep: {exc}", file=sys.stderr)
        return 2
    print("demo data: " + ", ".join(f"{v} {k}" for k, v in counts.items()) + " added")
    return 0


def cmd_services(args: argparse.Namespace) -> int:
    from . import localservices as ls

    settings = load_settings()
    if args.action == "start":
        print(ls.start_postgres())
        print(ls.start_redis(settings.redis.redis_url))
        for line in ls.setup_database(settings.db.database_url):
            print(line)
    elif args.action == "stop":
        print(ls.stop_redis(settings.redis.redis_url))
        if args.all:
            print(ls.stop_postgres())
    else:
        print("\n".join(ls.status(settings.redis.redis_url)))
    return 0


def cmd_create_user(args: argparse.Namespace) -> int:
    from .db import connect
    from .security import hash_password
    from .tables import ROLES

    if args.role not in ROLES:
        print(f"sitrep: role must be one of {', '.join(ROLES)}", file=sys.stderr)
        return 2
    password = args.password or os.environ.get("SITREP_NEW_USER_PASSWORD") or getpass.getpass("password: ")
    if len(password) < 8:
        print("sitrep: password must have at least 8 characters", file=sys.stderr)
        return 2
    settings = load_settings()

    async def run() -> str:
        conn = await connect(settings.db)
        try:
            async with conn.transaction():
                uid = await conn.fetchval(
                    "INSERT INTO users (username, password_hash, role, display_name) VALUES ($1, $2, $3, $1) "
                    "ON CONFLICT (username) DO UPDATE SET password_hash = excluded.password_hash, role = excluded.role, "
                    "updated_at = now() RETURNING id",
                    args.username,
                    hash_password(password),
                    args.role,
                )
                await conn.execute(
                    "INSERT INTO audit_log (actor, action, target_type, target_id) VALUES ('cli', 'user.create', 'user', $1)",
                    str(uid),
                )
            return str(uid)
        finally:
            await conn.close()

    print(f"user {args.username} ({args.role}): {asyncio.run(run())}")
    return 0


def cmd_settings(args: argparse.Namespace) -> int:
    from .settings import describe

    print("| variable | default | meaning |\n|---|---|---|")
    for name, default, doc in describe():
        print(f"| `{name}` | `{default}` | {doc} |")
    return 0


def _delegate(module: str, func: str = "main"):  # type: ignore[no-untyped-def]
    def run(args: argparse.Namespace) -> int:
        import importlib

        mod = importlib.import_module(module)
        return int(getattr(mod, func)(args.rest) or 0)

    return run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sitrep", description="Real-time geospatial operations server.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the HTTP/WebSocket server (uvloop + httptools, several workers)")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--workers", type=int)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("migrate", help="migrate the database to head and create position partitions")
    p.add_argument("revision", nargs="?", default="head")
    p.add_argument("--down", action="store_true", help="downgrade to REVISION")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("seed-demo", help="add demo users, teams, responders and incidents (development only)")
    p.add_argument("--responders", type=int, default=240)
    p.set_defaults(func=cmd_seed_demo)

    p = sub.add_parser("services", help="start/stop/status of the local PostgreSQL and Redis")
    p.add_argument("action", choices=["start", "stop", "status"])
    p.add_argument("--all", action="store_true", help="with stop: stop PostgreSQL too")
    p.set_defaults(func=cmd_services)

    p = sub.add_parser("create-user", help="create or reset a user")
    p.add_argument("username")
    p.add_argument("--role", default="admin")
    p.add_argument("--password", help="(or SITREP_NEW_USER_PASSWORD, or prompt)")
    p.set_defaults(func=cmd_create_user)

    p = sub.add_parser("settings", help="print every SITREP_* setting with its default (Markdown)")
    p.set_defaults(func=cmd_settings)

    for name, module, text in (
        ("simulate", "server.simulate", "replay GPS tracks and synthetic fleets into a running server"),
        ("fake-feeds", "feeds.fake", "serve local NWS/USGS/GDACS/FIRMS/CAP feeds for demos and tests"),
    ):
        p = sub.add_parser(name, help=text, add_help=False)
        p.add_argument("rest", nargs=argparse.REMAINDER)
        p.set_defaults(func=_delegate(module))
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # argparse's REMAINDER does not take a leading option (`fake-feeds --port 8081`): delegated
    # commands get whatever the top-level parser did not know.
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        if not hasattr(args, "rest"):
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
        args.rest = [*unknown, *args.rest]
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
