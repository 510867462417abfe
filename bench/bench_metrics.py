"""``/metrics`` (issue 15): scrape cost with 50 routes and 2,000 listeners, and what scraping
every second does to the gateway's p99.

    .venv/bin/python bench/bench_metrics.py [--rounds 6] [--duration 5] [--scrapes 200]

Setup: bench/fixture_sockets.py holds 2,000 loopback listeners (4 processes); a real daemon
(``homeport up`` in the foreground, temp state dir, free port, pinned to core 0) gets 50
routes to one nginx backend (pinned to core 1), and every route sees 200, 404 and 502
answers so each has three status classes and a histogram.

1. **Scrape server time**: ``--scrapes`` GETs of ``/metrics`` over one keep-alive connection;
   the daemon reports the render time in ``Server-Timing`` (the handler's work: request
   counters, route/service/audit reads, the cached listener counts). Median, p99 and max are
   printed with the client's round trip beside them, and the first (cold: the inventory
   read is awaited) scrape on its own. Target: <= 20 ms.
2. **p99 with and without scraping**: wrk ``-t1 -c50`` through the gateway to one route,
   ``--rounds`` rounds, each an "off" and an "on" run interleaved (order alternating), "on"
   with a thread scraping ``/metrics`` every second. Reported: median p99 and p99.9 (a wrk
   Lua ``done`` hook) of each and their ratio. Target: on/off p99 <= 1.05.

3. ``--instructions``: the same scrape and the per-record fold counted in instructions
   under callgrind (deterministic, so the box's load does not matter): a driver renders the
   exposition of 50 routes, 2,000 listener rows and 50 services, or folds batches of 1,000
   access records, N1 and N2 times; the difference over N2 - N1 is the cost of one. Compare
   with the ~109,000 instructions of one proxied small GET (bench/README.md, issue 16).

Everything listens on loopback; every process started here is stopped by PID.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "src"))

from bench_gateway import free_port, machine, wait_port  # noqa: E402
from fixture_sockets import socket_fixture  # noqa: E402

ROUTES = 50
WRK_LUA = """
done = function(summary, latency, requests)
  io.write(string.format("P99US %d\\nP999US %d\\nREQS %d\\n",
    latency:percentile(99), latency:percentile(99.9), summary.requests))
end
"""
NGINX = """
worker_processes 1; daemon off; pid {d}/nginx.pid; error_log {d}/nginx.err;
events {{ worker_connections 4096; }}
http {{ access_log off; keepalive_requests 1000000;
  server {{ listen 127.0.0.1:{port};
    location = /small {{ default_type text/plain; return 200 "hello, world\\n"; }}
    location = /bad {{ return 502; }} }} }}
"""


class Child:
    def __init__(self, argv: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log.open("wb")
        self.p = subprocess.Popen(
            argv, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, **(env or {})},
        )  # fmt: skip

    def stop(self) -> None:
        if self.p.poll() is None:
            os.killpg(self.p.pid, signal.SIGTERM)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait()
        self.log.close()


def control(port: int, token: str, method: str, path: str, body: dict[str, object]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Host": f"homeport.localhost:{port}", "Authorization": f"Bearer {token}",
               "Content-Type": "application/json"}  # fmt: skip
    conn.request(method, path, json.dumps(body), headers)
    resp = conn.getresponse()
    resp.read()
    conn.close()
    if resp.status >= 300:
        raise RuntimeError(f"{method} {path}: {resp.status}")


def traffic(port: int) -> None:
    """Each route answers 200, 404 (no such path at nginx? no: an unknown Host) and 502."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for i in range(ROUTES):
        for path in ("/small", "/bad", "/missing"):
            conn.request("GET", path, headers={"Host": f"r{i}.localhost:{port}"})
            conn.getresponse().read()
    conn.close()


