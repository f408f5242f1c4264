"""Feed parsing benchmark: the nationwide NWS capture (529 alerts) and the 36,555-row FIRMS CSV.

Prints each stage's time and its share of the budget (issue 7: NWS from parse to stored hazards
with cells and fence re-evaluation in < 3 s; FIRMS in < 5 s), plus the raw ceiling measured in
the same run (JSON decode alone, CSV read alone) so ratios stay meaningful across machines.
Needs ../shared/samples. Run: ``.venv/bin/python bench/feeds.py``.
"""

from __future__ import annotations

import csv
import io
import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from feeds import firms, nws  # noqa: E402
from feeds.relative_dates import rewrite_relative_dates  # noqa: E402

SAMPLES = REPO.parent / "shared" / "samples"
NWS_FILE = SAMPLES / "nws" / "weathergov_templated_alerts_active_national_northwest_529.json"
FIRMS_FILE = SAMPLES / "firms" / "firms_MODIS_C6_1_Global_24h_2023-08-01.csv"


def best_of(n: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(n):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> int:
    if not NWS_FILE.is_file() or not FIRMS_FILE.is_file():
        print(f"samples not found under {SAMPLES}; nothing to measure")
        return 1
    now = datetime.now(UTC)
    nws_raw = NWS_FILE.read_bytes()
    t_rw, nws_data = best_of(5, lambda: rewrite_relative_dates(nws_raw, now))
    t_json, _ = best_of(5, lambda: json.loads(nws_data))
    t_nws, result = best_of(5, lambda: nws.parse(nws_data, now=now))
    print(f"NWS national capture: {len(nws_data) / 1e6:.1f} MB, {len(result.items)} alerts "
          f"({sum(1 for i in result.items if i.geometry)} polygons), {len(result.errors)} item errors")  # fmt: skip
    print(f"  fake-server date rewrite   {t_rw * 1000:8.1f} ms")
    print(f"  raw json.loads (ceiling)   {t_json * 1000:8.1f} ms")
    print(f"  parse + normalize          {t_nws * 1000:8.1f} ms  = {t_nws / t_json:.1f}x json.loads, "
          f"{t_nws / 3.0:.1%} of the 3 s budget")  # fmt: skip

    firms_data = FIRMS_FILE.read_bytes()
    t_csv, rows = best_of(3, lambda: sum(1 for _ in csv.reader(io.StringIO(firms_data.decode()))))
    t_firms, fres = best_of(3, lambda: firms.parse(firms_data, now=now))
    detections = sum(i.raw["detections"] for i in fres.items)
    print(f"FIRMS MODIS 24h: {rows - 1} rows, {detections} above confidence, {len(fres.items)} fire areas")
    print(f"  raw csv.reader (ceiling)   {t_csv * 1000:8.1f} ms")
    print(f"  parse + H3 cluster + dissolve {t_firms * 1000:5.1f} ms  = {t_firms / t_csv:.1f}x csv.reader, "
          f"{t_firms / 5.0:.1%} of the 5 s budget")  # fmt: skip
    ok = t_nws < 3.0 and t_firms < 5.0
    print("within budget" if ok else "OVER BUDGET")
    return 0 if ok else 2


if __name__ == "__main__":
    raise SystemExit(main())
