"""Shared bench plumbing: a throwaway database and Redis, a real `sitrep serve`, and wrk runs.

Benchmarks target loopback only and are bounded in time.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.conftest import (  # noqa: E402
    create_database,
    drop_database,
    run_cli,
    sitrep_env,
    start_redis,
    start_server,
)


@contextmanager
def bench_stack(
    name: str, *, workers: int = 2, seed: bool = True, **env_extra: str
) -> Iterator[tuple[Any, dict[str, str]]]:
    """A fresh database + Redis + server; yields (server, env)."""
    tmp = Path(tempfile.mkdtemp(prefix=f"sitrep-bench-{name}-"))
    db_name = f"sitrep_bench_{name}_{os.getpid()}"
    url = create_database(db_name)
    redis = start_redis(tmp / "redis")
    env = sitrep_env(url, redis.url, tmp, **{"SITREP_RATE_LIMIT_PER_MIN": "0", **env_extra})
    server = None
    try:
        run_cli(env, "migrate")
        if seed:
            run_cli(env, "seed-demo")
        server = start_server(env, tmp, workers=workers)
        yield server, env
    finally:
        if server:
            server.stop()
        redis.stop()
        drop_database(db_name)
        shutil.rmtree(tmp, ignore_errors=True)


_LUA = """
done = function(summary, latency, requests)
  io.write(string.format("SITREP rps=%.1f p50_ms=%.3f p95_ms=%.3f p99_ms=%.3f errors=%d non2xx=%d\\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(95) / 1000,
    latency:percentile(99) / 1000, summary.errors.connect + summary.errors.read + summary.errors.write +
    summary.errors.timeout, summary.errors.status))
end
"""


def wrk(
    url: str,
    *,
    seconds: int = 10,
    connections: int = 32,
    threads: int = 1,
    headers: dict[str, str] | None = None,
    lua_extra: str = "",
) -> dict[str, float]:
    if shutil.which("wrk") is None:
        raise SystemExit("bench needs wrk (apt-get install wrk)")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(lua_extra + _LUA)
        script = f.name
    cmd = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "-s", script, url]
    for k, v in (headers or {}).items():
        cmd += ["-H", f"{k}: {v}"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30).stdout
    os.unlink(script)
    m = re.search(r"SITREP (.*)", out)
    if not m:
        raise RuntimeError(f"wrk printed no summary:\n{out}")
    return {k: float(v) for k, v in (kv.split("=") for kv in m.group(1).split())}


def cpu_seconds(pid: int) -> float:
    """User+system CPU of a process and its children (for server CPU reports)."""
    total = 0.0
    for p in [pid, *_children(pid)]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (FileNotFoundError, IndexError):
            pass
    return total


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    kids = [int(x) for x in out]
    for k in list(kids):
        kids += _children(k)
    return kids


def rss_mb(pid: int) -> float:
    total = 0
    for p in [pid, *_children(pid)]:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total / 1024


def stamp() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")
