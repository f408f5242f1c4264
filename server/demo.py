"""`sitrep seed-demo`: demo users, teams, 240 responders with devices around Cedar Rapids, Iowa, and
a handful of incidents. Refused outside development mode. Idempotent: a second run changes nothing.

Device tokens are shown once by the API; for the demo they are written to
`.sitrep/demo-devices.json` so that `sitrep simulate` can drive the fleet.
"""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from geo.h3index import cell_for

from .security import hash_password, new_opaque_token, token_hash
from .settings import Settings

CITY = {"name": "Cedar Rapids, Iowa", "lon": -91.6656, "lat": 41.9779}
TEAMS = [
    ("Operations", None),
    ("Fire", "Operations"),
    ("EMS", "Operations"),
    ("Search and Rescue", "Operations"),
    ("Engine 1", "Fire"),
    ("Engine 2", "Fire"),
    ("Medic North", "EMS"),
    ("Medic South", "EMS"),
]
SKILLS = {
    "Engine 1": ["firefighting", "hazmat"],
    "Engine 2": ["firefighting", "ems-basic"],
    "Medic North": ["ems-advanced", "ems-basic"],
    "Medic South": ["ems-advanced"],
    "Search and Rescue": ["swiftwater", "rope-rescue", "k9"],
}
INCIDENTS = [
    (
        "fire",
        1,
        "Warehouse fire",
        "Smoke showing from a two-storey warehouse",
        "1st Ave SE & 10th St",
        0.010,
        0.004,
    ),
    ("medical", 2, "Cardiac arrest", "Adult male, CPR in progress", "Collins Rd NE", -0.020, 0.030),
    ("flood", 2, "Basement flooding", "Water rising near the river", "Ellis Blvd NW", -0.015, -0.010),
    ("rescue", 1, "Vehicle in water", "Car swept off low-water crossing", "Cedar River Trail", 0.005, -0.012),
    ("hazmat", 3, "Chemical odour", "Reported ammonia smell near plant", "C St SW", 0.025, -0.020),
]
DEVICES_FILE = "demo-devices.json"
REISSUE_SQL = """
SELECT d.id, d.unique_id, d.responder_id, r.callsign, ST_X(lp.geom) AS lon, ST_Y(lp.geom) AS lat
FROM devices d JOIN responders r ON r.id = d.responder_id
LEFT JOIN latest_positions lp ON lp.responder_id = d.responder_id
WHERE d.unique_id LIKE 'demo-%' AND d.revoked_at IS NULL ORDER BY d.unique_id
"""


class DemoRefused(RuntimeError):
    pass


