"""Table metadata (SQLAlchemy Core + GeoAlchemy2): the schema Alembic migrates.

Queries at run time are plain SQL through asyncpg (see the ``*_repo`` modules); this module is the
single description of the data model, used by migrations and by the schema-drift test.
``positions`` is partitioned by ``fix_time`` (daily) in the migration itself, since SQLAlchemy
cannot express partitioning.
"""

from __future__ import annotations

from geoalchemy2 import Geometry
from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Computed,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR, UUID
from sqlalchemy.types import UserDefinedType

metadata = MetaData()


class XID8(UserDefinedType):  # type: ignore[type-arg]
    """PostgreSQL ``xid8`` (a 64-bit transaction id), for commit-safe change cursors."""

    cache_ok = True

    def get_col_spec(self, **kw: object) -> str:
        return "xid8"


ROLES = ("admin", "coordinator", "responder", "viewer")
RESPONDER_STATUSES = ("available", "busy", "off_duty")


def _uuid_pk() -> Column:  # type: ignore[type-arg]
    return Column("id", UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()"))


def _ts(name: str, nullable: bool = False, default: bool = True) -> Column:  # type: ignore[type-arg]
    return Column(name, DateTime(timezone=True), nullable=nullable, server_default=func.now() if default else None)


def _geom(name: str = "geom", kind: str = "GEOMETRY", nullable: bool = True) -> Column:  # type: ignore[type-arg]
    return Column(name, Geometry(kind, srid=4326, spatial_index=False), nullable=nullable)


teams = Table(
    "teams",
    metadata,
    _uuid_pk(),
    Column("name", Text, nullable=False, unique=True),
    Column("parent_id", UUID(as_uuid=True), ForeignKey("teams.id", ondelete="RESTRICT")),
    Column("description", Text, nullable=False, server_default=""),
    _ts("created_at"),
)

users = Table(
    "users",
    metadata,
    _uuid_pk(),
    Column("username", Text, nullable=False, unique=True),
    Column("display_name", Text, nullable=False, server_default=""),
    Column("email", Text),
    Column("password_hash", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("team_id", UUID(as_uuid=True), ForeignKey("teams.id", ondelete="SET NULL")),
    Column("is_active", Boolean, nullable=False, server_default=text("true")),
    _ts("created_at"),
    _ts("updated_at"),
    CheckConstraint("role IN ('admin','coordinator','responder','viewer')", name="users_role_check"),
)

team_members = Table(
    "team_members",
    metadata,
    Column("team_id", UUID(as_uuid=True), ForeignKey("teams.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("team_role", Text, nullable=False, server_default="member"),
    PrimaryKeyConstraint("team_id", "user_id"),
)

refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    _uuid_pk(),
    Column("user_id", UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("family_id", UUID(as_uuid=True), nullable=False),
    Column("token_hash", Text, nullable=False, unique=True),
    _ts("created_at"),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("used_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
    Index("refresh_tokens_family_idx", "family_id"),
)

responders = Table(
    "responders",
    metadata,
    _uuid_pk(),
    Column("user_id", UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL"), unique=True),
    Column("callsign", Text, nullable=False),
    Column("name", Text, nullable=False, server_default=""),
    Column("team_id", UUID(as_uuid=True), ForeignKey("teams.id", ondelete="SET NULL")),
    Column("status", Text, nullable=False, server_default="available"),
    Column("skills", ARRAY(Text), nullable=False, server_default="{}"),
    Column("phone", Text),
    _ts("created_at"),
    _ts("updated_at"),
    CheckConstraint("status IN ('available','busy','off_duty')", name="responders_status_check"),
    Index("responders_team_idx", "team_id"),
)

devices = Table(
    "devices",
    metadata,
    _uuid_pk(),
    Column("unique_id", Text, nullable=False, unique=True),
    Column("name", Text, nullable=False, server_default=""),
    Column("responder_id", UUID(as_uuid=True), ForeignKey("responders.id", ondelete="CASCADE")),
    Column("token_hash", Text, nullable=False, unique=True),
    _ts("created_at"),
    Column("revoked_at", DateTime(timezone=True)),
    Column("last_seen_at", DateTime(timezone=True)),
)

# Partitioned by RANGE (fix_time) in the migration; every key starts with responder_id (sharding-ready).
positions = Table(
    "positions",
    metadata,
    Column("responder_id", UUID(as_uuid=True), nullable=False),
    Column("fix_time", DateTime(timezone=True), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("seq", BigInteger, nullable=False, server_default=text("nextval('positions_seq')")),
    _geom("geom", "POINT", nullable=False),
    Column("h3", BigInteger, nullable=False),
    Column("accuracy_m", Float),
    Column("speed_mps", Float),
    Column("heading_deg", Float),
    Column("altitude_m", Float),
    Column("battery_pct", Float),
    Column("source", Text, nullable=False, server_default="api"),
    Column("device_id", UUID(as_uuid=True)),
    Column("client_id", Text),
    Column("poor_accuracy", Boolean, nullable=False, server_default=text("false")),
    Column("attributes", JSONB),
    PrimaryKeyConstraint("responder_id", "fix_time"),
    Index("positions_seq_idx", "seq"),
    Index("positions_fix_time_brin", "fix_time", postgresql_using="brin"),
    postgresql_partition_by="RANGE (fix_time)",
)

latest_positions = Table(
    "latest_positions",
    metadata,
    Column("responder_id", UUID(as_uuid=True), ForeignKey("responders.id", ondelete="CASCADE"), primary_key=True),
    Column("fix_time", DateTime(timezone=True), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("seq", BigInteger, nullable=False),
    _geom("geom", "POINT", nullable=False),
    Column("h3", BigInteger, nullable=False),
    Column("accuracy_m", Float),
    Column("speed_mps", Float),
    Column("heading_deg", Float),
    Column("altitude_m", Float),
    Column("battery_pct", Float),
    Column("source", Text, nullable=False),
    Column("stale", Boolean, nullable=False, server_default=text("false")),
    Index("latest_positions_h3_idx", "h3"),
    Index("latest_positions_geom_idx", "geom", postgresql_using="gist"),
)

incidents = Table(
    "incidents",
    metadata,
    _uuid_pk(),
    Column("type", Text, nullable=False),
    Column("priority", SmallInteger, nullable=False),
    Column("status", Text, nullable=False, server_default="reported"),
    Column("title", Text, nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    Column("address", Text, nullable=False, server_default=""),
    Column("reporter", Text, nullable=False, server_default=""),
    _geom("geom", "GEOMETRY", nullable=False),
    Column("h3", BigInteger, nullable=False),
    Column("team_id", UUID(as_uuid=True), ForeignKey("teams.id", ondelete="SET NULL")),
    Column("created_by", UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL")),
    _ts("created_at"),
    _ts("updated_at"),
    Column("acknowledged_at", DateTime(timezone=True)),
    Column("dispatched_at", DateTime(timezone=True)),
    Column("on_scene_at", DateTime(timezone=True)),
    Column("resolved_at", DateTime(timezone=True)),
    Column("closed_at", DateTime(timezone=True)),
    Column("en_route_at", DateTime(timezone=True)),
    Column("cancelled_at", DateTime(timezone=True)),
    Column("required_skills", ARRAY(Text), nullable=False, server_default="{}"),
    Column(
        "search",
        TSVECTOR,
        Computed(
            "to_tsvector('english', coalesce(title,'') || ' ' || coalesce(type,'') || ' ' || "
            "coalesce(description,'') || ' ' || coalesce(address,''))",
            persisted=True,
        ),
    ),
    CheckConstraint("priority BETWEEN 1 AND 4", name="incidents_priority_check"),
    # btree_gin (migration 0005): rare searches read one created_at window from the index
    Index("incidents_search_created_idx", "search", "created_at", postgresql_using="gin"),
    Index("incidents_geom_idx", "geom", postgresql_using="gist"),
    Index("incidents_status_idx", "status", "priority"),
    Index("incidents_created_id_idx", "created_at", "id"),
)

incident_events = Table(
    "incident_events",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("incident_id", UUID(as_uuid=True), ForeignKey("incidents.id", ondelete="CASCADE"), nullable=False),
    Column("kind", Text, nullable=False),
    Column("actor_id", UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL")),
    Column("body", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    _ts("created_at"),
    # the writing transaction: sync readers only pass rows of transactions older than every running one
    Column("txid", XID8, nullable=False, server_default=text("pg_current_xact_id()")),
    Column("client_id", UUID(as_uuid=True)),
    Index("incident_events_incident_idx", "incident_id", "id"),
    Index("incident_events_txid_idx", "txid", "id"),
    Index("incident_events_client_idx", "client_id", unique=True, postgresql_where=text("client_id IS NOT NULL")),
)

resources = Table(
    "resources",
    metadata,
    _uuid_pk(),
    Column("name", Text, nullable=False),
    Column("type", Text, nullable=False),
    Column("capabilities", ARRAY(Text), nullable=False, server_default="{}"),
    Column("status", Text, nullable=False, server_default="available"),
    Column("home_station", Text, nullable=False, server_default=""),
    Column("team_id", UUID(as_uuid=True), ForeignKey("teams.id", ondelete="SET NULL")),
    Column("device_id", UUID(as_uuid=True), ForeignKey("devices.id", ondelete="SET NULL")),
    _geom("geom", "POINT"),
    _ts("created_at"),
    _ts("updated_at"),
)

assignments = Table(
    "assignments",
    metadata,
    _uuid_pk(),
    Column("incident_id", UUID(as_uuid=True), ForeignKey("incidents.id", ondelete="CASCADE"), nullable=False),
    Column("responder_id", UUID(as_uuid=True), ForeignKey("responders.id", ondelete="CASCADE")),
    Column("resource_id", UUID(as_uuid=True), ForeignKey("resources.id", ondelete="CASCADE")),
    Column("status", Text, nullable=False, server_default="pending"),
    Column("created_by", UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL")),
    _ts("created_at"),
    _ts("updated_at"),
    Column("accepted_at", DateTime(timezone=True)),
    Column("arrived_at", DateTime(timezone=True)),
    Column("en_route_at", DateTime(timezone=True)),
    Column("declined_at", DateTime(timezone=True)),
    Column("released_at", DateTime(timezone=True)),
    Column("inside_since", DateTime(timezone=True)),
    CheckConstraint("responder_id IS NOT NULL OR resource_id IS NOT NULL", name="assignments_target_check"),
    Index("assignments_incident_idx", "incident_id"),
    Index("assignments_responder_idx", "responder_id"),
    Index(
        "assignments_one_active_responder",
        "responder_id",
        unique=True,
        postgresql_where=text("status IN ('pending','accepted','en_route','on_scene')"),
    ),
    Index(
        "assignments_one_active_resource",
        "resource_id",
        unique=True,
        postgresql_where=text("status IN ('pending','accepted','en_route','on_scene')"),
    ),
)

hazards = Table(
    "hazards",
    metadata,
    _uuid_pk(),
    Column("source", Text, nullable=False, server_default="manual"),
    Column("external_id", Text),
    Column("version", Text, nullable=False, server_default="1"),
    Column("kind", Text, nullable=False),
    Column("severity", Text, nullable=False, server_default="unknown"),
    Column("title", Text, nullable=False, server_default=""),
    Column("description", Text, nullable=False, server_default=""),
    _geom("geom", "GEOMETRY", nullable=False),
    Column("h3_res", SmallInteger, nullable=False),
    Column("valid_from", DateTime(timezone=True)),
    Column("valid_until", DateTime(timezone=True)),
    Column("status", Text, nullable=False, server_default="active"),
    Column("ended_at", DateTime(timezone=True)),
    Column("is_public", Boolean, nullable=False, server_default=text("true")),
    Column("raw", JSONB),
    Column("created_by", UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL")),
    _ts("created_at"),
    _ts("updated_at"),
    UniqueConstraint("source", "external_id", name="hazards_source_external_key"),
    Index("hazards_geom_idx", "geom", postgresql_using="gist"),
    Index("hazards_active_idx", "status", "valid_until"),
)

hazard_cells = Table(
    "hazard_cells",
    metadata,
    Column("hazard_id", UUID(as_uuid=True), ForeignKey("hazards.id", ondelete="CASCADE"), nullable=False),
    Column("cell", BigInteger, nullable=False),
    Column("interior", Boolean, nullable=False),
    PrimaryKeyConstraint("hazard_id", "cell"),
    Index("hazard_cells_cell_idx", "cell"),
)

geofences = Table(
    "geofences",
    metadata,
    _uuid_pk(),
    Column("name", Text, nullable=False),
    _geom("geom", "GEOMETRY", nullable=False),
    Column("detect", ARRAY(Text), nullable=False),
    Column("dwell_s", Float, nullable=False, server_default="0"),
    Column("hysteresis_m", Float, nullable=False, server_default="0"),
    Column("applies_to_all", Boolean, nullable=False, server_default=text("true")),
    Column("team_ids", ARRAY(UUID(as_uuid=True)), nullable=False, server_default="{}"),
    Column("responder_ids", ARRAY(UUID(as_uuid=True)), nullable=False, server_default="{}"),
    Column("meta", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("incident_id", UUID(as_uuid=True), ForeignKey("incidents.id", ondelete="CASCADE")),
    Column("valid_until", DateTime(timezone=True)),
    Column("version", Integer, nullable=False, server_default="1"),
    Column("created_by", UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL")),
    _ts("created_at"),
    _ts("updated_at"),
    Column("deleted_at", DateTime(timezone=True)),
)

# fillfactor 70 (migration 0006): visits are upserted as they change, HOT.
fence_states = Table(
    "fence_states",
    metadata,
    Column("responder_id", UUID(as_uuid=True), nullable=False),
    Column("fence_id", Text, nullable=False),
    Column("state", JSONB, nullable=False),
    _ts("updated_at"),
    PrimaryKeyConstraint("responder_id", "fence_id"),
)

# The fence evaluator's last evaluated fix per responder (restored on leader takeover with fence_states).
# fillfactor 50 (migration 0006; SQLAlchemy has no table storage parameters): upserted once per fix, HOT.
fence_positions = Table(
    "fence_positions",
    metadata,
    Column("responder_id", UUID(as_uuid=True), primary_key=True),
    Column("team_id", UUID(as_uuid=True)),
    Column("lon", Float, nullable=False),
    Column("lat", Float, nullable=False),
    Column("fix_time", DateTime(timezone=True), nullable=False),
    Column("accuracy_m", Float),
    Column("seq", BigInteger, nullable=False),
)

fence_events = Table(
    "fence_events",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("detect", Text, nullable=False),
    Column("fence_id", Text, nullable=False),
    Column("fence_kind", Text, nullable=False),
    Column("responder_id", UUID(as_uuid=True), nullable=False),
    Column("fix_time", DateTime(timezone=True)),
    Column("time", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("late", Boolean, nullable=False, server_default=text("false")),
    Column("payload", JSONB, nullable=False),
    Index("fence_events_responder_idx", "responder_id", "fix_time"),
    Index("fence_events_fence_idx", "fence_id", "fix_time"),
)

leader_state = Table(
    "leader_state",
    metadata,
    Column("name", Text, primary_key=True),
    Column("fencing_token", BigInteger, nullable=False, server_default="0"),
    Column("checkpoint_seq", BigInteger, nullable=False, server_default="0"),
    Column("holder", Text),
    _ts("updated_at"),
)

webhooks = Table(
    "webhooks",
    metadata,
    _uuid_pk(),
    Column("url", Text, nullable=False),
    Column("secret", Text, nullable=False),
    Column("filter", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("active", Boolean, nullable=False, server_default=text("true")),
    Column("exercise", Boolean, nullable=False, server_default=text("false")),
    Column("created_by", UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL")),
    _ts("created_at"),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("message_id", Text, nullable=False, unique=True),
    Column("channel", Text, nullable=False),
    Column("target", Text, nullable=False),
    Column("webhook_id", UUID(as_uuid=True), ForeignKey("webhooks.id", ondelete="CASCADE")),
    Column("alert_id", UUID(as_uuid=True)),
    Column("subscriber_id", UUID(as_uuid=True)),
    Column("payload", JSONB, nullable=False),
    Column("status", Text, nullable=False, server_default="pending"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_try_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("last_error", Text),
    Column("provider_id", Text),
    _ts("created_at"),
    Column("delivered_at", DateTime(timezone=True)),
    Index("outbox_due_idx", "next_try_at", postgresql_where=text("status IN ('pending','retrying')")),
    Index("outbox_webhook_idx", "webhook_id", "id"),
)

alerts = Table(
    "alerts",
    metadata,
    _uuid_pk(),
    Column("identifier", Text, nullable=False, unique=True),
    Column("sender", Text, nullable=False),
    Column("status", Text, nullable=False, server_default="draft"),
    Column("cap_status", Text, nullable=False, server_default="Actual"),
    Column("msg_type", Text, nullable=False, server_default="Alert"),
    Column("references", ARRAY(Text), nullable=False, server_default="{}"),
    Column("supersedes_id", UUID(as_uuid=True), ForeignKey("alerts.id", ondelete="SET NULL")),
    _geom("area", "GEOMETRY"),
    Column("content", JSONB, nullable=False),
    Column("cap_xml", Text),
    Column("sent_at", DateTime(timezone=True)),
    Column("effective", DateTime(timezone=True)),
    Column("expires", DateTime(timezone=True)),
    Column("created_by", UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL")),
    Column("approved_by", UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL")),
    _ts("created_at"),
    _ts("updated_at"),
)

subscribers = Table(
    "subscribers",
    metadata,
    _uuid_pk(),
    Column("email", Text),
    Column("phone", Text),
    Column("webhook_url", Text),
    Column("language", Text, nullable=False, server_default="en"),
    Column("quiet_hours", JSONB),
    Column("exercise", Boolean, nullable=False, server_default=text("false")),
    Column("confirm_token_hash", Text),
    Column("confirmed_at", DateTime(timezone=True)),
    Column("unsubscribe_token_hash", Text),
    Column("unsubscribed_at", DateTime(timezone=True)),
    _ts("created_at"),
)

subscriber_places = Table(
    "subscriber_places",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("subscriber_id", UUID(as_uuid=True), ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=False),
    _geom("geom", "GEOMETRY", nullable=False),
    Column("cells", ARRAY(BigInteger), nullable=False),
    # fastupdate off: sign-ups are rare, and a long GIN pending list makes every alert's lookup scan it.
    Index("subscriber_places_cells_idx", "cells", postgresql_using="gin", postgresql_with={"fastupdate": "off"}),
)

push_subscriptions = Table(
    "push_subscriptions",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column(
        "subscriber_id",
        UUID(as_uuid=True),
        ForeignKey("subscribers.id", ondelete="CASCADE"),
        nullable=False,
        unique=True,
    ),
    Column("endpoint", Text, nullable=False, unique=True),
    Column("p256dh", Text, nullable=False),
    Column("auth", Text, nullable=False),
    _ts("created_at"),
)

server_keys = Table(
    "server_keys",
    metadata,
    Column("name", Text, primary_key=True),
    Column("value", Text, nullable=False),
    _ts("created_at"),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("alert_identifier", Text, nullable=False),
    Column("alert_version", Integer, nullable=False),
    Column("recipient", Text, nullable=False),
    Column("channel", Text, nullable=False),
    Column("status", Text, nullable=False, server_default="queued"),
    Column("outbox_id", BigInteger, ForeignKey("outbox.id", ondelete="SET NULL")),
    Column("provider_id", Text),
    Column("last_error", Text),
    _ts("created_at"),
    _ts("updated_at"),
    UniqueConstraint("alert_identifier", "alert_version", "recipient", "channel", name="deliveries_once"),
)

feed_state = Table(
    "feed_state",
    metadata,
    Column("name", Text, primary_key=True),
    Column("kind", Text, nullable=False),
    Column("url", Text, nullable=False),
    Column("enabled", Boolean, nullable=False, server_default=text("true")),
    Column("interval_s", Float, nullable=False, server_default="60"),
    Column("area", JSONB),
    Column("options", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("state", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("health", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    _ts("updated_at"),
)

boundaries = Table(
    "boundaries",
    metadata,
    Column("kind", Text, nullable=False),
    Column("code", Text, nullable=False),
    Column("name", Text, nullable=False, server_default=""),
    _geom("geom", "GEOMETRY", nullable=False),
    _ts("fetched_at"),
    PrimaryKeyConstraint("kind", "code"),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("key", Text, nullable=False),
    Column("user_id", UUID(as_uuid=True), nullable=False),
    Column("request_hash", Text, nullable=False),
    Column("status_code", SmallInteger, nullable=False),
    Column("response", JSONB, nullable=False),
    _ts("created_at"),
    PrimaryKeyConstraint("user_id", "key"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    _ts("at"),
    Column("actor_id", UUID(as_uuid=True)),
    Column("actor", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("target_type", Text, nullable=False),
    Column("target_id", Text),
    Column("request_id", Text),
    Column("detail", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Index("audit_log_at_idx", "at"),
    Index("audit_log_target_idx", "target_type", "target_id"),
)

responder_notifications = Table(
    "responder_notifications",
    metadata,
    _uuid_pk(),
    Column("responder_id", UUID(as_uuid=True), ForeignKey("responders.id", ondelete="CASCADE"), nullable=False),
    Column("kind", Text, nullable=False),
    Column("title", Text, nullable=False),
    Column("body", Text, nullable=False, server_default=""),
    Column("ref_type", Text),
    Column("ref_id", Text),
    Column("severity", Text),
    _ts("created_at"),
    _ts("read_at", nullable=True, default=False),
    CheckConstraint("kind IN ('hazard_enter','hazard_exit','assignment')", name="responder_notifications_kind_check"),
    # newest first per responder: a backward walk of (responder_id, created_at, id) serves it and the cursor
    Index("responder_notifications_responder_idx", "responder_id", "created_at", "id"),
)
