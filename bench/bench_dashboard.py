"""Dashboard with 2,000 listeners: first full render and per-update cost, in Chromium.

Runs alone: ``.venv/bin/python bench/bench_dashboard.py [--runs 5] [--listeners 2000]``.

Holds ``--listeners`` loopback listeners (bench/fixture_sockets.py), starts a real daemon
(``python -m homeport up``) on a free port with a private state dir, and drives Debian's
Chromium headless with Playwright. Per run (a fresh page load):

- **first render**: ms from navigation start until the listeners table holds every row
  (``window.__homeport.firstRender``), and the time spent building it (``renderMs``, DOM
  and layout);
- **per-update cost**: ms to apply one live diff (one listener added, one removed) with a
  forced layout, the way the stream delivers them; median of ``--updates`` diffs fed in-page;
- **the peer, in the same page and run, interleaved**: the naive dashboard pattern, a full
  re-render of every row (``innerHTML`` of 2,000 rows, then layout) per update.

Reports the medians over runs and the ratio naive/keyed. Every process it starts is stopped by
process group on the way out.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import select
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fixture_sockets import socket_fixture

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

#: The naive peer: rebuild every row from strings, as a template re-render would (same
#: markup and CSS as the page's rows, so only the update strategy differs).
NAIVE = """(n) => {
  const body = document.getElementById('l-body');
  const rows = Array.from(body.children).map((tr) =>
    Array.from(tr.children).map((c) => [c.className, c.textContent]));
  const esc = (s) => s.replace(/[&<>]/g, (c) => ({'&': '&amp;', '<': '&lt;', '>': '&gt;'}[c]));
  const times = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const cells = (r) => r.map(([k, c]) => `<div role="cell" class="${k}">${esc(c)}</div>`);
    const html = rows.map((r) => '<div role="row" class="lrow" tabindex="0">'
      + cells(r).join('') + '</div>').join('');
    body.innerHTML = html;
    void body.offsetHeight;
    times.push(performance.now() - t0);
  }
  return times;
}"""

#: Keyed updates through the page's own handler: add one listener, remove another.
KEYED = """(n) => {
  const hp = window.__homeport;
  hp.measureLayout = true;
  hp.updates.length = 0;
  for (let i = 0; i < n; i++) {
    const port = 20000 + i;
    const row = {key: `tcp/127.0.0.9/${port}/${i}`, proto: 'tcp', family: 4, address: '127.0.0.9',
      port, exposure: 'loopback', pids: [1], process: 'bench', user: 'root', command: 'bench',
      started: Date.now() / 1000, owner_status: 'known', owner_hint: null, route: null, url: null};
    const removed = i ? [`tcp/127.0.0.9/${port - 1}/${i - 1}`] : [];
    hp.apply('listeners', {added: [row], removed, changed: []});
  }
  return hp.updates.slice();
}"""


def machine() -> dict[str, str]:
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": str(os.cpu_count()),
        "kernel": platform.release(),
        "cpu": cpu,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def free_port() -> int:
    from homeport.ports import free_port as pick

    return pick()


def start_daemon(port: int, state: Path) -> subprocess.Popen[bytes]:
    r, w = os.pipe()
    proc = subprocess.Popen(
        [sys.executable, "-m", "homeport", "up", "--port", str(port), "--ready-fd", str(w)],
        pass_fds=(w,),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, "HOMEPORT_STATE_DIR": str(state)},
    )
    os.close(w)
    try:
        if not select.select([r], [], [], 30)[0] or not os.read(r, 65536).startswith(b"ready "):
            raise RuntimeError("the daemon did not start")
    finally:
        os.close(r)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def api(port: int, state: Path, method: str, path: str) -> Any:
    token = (state / "token").read_text().strip()
    headers = {"host": f"homeport.localhost:{port}", "authorization": f"Bearer {token}"}
    return httpx.request(method, f"http://127.0.0.1:{port}{path}", headers=headers).json()


def wait_rows(port: int, state: Path, want: int, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        n = len(api(port, state, "GET", "/api/listeners")["listeners"])
        if n >= want:
            return n
        time.sleep(0.2)  # the sampler runs every second; nothing pushes "sampled" to us
    raise RuntimeError(f"the daemon saw fewer than {want} listeners")


def one_run(ctx: Any, port: int, state: Path, want: int, updates: int) -> dict[str, float]:
    code = api(port, state, "POST", "/api/login-links")["url"].split("token=", 1)[1]
    page = ctx.new_page()
    try:
        page.goto(f"http://127.0.0.1:{port}/login?token={code}")
        page.wait_for_function(
            f"document.querySelectorAll('#l-body > div').length >= {want}", timeout=60_000
        )
        first = page.evaluate("window.__homeport.firstRender")
        build = page.evaluate("window.__homeport.renderMs")
        appear, gone = live_latency(page)  # first: the in-page runs below rewrite the table
        keyed = page.evaluate(KEYED, updates)
        naive = page.evaluate(NAIVE, max(5, updates // 5))
    finally:
        page.close()
    return {
        "first_render_ms": first,
        "build_ms": build,
        "keyed_update_ms": statistics.median(keyed),
        "naive_update_ms": statistics.median(naive),
        "appear_ms": appear,
        "gone_ms": gone,
    }


def live_latency(page: Any) -> tuple[float, float]:
    """ms from ``listen()`` until the page shows the row, and from ``close()`` until it is
    gone: the issue's "appears within 2 s without reload" (1 s sampling, then a push)."""
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", 0))
        s.listen()
        sel = f'#l-body [data-key^="tcp/127.0.0.1/{s.getsockname()[1]}/"]'
        t0 = time.monotonic()
        page.wait_for_function(f"!!document.querySelector('{sel}')", polling=20, timeout=60_000)
        appear = (time.monotonic() - t0) * 1000
    finally:
        s.close()
    t1 = time.monotonic()
    page.wait_for_function(f"!document.querySelector('{sel}')", polling=20, timeout=60_000)
    return appear, (time.monotonic() - t1) * 1000


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--listeners", type=int, default=2000)
    ap.add_argument("--updates", type=int, default=50)
    args = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    results: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp, socket_fixture(args.listeners, 0) as _fx:
        state = Path(tmp) / "state"
        state.mkdir(mode=0o700)
        port = free_port()
        daemon = start_daemon(port, state)
        try:
            seen = wait_rows(port, state, args.listeners)
            with sync_playwright() as p:
                ctx = p.chromium.launch_persistent_context(
                    str(Path(tmp) / "profile"), executable_path=CHROMIUM, headless=True,
                    args=ARGS, viewport={"width": 1280, "height": 800}, bypass_csp=True,
                )  # fmt: skip
                try:
                    for i in range(args.runs):
                        r = one_run(ctx, port, state, args.listeners, args.updates)
                        results.append(r)
                        print(f"run {i + 1}: " + json.dumps({k: round(v, 2) for k, v in r.items()}))
                finally:
                    ctx.close()
        finally:
            stop(daemon)
    med = {k: statistics.median(r[k] for r in results) for k in results[0]}
    print(json.dumps({"machine": machine(), "rows_in_table": seen, "runs": args.runs}, indent=2))
    print(f"first full render (navigation -> {seen} rows): {med['first_render_ms']:.0f} ms")
    print(f"  table build incl. layout:                    {med['build_ms']:.0f} ms")
    print(f"per update, keyed diff (1 added + 1 removed):   {med['keyed_update_ms']:.2f} ms")
    print(f"per update, naive full re-render (peer):        {med['naive_update_ms']:.2f} ms")
    ratio = med["naive_update_ms"] / med["keyed_update_ms"]
    print(f"ratio naive/keyed:                             {ratio:.1f}x")
    worst = max(r["appear_ms"] for r in results)
    print(f"new listener -> row on the page (promise 2 s):  {med['appear_ms']:.0f} ms median,"
          f" {worst:.0f} ms worst")  # fmt: skip
    print(f"closed listener -> row gone:                   {med['gone_ms']:.0f} ms median")
    return 0


if __name__ == "__main__":
    sys.exit(main())
