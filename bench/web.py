"""Browser bench: JS bundle size, first load on loopback, and frames/s with 5,000 moving responders.

Runs a throwaway stack (database + Redis + `sitrep serve` serving web/dist) and Debian's headless Chromium
(software WebGL: SwiftShader). The 5,000 responders are fed as compact stream `delta` frames (the encoding the
command center subscribes with; the frames are encoded before measuring, as the server would) through the page's
own stream client (`_onMessage`: JSON parse, decode, merge) and the map's flush, 10 ticks/s, every responder moving on
every tick. Each flush rewrites the responder overlay's one typed array (the one source update per tick) and
redraws that canvas (markers from zoom 13 in, clusters below) without re-tiling a source or repainting the WebGL
map.
The ceiling is the same page's frame rate with the map idle, measured in the same run.

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
  // The server's share, done before measuring: one compact delta frame per tick, as /v1/stream sends them to
  // the command center (which subscribes with encoding "compact"); the first carries every responder's meta.
  const ids = Array.from({length: n}, (_, i) => `bench-${i}`);
  const base = s.map.map.getCenter();
  const total = Math.ceil(seconds * hz * 1.5) + 5;
  window.__benchFixMs = window.__benchFixMs || Date.now() - 120000;
  const sent = [];
  for (let k = 1; k <= total; k++) {
    const tick = (window.__benchTick = (window.__benchTick || 0) + 1);
    const fix = (window.__benchFixMs += 100);
    // positions name responders by handle (here i + 1); the first frame's metas map each handle to its id
    const positions = ids.map((id, i) => [i + 1,
      +(base.lng + 0.15 * Math.cos(i + tick * 0.02) * ((i % 97) / 97)).toFixed(6),
      +(base.lat + 0.10 * Math.sin(i * 1.3 + tick * 0.02) * ((i % 89) / 89)).toFixed(6),
      fix, 1.5, 90, 8, 0, Date.now() - fix]);
    const meta = k === 1 ? ids.map((id, i) => [id, `B${i}`, i % 7 ? "available" : "busy", null, 80, i + 1]) : [];
    sent.push(JSON.stringify({type: "delta", epoch: s.stream.epoch, seq: 1e9 + tick, encoding: "compact",
                              items: [], meta, positions}));
  }
  let k = 0; const applyMs = [];
  const unknown0 = s.stream.stats.unknownHandles || 0;
  const setData0 = s.map.stats.setData.responders || 0, uploads0 = s.map.markers?.stats.updates ?? 0;
  const renders0 = s.map.markers?.stats.draws ?? 0;
  const timer = setInterval(() => {
    if (k >= sent.length) return;
    const t0 = performance.now();
    s.stream._onMessage(sent[k++]);  // JSON parse, decode, merge: the page's own stream client
    s.map.flush();                   // one marker array update
    applyMs.push(performance.now() - t0);
  }, 1000 / hz);
  const busy = await frames();
  clearInterval(timer);
  applyMs.sort((a, b) => a - b);
  return {idle, busy, ticks: k, responders: s.map.responders.size, frame_kb: sent[1].length / 1024,
          unknown_handles: (s.stream.stats.unknownHandles || 0) - unknown0,
          setData: (s.map.stats.setData.responders || 0) - setData0, uploads: (s.map.markers?.stats.updates ?? 0) - uploads0,
          renders: (s.map.markers?.stats.draws ?? 0) - renders0,
          apply_p50_ms: applyMs[Math.floor(applyMs.length / 2)], apply_p95_ms: applyMs[Math.floor(applyMs.length * 0.95)]};
}"""


def bundle(dist: Path) -> dict[str, float]:
    js = list((dist / "assets").glob("*.js"))
    css = list((dist / "assets").glob("*.css"))
    atlas = list((dist / "assets").glob("*.json"))
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


async def run(seconds: float, dist: Path) -> None:
    from playwright.async_api import async_playwright

    if dist == DIST and not (DIST / "index.html").exists():
        subprocess.run(["npm", "ci"], cwd=WEB, check=True)
        subprocess.run(["npm", "run", "build"], cwd=WEB, check=True)
    b = bundle(dist)
    print(f"# sitrep web bench {stamp()}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print("bundle: " + ", ".join(f"{k}={v:.0f}" for k, v in b.items()))
    with bench_stack("web", workers=1, SITREP_STATIC_DIR=str(dist)) as (server, _env):
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
                    f"(parse + merge + buffer fill per tick of {r['frame_kb']:.0f} KiB; {r['responders']} responders on the map; "
                    f"marker array updates {r['uploads']}, overlay draws {r['renders']})"
                )
                # every position must have reached the map (a handle without its meta is skipped by the client)
                assert r["unknown_handles"] == 0, f"{r['unknown_handles']} positions with an unknown handle"
            await browser.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--dist", type=Path, default=DIST, help="built web files to serve (e.g. an older build to compare)")
    args = ap.parse_args()
    asyncio.run(run(args.seconds, args.dist.resolve()))


if __name__ == "__main__":
    main()