def scrape_times(port: int, n: int) -> tuple[list[float], list[float], list[float], int]:
    """(server wall ms, server CPU ms, client round trip ms) of ``n`` scrapes, and the size."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    server, cpu, client, size = [], [], [], 0
    for _ in range(n):
        t0 = time.perf_counter()
        conn.request("GET", "/metrics", headers={"Host": f"127.0.0.1:{port}"})
        resp = conn.getresponse()
        body = resp.read()
        client.append((time.perf_counter() - t0) * 1000)
        timing = resp.getheader("server-timing") or ""
        m = re.search(r"render;dur=([\d.]+), cpu;dur=([\d.]+)", timing)
        if resp.status != 200 or m is None:
            raise RuntimeError(f"/metrics answered {resp.status} ({timing!r})")
        server.append(float(m.group(1)))
        cpu.append(float(m.group(2)))
        size = len(body)
    conn.close()
    return server, cpu, client, size


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q / 100 * len(s)))]


def wrk(port: int, duration: int, lua: Path) -> tuple[float, float, int]:
    argv = ["taskset", "-c", "1", "wrk", "-t1", "-c50", f"-d{duration}s", "-s", str(lua),
            "-H", "Host: r0.localhost", f"http://127.0.0.1:{port}/small"]  # fmt: skip
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 30).stdout
    p99 = re.search(r"P99US (\d+)", out)
    p999 = re.search(r"P999US (\d+)", out)
    reqs = re.search(r"REQS (\d+)", out)
    if not (p99 and p999 and reqs):
        raise RuntimeError(f"wrk failed: {out[-500:]}")
    return int(p99.group(1)) / 1000, int(p999.group(1)) / 1000, int(reqs.group(1))


class Scraper(threading.Thread):
    """GET /metrics once a second until stopped (bounded by the run's duration)."""

    def __init__(self, port: int, limit: float) -> None:
        super().__init__(daemon=True)
        self.port, self.limit, self.count = port, limit, 0
        self.stop = threading.Event()

    def run(self) -> None:
        end = time.monotonic() + self.limit
        while not self.stop.is_set() and time.monotonic() < end:
            scrape_times(self.port, 1)
            self.count += 1
            self.stop.wait(1.0)


def cpu_s(pid: int) -> float:
    """utime + stime of ``pid`` (and its threads), seconds: the load-independent cost."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def driver(kind: str, n: int) -> None:
    """What callgrind runs: ``n`` renders or ``n`` folds of a 1,000-record batch."""
    from homeport.gateway.contract import AccessRecord
    from homeport.metrics import Metrics, Sources, count_rows
    from homeport.web.sampler import ListenerRow

    rows = [ListenerRow("tcp", 4, "127.0.0.1", 20000 + i, i, "loopback") for i in range(2000)]
    m = Metrics(
        Sources(
            open_connections=lambda: 50,
            routes=lambda: ROUTES,
            dropped=lambda: 0,
            services=lambda: [(f"s{i}", "running", 1.0) for i in range(ROUTES)],
            audit=lambda: None,
        ),
        lambda: count_rows(rows),
    )

    def record(i: int) -> AccessRecord:
        status = (200, 304, 404, 502)[i % 4]
        return AccessRecord(1.0, "127.0.0.1", 40000, "h", "GET", "/", status, 0, 13,
                            0.4 + i % 7, f"r{i % ROUTES}.localhost", None)  # fmt: skip

    batch = [record(i) for i in range(1000)]
    m.requests.observe(batch)
    for _ in range(n):
        if kind == "render":
            m.render()
        else:
            m.requests.observe(batch)


def instructions(kind: str, n: int) -> int:
    argv = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
            sys.executable, __file__, "--driver", kind, str(n)]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=True)
    m = re.search(r"Collected : (\d+)", done.stderr)
    if m is None:
        raise RuntimeError(done.stderr[-2000:])
    return int(m.group(1))


def count_instructions() -> int:
    if shutil.which("valgrind") is None:
        print("valgrind is not installed")
        return 3
    print(f"# bench_metrics --instructions: {machine()}; load {load()}")
    for kind, n1, n2, per in (("render", 5, 25, 1), ("fold", 5, 25, 1000)):
        a, b = instructions(kind, n1), instructions(kind, n2)
        one = (b - a) / (n2 - n1) / per
        unit = "scrape" if kind == "render" else "access record"
        print(f"{kind}: {one:,.0f} instructions per {unit} ({n1} vs {n2} runs)")
    return 0


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--scrapes", type=int, default=200)
    ap.add_argument("--listeners", type=int, default=2000)
    ap.add_argument("--instructions", action="store_true", help="count with callgrind")
    ap.add_argument("--driver", nargs=2, metavar=("KIND", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.driver:
        driver(args.driver[0], int(args.driver[1]))
        return 0
    if args.instructions:
        return count_instructions()
    for tool in ("nginx", "wrk", "taskset"):
        if shutil.which(tool) is None:
            print(f"{tool} is not installed")
            return 3
    exe = Path(sys.executable).with_name("homeport")
    print(f"# bench_metrics: {machine()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        d = Path(tmp)
        fx = stack.enter_context(socket_fixture(listeners=args.listeners, connections=0))
        print(f"# fixture: {len(fx.listeners)} listeners in {len(fx.pids)} processes")
        backend = free_port()
        (d / "nginx.conf").write_text(NGINX.format(d=d, port=backend))
        ng = Child(["taskset", "-c", "1", "nginx", "-c", str(d / "nginx.conf"), "-p", str(d)],
                   d / "nginx.log")  # fmt: skip
        stack.callback(ng.stop)
        port = free_port()
        env = {"HOMEPORT_STATE_DIR": str(d / "state"), "HOMEPORT_PORT": str(port)}
        gw = Child(["taskset", "-c", "0", str(exe), "up"], d / "daemon.log", env)
        stack.callback(gw.stop)
        wait_port(backend)
        try:
            wait_port(port, 60)
        except RuntimeError:
            print((d / "daemon.log").read_text()[-3000:])
            raise
        token = (d / "state" / "token").read_text().strip()
        for i in range(ROUTES):
            target = f"http://127.0.0.1:{backend}"
            control(port, token, "POST", "/api/routes", {"name": f"r{i}", "target": target})
        traffic(port)
        time.sleep(0.5)  # the access writer folds batches every 0.2 s: let it count them
        cold, cold_cpu, cold_client, _ = scrape_times(port, 1)
        server, cpu_ms, client, size = scrape_times(port, args.scrapes)
        print(f"\n## /metrics scrape: {ROUTES} routes, {len(fx.listeners)} listeners, "
              f"{size} bytes (load {load()})")  # fmt: skip
        print(f"first scrape: server {cold[0]:.2f} ms (CPU {cold_cpu[0]:.2f} ms), "
              f"round trip {cold_client[0]:.2f} ms")  # fmt: skip
        rows = (("server wall", server), ("server CPU", cpu_ms), ("round trip (client)", client))
        for name, xs in rows:
            print(f"{name:24} median {statistics.median(xs):6.2f} ms  p99 {pct(xs, 99):6.2f} ms"
                  f"  max {max(xs):6.2f} ms")  # fmt: skip
        lua = d / "p999.lua"
        lua.write_text(WRK_LUA)
        wrk(port, 1, lua)  # warm-up
        off: list[tuple[float, float, int]] = []
        on: list[tuple[float, float, int]] = []
        scrapes = 0
        cpu: dict[str, list[float]] = {"off": [], "on": []}  # daemon CPU µs per request
        for r in range(args.rounds):
            for mode in ("off", "on") if r % 2 == 0 else ("on", "off"):
                scraper = Scraper(port, args.duration + 5) if mode == "on" else None
                if scraper is not None:
                    scraper.start()
                c0 = cpu_s(gw.p.pid)
                result = wrk(port, args.duration, lua)
                cpu[mode].append((cpu_s(gw.p.pid) - c0) / max(1, result[2]) * 1e6)
                if scraper is not None:
                    scraper.stop.set()
                    scraper.join(10)
                    scrapes += scraper.count
                (on if mode == "on" else off).append(result)
            print(f"# round {r + 1}: off p99 {off[-1][0]:.2f} ms, on p99 {on[-1][0]:.2f} ms "
                  f"(load {load()})")  # fmt: skip
        dead = fx.dead()
        if dead:
            print(f"# fixture children died: {dead}; numbers void")
            return 1
        p99_off = statistics.median(x[0] for x in off)
        p99_on = statistics.median(x[0] for x in on)
        p999_off = statistics.median(x[1] for x in off)
        p999_on = statistics.median(x[1] for x in on)
        rps_off = statistics.median(x[2] for x in off) / args.duration
        rps_on = statistics.median(x[2] for x in on) / args.duration
        print(f"\n## gateway p99 with /metrics scraped every second vs not "
              f"(wrk -t1 -c50 {args.duration}s, {args.rounds} interleaved rounds, "
              f"{scrapes} scrapes; load {load()})")  # fmt: skip
        cpu_off, cpu_on = statistics.median(cpu["off"]), statistics.median(cpu["on"])
        print("| scraping | p99 ms | p99.9 ms | req/s | daemon CPU µs/request |")
        print("|---|---|---|---|---|")
        print(f"| off | {p99_off:.2f} | {p999_off:.2f} | {rps_off:,.0f} | {cpu_off:.1f} |")
        print(f"| every 1 s | {p99_on:.2f} | {p999_on:.2f} | {rps_on:,.0f} | {cpu_on:.1f} |")
        print(f"| ratio on/off | {p99_on / p99_off:.3f} | {p999_on / p999_off:.3f} | "
              f"{rps_on / rps_off:.3f} | {cpu_on / cpu_off:.3f} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
