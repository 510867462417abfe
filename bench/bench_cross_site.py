"""What the default cross-site check costs the gateway, as users run it (issue 16).

    .venv/bin/python bench/bench_cross_site.py [--rounds 5] [--duration 5]

Starts the installed ``homeport up`` (default settings, a private state dir, pinned to core 0)
with two routes to one nginx backend (core 1): ``on.localhost`` with the default rule and
``off.localhost`` with ``--allow-cross-site``. wrk (``-t1 -c50``, core 1) then alternates
between them, round by round, for two requests:

- ``get``: the small keep-alive GET of the gateway benchmark. A GET never needs the check; what
  it pays is the one set lookup that decides so.
- ``post``: a keep-alive POST carrying a same-site ``Origin`` (a project's frontend calling its
  API), which the rule must read and pass. nginx answers 405 to a POST on a static file;
  every answer still crosses the gateway.

Prints req/s and p99 per setting (medians over the rounds) and the on/off ratio. The target:
the check costs <= 2% of small keep-alive req/s.

``--cpu`` measures the same two requests in-process instead (labelled as such): one
``ClientConnection`` and a pooled upstream on fake transports, as
``bench_gateway_hotpath.py`` does, CPU microseconds per request (process time), on and off
interleaved. On a shared machine this is the steadier of the two figures.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import select
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_dashboard import stop
from bench_gateway import free_port, wait_port

ROOT = Path(__file__).resolve().parent.parent
HOMEPORT = ROOT / ".venv" / "bin" / "homeport"
NGINX = """
worker_processes 1; daemon off; error_log {d}/nginx-error.log; pid {d}/nginx.pid;
events {{ worker_connections 4096; }}
http {{ access_log off; keepalive_requests 1000000;
  server {{ listen 127.0.0.1:{port} backlog=4096; root {d}/www;
    location = /small {{ return 200 "hello, world\\n"; }} }} }}
