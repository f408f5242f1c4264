"""Middleware cost: authenticated `GET /v1/me` against the bare `GET /health` of the same app.

Both go through sitrep's ASGI middleware (request id, metrics); `/v1/me` also decodes the JWT,
passes the per-address rate limiter (a Redis round trip), the permission guard, and reads the
user row from PostgreSQL. Printed: requests/s and p95 for each, and the ratio (target: /v1/me
keeps >= 70% of the bare route's throughput, i.e. the stack costs < 30%).

Run: `.venv/bin/python bench/auth.py [--seconds 10] [--workers 2]`
"""

from __future__ import annotations

import argparse

import httpx
from _harness import bench_stack, wrk

from tests.conftest import DEMO_PASSWORD


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--connections", type=int, default=32)
    args = ap.parse_args()
    with bench_stack("auth", workers=args.workers, SITREP_RATE_LIMIT_PER_MIN="100000000") as (server, _env):
        token = httpx.post(f"{server.url}/v1/auth/token", json={"username": "admin", "password": DEMO_PASSWORD}).json()[
            "access_token"
        ]
        wrk(f"{server.url}/health", seconds=2, connections=args.connections)  # warm up
        bare = wrk(f"{server.url}/health", seconds=args.seconds, connections=args.connections)
        me = wrk(
            f"{server.url}/v1/me",
            seconds=args.seconds,
            connections=args.connections,
            headers={"Authorization": f"Bearer {token}"},
        )
    ratio = me["rps"] / bare["rps"]
    print(f"workers={args.workers} connections={args.connections} seconds={args.seconds}")
    print(
        f"bare GET /health        : {bare['rps']:9.0f} req/s  p95 {bare['p95_ms']:6.2f} ms  errors {bare['errors'] + bare['non2xx']:.0f}"
    )
    print(
        f"authenticated GET /v1/me: {me['rps']:9.0f} req/s  p95 {me['p95_ms']:6.2f} ms  errors {me['errors'] + me['non2xx']:.0f}"
    )
    print(f"ratio /v1/me ÷ bare: {ratio:.2f} (stack cost {100 * (1 - ratio):.0f}%; target < 30%)")


if __name__ == "__main__":
    main()
