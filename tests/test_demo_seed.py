"""`sitrep seed-demo` run again from a new state directory (a new clone against the same database):
nothing is seeded twice, and the simulator still gets a working token for every demo device."""

from __future__ import annotations

import json
import os
from pathlib import Path

import asyncpg

from server.security import token_hash
from tests.conftest import RedisServer, create_database, drop_database, run_cli, sitrep_env


async def test_seed_again_from_a_new_state_dir_reissues_demo_device_tokens(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    name = f"sitrep_test_seed_{os.getpid()}"
    url = create_database(name)
    try:
        first, second = tmp_path / "first", tmp_path / "second"
        env = sitrep_env(url, redis_server.url, first)
        run_cli(env, "migrate")
        run_cli(env, "seed-demo")
        original = {d["unique_id"]: d for d in json.loads((first / "demo-devices.json").read_text())}
        assert len(original) == 240
        # The same state directory again: nothing new, nothing reissued, the file unchanged.
        again = run_cli(env, "seed-demo")
        assert "0 responders" in again.stdout and "0 device tokens reissued" in again.stdout
        assert len(json.loads((first / "demo-devices.json").read_text())) == 240
        # A new clone (empty state directory) against the same database.
        out = run_cli(sitrep_env(url, redis_server.url, second), "seed-demo")
        assert "0 responders" in out.stdout and "240 device tokens reissued" in out.stdout
        reissued = {d["unique_id"]: d for d in json.loads((second / "demo-devices.json").read_text())}
        assert reissued.keys() == original.keys()
        conn = await asyncpg.connect(url)
        try:
            hashes = dict(await conn.fetch("SELECT unique_id, token_hash FROM devices WHERE unique_id LIKE 'demo-%'"))
            assert await conn.fetchval("SELECT count(*) FROM responders") == 240
        finally:
            await conn.close()
        for uid, d in reissued.items():
            assert hashes[uid] == token_hash(d["token"]) != token_hash(original[uid]["token"])
            assert d["responder_id"] == original[uid]["responder_id"] and float(d["lon"]) != 0
    finally:
        drop_database(name)