"""
POST_LUA = """wrk.method = "POST"
wrk.body = "{{}}"
wrk.headers["Content-Type"] = "text/plain"
wrk.headers["Origin"] = "http://web.{site}:{port}"
"""


def start_daemon(state: Path, port: int) -> subprocess.Popen[bytes]:
    r, w = os.pipe()
    env = {**os.environ, "HOMEPORT_STATE_DIR": str(state)}
    argv = ["taskset", "-c", "0", str(HOMEPORT), "up", "--port", str(port), "--ready-fd", str(w)]
    proc = subprocess.Popen(
        argv, pass_fds=(w,), env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    os.close(w)
    if not select.select([r], [], [], 30)[0] or not os.read(r, 4096).startswith(b"ready "):
        raise RuntimeError("homeport up did not get ready")
    os.close(r)
    return proc


def add_route(state: Path, port: int, name: str, target: int, **extra: object) -> None:
    import httpx

    token = (state / "token").read_text().strip()
    r = httpx.post(
        f"http://127.0.0.1:{port}/api/routes",
        headers={"host": f"homeport.localhost:{port}", "authorization": f"Bearer {token}"},
        json={"name": name, "target": f"127.0.0.1:{target}", **extra},
    )
    r.raise_for_status()


def wrk(port: int, host: str, duration: int, script: Path | None) -> tuple[float, float]:
    argv = ["taskset", "-c", "1", "wrk", "-t1", "-c50", f"-d{duration}s", "--latency"]
    if script is not None:
        argv += ["-s", str(script)]
    argv += ["-H", f"Host: {host}:{port}", f"http://127.0.0.1:{port}/small"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 30).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    if rps is None or p99 is None:
        raise RuntimeError(f"wrk failed: {out}")
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    return float(rps.group(1)), float(p99.group(1)) * scale


GET = b"GET /small HTTP/1.1\r\nHost: {host}\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n"
POST = (
    b"POST /small HTTP/1.1\r\nHost: {host}\r\nContent-Type: text/plain\r\n"
    b"Origin: http://web.shop.localhost:62893\r\nContent-Length: 2\r\n\r\n{}"
)


def cpu_per_request(request: bytes, allow_cross_site: bool, n: int) -> float:
    """In-process CPU µs per request through one connection (fake transports)."""
    import asyncio

    sys.path.insert(0, str(ROOT / "bench"))
    from bench_gateway_hotpath import RESPONSE, FakeTransport
    from homeport.gateway.config import ProxyConfig
    from homeport.gateway.contract import AccessRecord, Route, RouteTable
    from homeport.gateway.proxy import ClientConnection
    from homeport.gateway.server import ProxyServer
    from homeport.gateway.upstream import Upstream

    loop = asyncio.new_event_loop()
    records: list[AccessRecord] = []
    server = ProxyServer(ProxyConfig(), access_sink=records.append)
    server.loop = loop
    server.bound = [("127.0.0.1", 62893)]
    route = Route("api.shop.localhost", "http://127.0.0.1:3000", allow_cross_site=allow_cross_site)
    server.set_routes(RouteTable((route,)))
    up = Upstream(server.pool, "127.0.0.1:3000")
    ut, ct = FakeTransport(), FakeTransport()
    up.connection_made(ut)  # type: ignore[arg-type]
    server.pool.give(up)
    conn = ClientConnection(server)
    conn.connection_made(ct)  # type: ignore[arg-type]
    data = request.replace(b"{host}", b"api.shop.localhost:62893")
    t0 = time.process_time()
    for i in range(n):
        conn.data_received(data)
        up.data_received(RESPONSE)
        if i % 1000 == 0:
            ut.out.clear()
            ct.out.clear()
            records.clear()
    spent = time.process_time() - t0
    if not records or any(r.status != 200 for r in records):
        raise RuntimeError(f"not every request was proxied: {records[-1:]}")
    loop.close()
    return spent / n * 1e6


def cpu_main(rounds: int, n: int) -> None:
    runs: dict[tuple[str, bool], list[float]] = {}
    for rnd in range(rounds):
        for kind, request in (("get", GET), ("post", POST)):
            for allow in (False, True) if rnd % 2 == 0 else (True, False):
                runs.setdefault((kind, allow), []).append(cpu_per_request(request, allow, n))
    print(f"in-process, {n} requests x {rounds} rounds, load {os.getloadavg()[0]:.2f}")
    for kind in ("get", "post"):
        on = statistics.median(runs[(kind, False)])
        off = statistics.median(runs[(kind, True)])
        print(f"{kind:4}  check on {on:6.2f} µs/request | off {off:6.2f} | on/off {on / off:.3f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--cpu", action="store_true", help="in-process CPU per request instead")
    ap.add_argument("--requests", type=int, default=30000, help="with --cpu")
    args = ap.parse_args()
    if args.cpu:
        sys.path.insert(0, str(ROOT / "src"))
        cpu_main(args.rounds, args.requests)
        return 0
    if not HOMEPORT.exists():
        raise SystemExit(f"{HOMEPORT} is missing: run `make .venv/.installed` first")
    with tempfile.TemporaryDirectory(prefix="hp-bench-xsite-") as tmp:
        d = Path(tmp)
        d.chmod(0o755)
        (d / "www").mkdir()
        backend, gw = free_port(), free_port()
        (d / "nginx.conf").write_text(NGINX.format(d=d, port=backend))
        nginx = subprocess.Popen(
            ["taskset", "-c", "1", "nginx", "-c", str(d / "nginx.conf"), "-p", str(d)],
            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        daemon = None
        try:
            wait_port(backend)
            daemon = start_daemon(d / "state", gw)
            add_route(d / "state", gw, "on.shop", backend)
            add_route(d / "state", gw, "off.shop", backend, allow_cross_site=True)
            script = d / "post.lua"
            script.write_text(POST_LUA.format(site="shop.localhost", port=gw))
            results: dict[tuple[str, str], list[tuple[float, float]]] = {}
            for rnd in range(args.rounds):
                for kind, lua in (("get", None), ("post", script)):
                    for setting in ("on", "off") if rnd % 2 == 0 else ("off", "on"):
                        host = f"{setting}.shop.localhost"
                        results.setdefault((kind, setting), []).append(
                            wrk(gw, host, args.duration, lua)
                        )
            report(results, args)
        finally:
            if daemon is not None:
                stop(daemon)
            stop(nginx)
    return 0


def report(results: dict[tuple[str, str], list[tuple[float, float]]], args: object) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, nproc {os.cpu_count()}, "
          f"load {os.getloadavg()[0]:.2f}, {vars(args)}")  # fmt: skip
    print(json.dumps({f"{k}-{s}": v for (k, s), v in results.items()}))
    for kind in ("get", "post"):
        rps = {s: statistics.median(r for r, _ in results[(kind, s)]) for s in ("on", "off")}
        p99 = {s: statistics.median(p for _, p in results[(kind, s)]) for s in ("on", "off")}
        print(
            f"{kind:4}  check on {rps['on']:9,.0f} req/s p99 {p99['on']:6.2f} ms | "
            f"off {rps['off']:9,.0f} req/s p99 {p99['off']:6.2f} ms | "
            f"on/off {rps['on'] / rps['off']:.3f}"
        )


if __name__ == "__main__":
    sys.exit(main())
