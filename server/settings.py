"""Settings, one small class per concern, read from ``SITREP_*`` environment variables.

Nothing here runs at import time: call :func:`load_settings` (the app factory and the CLI do).
Every knob has a safe default for a local run on loopback.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field, fields
from typing import Any, get_type_hints

DEFAULT_JWT_SECRET = "sitrep-development-secret-do-not-use-in-production"


class SettingsError(ValueError):
    """A setting has a value the server cannot run with."""


def _convert(raw: str, typ: Any, name: str) -> Any:
    try:
        if typ is bool:
            low = raw.strip().lower()
            if low in {"1", "true", "yes", "on"}:
                return True
            if low in {"0", "false", "no", "off", ""}:
                return False
            raise ValueError(raw)
        if typ is int:
            return int(raw)
        if typ is float:
            return float(raw)
        if typ == tuple[str, ...]:
            return tuple(p.strip() for p in raw.split(",") if p.strip())
        return raw
    except ValueError as exc:
        raise SettingsError(f"{name}={raw!r} is not a valid {getattr(typ, '__name__', typ)}") from exc


class _EnvSettings:
    """Base: fields of a dataclass are filled from ``{PREFIX}{FIELD}`` when present."""

    _prefix = "SITREP_"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Any:
        env = dict(os.environ) if env is None else env
        hints = get_type_hints(cls)
        values: dict[str, Any] = {}
        for f in fields(cls):  # type: ignore[arg-type]
            key = f"{cls._prefix}{f.name.upper()}"
            if key in env:
                values[f.name] = _convert(env[key], hints[f.name], key)
        return cls(**values)


@dataclass(frozen=True)
class DatabaseSettings(_EnvSettings):
    database_url: str = "postgresql://sitrep:sitrep@127.0.0.1:5432/sitrep"
    """PostgreSQL DSN (PostGIS 3 required)."""
    db_pool_min: int = 2
    """Connections each worker opens at start."""
    db_pool_max: int = 8
    """Upper bound of the per-worker pool; keep small (the budget is two cores)."""
    db_statement_cache: int = 256
    """asyncpg prepared-statement cache; set 0 behind pgBouncer in transaction mode."""
    retention_days: int = 30
    """Position history is kept this many days; older daily partitions are dropped."""
    partitions_ahead_days: int = 3
    """Daily position partitions created ahead of today."""


@dataclass(frozen=True)
class RedisSettings(_EnvSettings):
    redis_url: str = "redis://127.0.0.1:6379/0"
    """Redis holds only what can be rebuilt: fan-out, rate limits, resume buffers."""


@dataclass(frozen=True)
class AuthSettings(_EnvSettings):
    jwt_secret: str = DEFAULT_JWT_SECRET
    """HMAC secret for access tokens. The server refuses the default off loopback."""
    access_ttl_s: int = 900
    """Lifetime of an access token."""
    refresh_ttl_s: int = 14 * 24 * 3600
    """Lifetime of a refresh token (rotated on every use)."""
    login_max_failures: int = 5
    """Failed logins per account before growing delays apply."""
    login_max_failures_per_address: int = 30
    """Failed logins per client address (any account) before growing delays apply; higher than the
    per-account limit because many people can share one address (NAT, a command center's proxy)."""
    login_window_s: int = 900
    """Window in which failed logins are counted."""


@dataclass(frozen=True)
class ServerSettings(_EnvSettings):
    host: str = "127.0.0.1"
    """Bind address."""
    port: int = 8000
    """Bind port."""
    workers: int = 2
    """Worker processes; they meet only in PostgreSQL and Redis."""
    env: str = "development"
    """`development` allows demo seeding; anything else is production-like."""
    max_body_bytes: int = 2 * 1024 * 1024
    """Largest accepted request body (413 beyond)."""
    rate_limit_per_min: int = 6000
    """Requests per minute per client address on the REST API (429 beyond)."""
    demo_password: str = "sitrep-demo"
    """Password of the demo users created by `sitrep seed-demo`."""
    log_level: str = "INFO"
    """Log level for the JSON logs."""
    static_dir: str = ""
    """Directory of the built web app; empty means `web/dist` beside the package."""
    cors_origins: tuple[str, ...] = ()
    """Origins allowed by CORS (none by default: the web app is served by sitrep itself)."""


@dataclass(frozen=True)
class IngestSettings(_EnvSettings):
    ingest_flush_ms: float = 5.0
    """Group-commit linger: a flush starts once a writer is free and the oldest queued fix has waited this long (waiting for a busy writer counts)."""
    ingest_max_batch: int = 5000
    """Most fixes in one group commit."""
    ingest_queue_limit: int = 50_000
    """Fixes waiting for commit per worker; beyond it ingest answers 503 with Retry-After."""
    ingest_writers: int = 2
    """Group commits in flight at once per worker (each on its own pooled connection)."""
    stale_after_s: int = 300
    """A responder with no fix for this long is stale."""
    max_future_s: int = 300
    """Fixes further in the future than this are rejected."""
    poor_accuracy_m: float = 500.0
    """Fixes less accurate than this are stored but flagged."""
    reorder_window_s: float = 10.0
    """Fence engine: fixes are ordered per responder within this window of fix time."""


@dataclass(frozen=True)
class FeedSettings(_EnvSettings):
    feeds_enabled: bool = True
    """Run feed ingesters (on one leader worker)."""
    feed_contact: str = "sitrep/0.1 (ops@example.org)"
    """User-Agent with contact details; api.weather.gov refuses requests without one."""
    feed_base_url: str = ""
    """When set (the demo uses the local fake feed server), every built-in feed points here."""
    feed_firms_map_key: str = ""
    """NASA FIRMS MAP_KEY; the built-in FIRMS feed stays disabled without one (or a base URL)."""
    feed_cap_url: str = ""
    """URL of a CAP Atom/RSS index (e.g. a MeteoAlarm feed) for the built-in ``cap`` feed."""
    feed_boundaries_dir: str = ".sitrep"
    """Where the us-atlas county file is fetched (``npm pack``) when ``web/node_modules`` lacks it."""
    feed_leader_retry_s: float = 2.0
    """How often a worker that is not the feed leader tries to take the leadership."""


@dataclass(frozen=True)
class AlertSettings(_EnvSettings):
    alerts_allow_self_approval: bool = False
    """Single-operator deployments only: let the author approve their own alert."""
    alerts_sender: str = "sitrep@example.org"
    """CAP ``<sender>`` of every alert this deployment issues."""
    alerts_public_url: str = "http://127.0.0.1:8000"
    """Public base URL used in links (CAP documents, Atom index, unsubscribe links)."""
    alerts_max_vertices: int = 100
    """Vertex budget of an alert polygon; larger areas are simplified to a covering polygon."""
    alerts_near_edge_m: float = 1000.0
    """Preview: subscribers this close outside the area's edge are listed separately."""
    alerts_ipaws: bool = False
    """IPAWS profile: one SAME event code and ``expires`` required on every alert."""
    alerts_smtp_host: str = "127.0.0.1"
    """SMTP relay for alert emails."""
    alerts_smtp_port: int = 1025
    """SMTP relay port."""
    alerts_smtp_from: str = "alerts@example.org"
    """From address of alert emails."""
    alerts_sms_urls: tuple[str, ...] = ()
    """Twilio-style SMS provider base URLs, in failover order (empty: SMS not configured)."""
    alerts_sms_account: str = "AC-sitrep"
    """Account id sent to the SMS providers."""
    alerts_sms_token: str = "sms-token"
    """Auth token for the SMS providers (HTTP basic with the account id)."""
    alerts_sms_from: str = "+15550000000"
    """Sender number of alert SMS."""
    alerts_sms_rate_per_s: float = 20.0
    """Most SMS per second handed to the providers, across all workers."""
    alerts_email_rate_per_s: float = 1000.0
    """Most alert emails per second handed to the relay, across all workers."""
    alerts_webhook_rate_per_s: float = 200.0
    """Most alert webhooks per second, across all workers."""
    alerts_send_timeout_s: float = 10.0
    """Timeout of one provider call (SMTP, SMS, webhook)."""
    alerts_allow_private_webhooks: bool = False
    """Allow subscriber webhooks to loopback/private addresses (tests and closed networks only)."""
    alerts_signups_per_hour: int = 30
    """Public sign-ups per client address per hour (429 beyond)."""
    alerts_vapid_private_key: str = ""
    """Web push VAPID private key (base64url raw P-256 key, or PEM; `python -m server.alerts.push` prints a new one). Empty: in development one is generated once and kept in the database (`server_keys`); elsewhere web push is off."""
    alerts_vapid_subject: str = "mailto:alerts@example.org"
    """VAPID `sub` claim: a `mailto:` or `https:` contact for push services."""
    alerts_push_rate_per_s: float = 500.0
    """Most web push messages per second handed to push services, across all workers."""
    alerts_push_allow_private: bool = False
    """Allow push endpoints that are plain http or resolve to loopback/private addresses (tests only)."""


@dataclass(frozen=True)
class StreamSettings(_EnvSettings):
    stream_publish_hz: float = 20.0
    """How often a worker publishes its coalesced changes to Redis (one XADD+PUBLISH per tick)."""
    stream_max_rate_hz: float = 10.0
    """Most delta frames per second a viewer subscription receives (clients may ask for fewer)."""
    stream_heartbeat_s: float = 15.0
    """Idle viewers get a heartbeat this often so proxies keep the socket open."""
    stream_history_s: float = 60.0
    """Resume window: batches older than this are trimmed from the Redis stream."""
    stream_history_max: int = 20_000
    """Hard cap on batches kept in the Redis stream (approximate MAXLEN)."""
    stream_queue_frames: int = 256
    """Frames a viewer may have waiting; a viewer past it is closed with 4008 (too slow)."""
    stream_max_subscriptions: int = 16
    """Subscriptions per connection."""
    stream_max_cells: int = 20_000
    """Most H3 cells in one subscription area."""
    stream_max_bbox_deg2: float = 32_400.0
    """Largest bbox area in square degrees (default: a quarter of the globe); omit the area for everything."""
    stream_bbox_grid: int = 8
    """A subscribed bbox is widened outward to a grid of power-of-two degrees no coarser than 1/this of its
    longer side (each edge moves out by less than one grid step), so viewers looking at nearly the same
    place share one subscription group and its frames; 0 keeps every bbox exact."""
    stream_snapshot_limit: int = 20_000
    """Most objects per topic in a snapshot (the snapshot says `truncated` beyond it)."""
    stream_snapshot_concurrency: int = 3
    """Snapshot reads a worker runs at once; the rest wait, so a reconnect storm leaves pool connections for ingest."""
    stream_live_refresh_s: float = 120.0
    """How often a worker with viewers reloads its in-memory copy of latest_positions (positions snapshots)
    from PostgreSQL in full, besides at its first viewer and on an epoch change (a safety net for writes that
    bypass the stream); 0 = never. A worker without viewers keeps no copy."""
    stream_redis_prefix: str = "sitrep:stream"
    """Prefix of the Redis keys and channel the stream uses."""


@dataclass(frozen=True)
class IncidentSettings(_EnvSettings):
    arrival_radius_m: float = 150.0
    """A responder this close to an incident (for the dwell) has arrived."""
    arrival_dwell_s: float = 30.0
    """How long (fix time) a responder must stay within the arrival radius."""
    arrival_check_interval_s: float = 1.0
    """How often the arrival monitor compares active assignments with latest positions."""
    dispatch_speed_mps: float = 13.9
    """Straight-line travel speed used for ETAs in recommendations (~50 km/h)."""
    dispatch_max_radius_m: float = 50_000.0
    """Recommendations never look for candidates further than this from the incident."""
    dispatch_team_bonus: float = 5.0
    """Score added to candidates of the incident's team (subtree) in recommendations."""
    idempotency_ttl_s: int = 24 * 3600
    """Idempotency keys are kept (and replayed) this long."""


@dataclass(frozen=True)
class FenceSettings(_EnvSettings):
    fences_enabled: bool = True
    """Run the fence evaluator (one leader worker) on this worker."""
    fence_poll_ms: float = 100.0
    """How often the evaluator polls committed positions when idle."""
    fence_batch: int = 5000
    """Most positions read per poll."""
    fence_gap_grace_s: float = 2.0
    """A hole in the position sequence is skipped once a higher seq has been visible this long."""
    fence_resync_s: float = 30.0
    """Full reload of fences and webhooks as a safety net for missed notifications."""
    outbox_enabled: bool = True
    """Run the outbox dispatcher on this worker."""
    outbox_poll_ms: float = 200.0
    """How often each worker looks for due outbox rows."""
    outbox_batch: int = 50
    """Rows claimed per poll."""
    outbox_concurrency: int = 64
    """Sends in flight per worker."""
    outbox_per_target: int = 4
    """Sends in flight per target (webhook URL) per worker."""
    outbox_timeout_s: float = 10.0
    """Timeout of one send."""
    outbox_lease_s: float = 60.0
    """A claimed row becomes due again after this long if its worker died mid-send."""
    outbox_backoff_base_s: float = 1.0
    """First retry delay (exponential backoff with full jitter)."""
    outbox_backoff_cap_s: float = 3600.0
    """Largest retry delay."""
    outbox_max_age_s: float = 86400.0
    """Rows still failing this long after being enqueued are dead-lettered."""
    webhook_allow_private: bool = False
    """Allow webhook URLs resolving to loopback/private/link-local addresses (tests, closed networks)."""


@dataclass(frozen=True)
class Settings:
    db: DatabaseSettings = field(default_factory=DatabaseSettings)
    redis: RedisSettings = field(default_factory=RedisSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    server: ServerSettings = field(default_factory=ServerSettings)
    ingest: IngestSettings = field(default_factory=IngestSettings)
    feeds: FeedSettings = field(default_factory=FeedSettings)
    fences: FenceSettings = field(default_factory=FenceSettings)
    stream: StreamSettings = field(default_factory=StreamSettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    incidents: IncidentSettings = field(default_factory=IncidentSettings)

    @property
    def is_development(self) -> bool:
        return self.server.env == "development"

    def check_for_serving(self) -> None:
        """Refuse configurations that are unsafe to serve."""
        if self.auth.jwt_secret == DEFAULT_JWT_SECRET and not is_loopback(self.server.host):
            raise SettingsError(
                f"refusing to bind {self.server.host} with the default SITREP_JWT_SECRET; "
                "set SITREP_JWT_SECRET to a long random value"
            )
        if len(self.auth.jwt_secret) < 16:
            raise SettingsError("SITREP_JWT_SECRET must be at least 16 characters")


def is_loopback(host: str) -> bool:
    if host in {"localhost", ""}:
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_settings(env: dict[str, str] | None = None) -> Settings:
    return Settings(
        db=DatabaseSettings.from_env(env),
        redis=RedisSettings.from_env(env),
        auth=AuthSettings.from_env(env),
        server=ServerSettings.from_env(env),
        ingest=IngestSettings.from_env(env),
        feeds=FeedSettings.from_env(env),
        fences=FenceSettings.from_env(env),
        stream=StreamSettings.from_env(env),
        alerts=AlertSettings.from_env(env),
        incidents=IncidentSettings.from_env(env),
    )


def describe() -> list[tuple[str, str, str]]:
    """(environment variable, default, description) for every setting, from the field docstrings."""
    import ast
    import dataclasses
    import inspect
    import sys

    rows = []
    for top in dataclasses.fields(Settings):
        cls = top.default_factory  # type: ignore[misc]
        tree = ast.parse(inspect.getsource(sys.modules[cls.__module__]))
        docs: dict[str, str] = {}
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and node.name == cls.__name__:
                body = node.body
                for i, st in enumerate(body[:-1]):
                    nxt = body[i + 1]
                    if (
                        isinstance(st, ast.AnnAssign)
                        and isinstance(st.target, ast.Name)
                        and isinstance(nxt, ast.Expr)
                        and isinstance(nxt.value, ast.Constant)
                    ):
                        docs[st.target.id] = str(nxt.value.value)
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            if isinstance(default, tuple):
                default = ",".join(default)
            rows.append((f"{cls._prefix}{f.name.upper()}", str(default), " ".join(docs.get(f.name, "").split())))
    return rows
