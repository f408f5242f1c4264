"""Browser bench: JS bundle size, first load on loopback, and frames/s with 5,000 moving responders.

Runs a throwaway stack (database + Redis + `sitrep serve` serving web/dist) and Debian's headless Chromium
(software WebGL: SwiftShader). The 5,000 responders are fed as stream `delta` frames through the page's own
stream client (`_onMessage`: JSON parse, merge, one setData per tick), 10 ticks/s, every responder moving on
every tick. The ceiling is the same page's frame rate with the map idle, measured in the same run.

    .venv/bin/python bench/web.py [--seconds 8]
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import REPO, bench_stack, stamp

WEB = REPO / "web"
DIST = WEB / "dist"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]

FPS_JS = """async ([seconds, n, hz]) => {
  const s = window.sitrep;
  const frames = () => new Promise((resolve) => {
    let count = 0; const t0 = performance.now();
    const step = (t) => { count++; if (t - t0 < seconds * 1000) requestAnimationFrame(step); else resolve(count / ((t - t0) / 1000)); };
    requestAnimationFrame(step);
  });
  const idle = await frames();
  let seq = 1e9; const ids = Array.from({length: n}, (_, i) => `bench-${i}`);
  const base = s.map.map.getCenter();
  let tick = 0; const applyMs = [];
  const timer = setInterval(() => {
    tick++;
    const now = new Date().toISOString();
    const items = ids.map((id, i) => ({topic: "positions", key: id, accepted_at: Date.now() / 1000, data: {
      id, callsign: `B${i}`, status: i % 7 ? "available" : "busy", stale: false, fix_time: now,
      lon: base.lng + 0.15 * Math.cos(i + tick * 0.02) * ((i % 97) / 97),
      lat: base.lat + 0.10 * Math.sin(i * 1.3 + tick * 0.02) * ((i % 89) / 89)}}));
    const frame = JSON.stringify({type: "delta", epoch: s.stream.epoch, seq: ++seq, items});
    const t0 = performance.now();
    s.stream.seq = seq - 1;
    s.stream._onMessage(frame);
    s.map.flush();
    applyMs.push(performance.now() - t0);
  }, 1000 / hz);
  const busy = await frames();
  clearInterval(timer);
  applyMs.sort((a, b) => a - b);
  return {idle, busy, ticks: tick, setData: s.map.stats.setData.responders, responders: s.map.responders.size,
          apply_p50_ms: applyMs[Math.floor(applyMs.length / 2)], apply_p95_ms: applyMs[Math.floor(applyMs.length * 0.95)]};
}"""


def bundle() -> dict[str, float]:
    js = list((DIST / "assets").glob("*.js"))
    css = list((DIST / "assets").glob("*.css"))
    atlas = list((DIST / "assets").glob("*.json"))
    size = lambda ps: sum(p.stat().st_size for p in ps) / 1024  # noqa: E731
    gz = lambda ps: sum(len(gzip.compress(p.read_bytes(), 6)) for p in ps) / 1024  # noqa: E731
    maplibre = [p for p in js if p.name.startswith("maplibre")]
    h3 = [p for p in js if p.name.startswith("h3")]
    own = [p for p in js if p not in maplibre and p not in h3]
    return {
        "js_kb": size(js),
        "js_gz_kb": gz(js),
        "maplibre_kb": size(maplibre),
        "h3_lazy_kb": size(h3),
        "app_js_kb": size(own),
        "app_js_gz_kb": gz(own),
        "css_kb": size(css),
        "basemap_json_kb": size(atlas),
        "basemap_json_gz_kb": gz(atlas),
    }


async def run(seconds: float) -> None:
    from playwright.async_api import async_playwright

    if not (DIST / "index.html").exists():
        subprocess.run(["npm", "ci"], cwd=WEB, check=True)
        subprocess.run(["npm", "run", "build"], cwd=WEB, check=True)
    b = bundle()
    print(f"# sitrep web bench {stamp()}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print("bundle: " + ", ".join(f"{k}={v:.0f}" for k, v in b.items()))
    with bench_stack("web", workers=1, SITREP_STATIC_DIR=str(DIST)) as (server, _env):
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=shutil.which("chromium"), args=ARGS)
            loads, readies = [], []
            for _ in range(3):
                ctx = await browser.new_context(viewport={"width": 1280, "height": 800}, base_url=server.url)
                page = await ctx.new_page()
                await page.goto("/")
                await page.get_by_label("Username").wait_for()
                loads.append(
                    await page.evaluate(
                        "() => { const n = performance.getEntriesByType('navigation')[0]; "
                        "return Math.max(n.loadEventEnd, performance.now() - (performance.now() - n.loadEventEnd)); }"
                    )
                )
                await page.get_by_label("Username").fill("coord")
                await page.get_by_label("Password").fill("sitrep-demo")
                t0 = await page.evaluate("() => performance.now()")
                await page.get_by_role("button", name="Log in").click()
                await page.wait_for_function(
                    "() => window.sitrep.initialLoadedAt && window.sitrep.map && window.sitrep.map.loaded "
                    "&& window.sitrep.map.basemapReady && window.sitrep.map.stats.setData.responders > 0",
                    timeout=60000,
                )
                await page.evaluate("() => new Promise(requestAnimationFrame)")
                readies.append(await page.evaluate("() => performance.now()") - t0)
                if len(loads) < 3:
                    await ctx.close()
            print(
                f"first load (login page, cold cache): median {statistics.median(loads):.0f} ms "
                f"(runs {', '.join(f'{x:.0f}' for x in loads)})"
            )
            print(
                f"login -> map with 240 responders, basemap and incidents drawn: median "
                f"{statistics.median(readies):.0f} ms (runs {', '.join(f'{x:.0f}' for x in readies)})"
            )
            for zoom in (11, 14):
                await page.evaluate(f"() => window.sitrep.map.map.jumpTo({{zoom: {zoom}}})")
                r = await page.evaluate(FPS_JS, [seconds, 5000, 10])
                print(
                    f"5,000 moving responders at 10 ticks/s, zoom {zoom}: {r['busy']:.1f} frames/s "
                    f"(idle ceiling {r['idle']:.1f} frames/s, ratio {r['busy'] / r['idle']:.2f}); "
                    f"ticks {r['ticks']}, apply p50 {r['apply_p50_ms']:.1f} ms p95 {r['apply_p95_ms']:.1f} ms "
                    f"(parse + merge + one setData per tick; {r['responders']} responders on the map)"
                )
            await browser.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=6.0)
    asyncio.run(run(ap.parse_args().seconds))


if __name__ == "__main__":
    main()