async def seed(conn: asyncpg.Connection, settings: Settings, state_dir: Path, responders: int = 240) -> dict[str, int]:
    if not settings.is_development:
        raise DemoRefused("seed-demo runs only with SITREP_ENV=development")
    rng = random.Random(7)
    counts = {"users": 0, "teams": 0, "responders": 0, "devices": 0, "incidents": 0, "device tokens reissued": 0}
    async with conn.transaction():
        team_ids: dict[str, uuid.UUID] = {}
        for name, parent in TEAMS:
            row = await conn.fetchrow("SELECT id FROM teams WHERE name = $1", name)
            if row is None:
                row = await conn.fetchrow(
                    "INSERT INTO teams (name, parent_id) VALUES ($1, $2) RETURNING id",
                    name,
                    team_ids.get(parent) if parent else None,
                )
                counts["teams"] += 1
            team_ids[name] = row["id"]
        pw = hash_password(settings.server.demo_password)
        for username, role, team, display in (
            ("admin", "admin", None, "Demo administrator"),
            ("coord", "coordinator", None, "Demo coordinator"),
            ("viewer", "viewer", None, "Demo viewer"),
            ("fire-coord", "coordinator", "Fire", "Fire division coordinator"),
            ("responder", "responder", "Engine 1", "Demo responder"),
        ):
            result = await conn.execute(
                "INSERT INTO users (username, display_name, password_hash, role, team_id) VALUES ($1, $2, $3, $4, $5) "
                "ON CONFLICT (username) DO NOTHING",
                username,
                display,
                pw,
                role,
                team_ids.get(team) if team else None,
            )
            counts["users"] += int(result.split()[-1])
        existing = await conn.fetchval("SELECT count(*) FROM responders")
        devices: list[dict[str, str]] = []
        leaf_teams = [t for t, _ in TEAMS if t not in {"Operations", "Fire", "EMS"}]
        now = datetime.now(UTC)
        for i in range(existing, responders):
            team = leaf_teams[i % len(leaf_teams)]
            callsign = f"{''.join(w[0] for w in team.split()).upper()}-{i + 1:03d}"
            skills = rng.sample(SKILLS.get(team, ["ems-basic"]), k=1 + (i % 2) if len(SKILLS.get(team, [])) > 1 else 1)
            user_id = None
            if i == 0:
                user_id = await conn.fetchval("SELECT id FROM users WHERE username = 'responder'")
            rid = await conn.fetchval(
                "INSERT INTO responders (callsign, name, team_id, skills, user_id, status) VALUES ($1, $2, $3, $4, $5, $6) "
                "RETURNING id",
                callsign,
                f"Responder {i + 1}",
                team_ids[team],
                skills,
                user_id,
                "available" if i % 10 else "off_duty" if i % 20 == 0 else "busy",
            )
            token = new_opaque_token("dev")
            unique_id = f"demo-{i + 1:04d}"
            await conn.execute(
                "INSERT INTO devices (unique_id, name, responder_id, token_hash) VALUES ($1, $2, $3, $4)",
                unique_id,
                f"{callsign} phone",
                rid,
                token_hash(token),
            )
            lon = CITY["lon"] + rng.uniform(-0.08, 0.08)
            lat = CITY["lat"] + rng.uniform(-0.06, 0.06)
            fix_time = now - timedelta(seconds=rng.randint(5, 120))
            h3 = cell_for(lon, lat)
            await conn.execute(
                "INSERT INTO positions (responder_id, fix_time, received_at, geom, h3, accuracy_m, source, device_id) "
                "VALUES ($1, $2, $3, ST_SetSRID(ST_MakePoint($4, $5), 4326), $6, 8, 'seed', "
                "(SELECT id FROM devices WHERE unique_id = $7)) ON CONFLICT DO NOTHING",
                rid,
                fix_time,
                now,
                lon,
                lat,
                h3,
                unique_id,
            )
            await conn.execute(
                "INSERT INTO latest_positions (responder_id, fix_time, received_at, seq, geom, h3, accuracy_m, source) "
                "VALUES ($1, $2, $3, currval('positions_seq'), ST_SetSRID(ST_MakePoint($4, $5), 4326), $6, 8, 'seed') "
                "ON CONFLICT (responder_id) DO NOTHING",
                rid,
                fix_time,
                now,
                lon,
                lat,
                h3,
            )
            devices.append(
                {
                    "unique_id": unique_id,
                    "token": token,
                    "responder_id": str(rid),
                    "callsign": callsign,
                    "lon": f"{lon:.6f}",
                    "lat": f"{lat:.6f}",
                }
            )
            counts["responders"] += 1
            counts["devices"] += 1
        path = state_dir / DEVICES_FILE
        previous = json.loads(path.read_text()) if path.exists() else []
        known = {d["unique_id"] for d in previous} | {d["unique_id"] for d in devices}
        # Demo devices seeded earlier whose tokens this state directory never held (a new clone, or a
        # deleted .sitrep, against the same database): only hashes are stored, so issue new tokens.
        for row in await conn.fetch(REISSUE_SQL):
            if row["unique_id"] in known:
                continue
            token = new_opaque_token("dev")
            await conn.execute("UPDATE devices SET token_hash = $2 WHERE id = $1", row["id"], token_hash(token))
            devices.append(
                {
                    "unique_id": row["unique_id"],
                    "token": token,
                    "responder_id": str(row["responder_id"]),
                    "callsign": row["callsign"],
                    "lon": f"{row['lon'] if row['lon'] is not None else CITY['lon']:.6f}",
                    "lat": f"{row['lat'] if row['lat'] is not None else CITY['lat']:.6f}",
                }
            )
            counts["device tokens reissued"] += 1
        if devices:
            state_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(previous + devices, indent=1))
            path.chmod(0o600)
        if not await conn.fetchval("SELECT count(*) FROM incidents"):
            coord = await conn.fetchval("SELECT id FROM users WHERE username = 'coord'")
            for kind, prio, title, desc, address, dlon, dlat in INCIDENTS:
                lon, lat = CITY["lon"] + dlon, CITY["lat"] + dlat
                iid = await conn.fetchval(
                    "INSERT INTO incidents (type, priority, title, description, address, reporter, geom, h3, created_by) "
                    "VALUES ($1, $2, $3, $4, $5, '911 call', ST_SetSRID(ST_MakePoint($6, $7), 4326), $8, $9) RETURNING id",
                    kind,
                    prio,
                    title,
                    desc,
                    address,
                    lon,
                    lat,
                    cell_for(lon, lat),
                    coord,
                )
                await conn.execute(
                    "INSERT INTO incident_events (incident_id, kind, actor_id, body) VALUES ($1, 'created', $2, $3)",
                    iid,
                    coord,
                    {"status": "reported"},
                )
                counts["incidents"] += 1
        await conn.execute(
            "INSERT INTO audit_log (actor, action, target_type, detail) VALUES ('system', 'demo.seed', 'system', $1)",
            counts,
        )
    return counts
