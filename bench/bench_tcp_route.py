"""TCP route throughput and added latency: homeport against socat and HAProxy, same run.

    .venv/bin/python bench/bench_tcp_route.py [--rounds 5] [--mib 512] [--pings 5000]

One target process (pinned to core 1) accepts connections: a ``bulk`` connection is read
to its end and answered with one byte (the throughput test: the client sends ``--mib``
MiB in 1 MiB writes and stops the clock at that byte); a ``ping`` connection echoes every
64-byte message (the latency test: ``--pings`` round trips one after the other). Each
proxy runs pinned to core 0 and forwards raw TCP to the target:

* homeport: the real daemon (``homeport up``, access log on) with
  ``route add bench PORT --tcp``, listening on the route's leased 127.0.x.y;
* socat: ``TCP-LISTEN:P,fork,reuseaddr TCP:127.0.0.1:T`` (a process per connection);
* HAProxy: ``mode tcp``, ``nbthread 1`` (homeport's gateway is one thread too);
* homeport-bare: the same ``gateway/tcp.py`` tunnel alone in a uvloop process (no
  dashboard sampler, no access-log writer beside it): what the daemon's other threads cost;
* direct: the client straight at the target (no proxy), the baseline of added latency.

Rounds are interleaved (every path once per round, the order rotating) and medians of the
rounds are reported: MiB/s, round-trip p50/p99/p99.9, the latency each proxy adds over
direct at p50/p99, and homeport's ratios to HAProxy (targets: >= 0.8x its MiB/s, p99 added
latency <= 2x its). Peers that are not installed are skipped and said so.
"""

from __future__ import annotations

import argparse
import datetime
import multiprocessing as mp
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_ports import machine

MSG = 64


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(host: str, port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex((host, port)) == 0:
                return
        time.sleep(0.02)  # bounded: nothing signals a peer's readiness to us
    raise RuntimeError(f"nothing listens on {host}:{port} after {timeout} s")


# -- the target ---------------------------------------------------------------------------


def _handle(conn: socket.socket) -> None:
    kind = conn.recv(1)
    if kind == b"b":  # bulk: read to the end, answer one byte
        buf = bytearray(1 << 20)
        while conn.recv_into(buf):
            pass
        conn.sendall(b"k")
    elif kind == b"p":  # ping: echo fixed-size messages
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while data := conn.recv(MSG):
            conn.sendall(data)
    conn.close()


def target(port: int) -> None:
    os.sched_setaffinity(0, {1 % (os.cpu_count() or 1)})
    srv = socket.create_server(("127.0.0.1", port), backlog=128)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=_handle, args=(conn,), daemon=True).start()


# -- the clients --------------------------------------------------------------------------


def bulk(host: str, port: int, mib: int) -> float:
    """MiB/s for ``mib`` MiB sent through (host, port)."""
    chunk = b"\x5a" * (1 << 20)
    with socket.create_connection((host, port), timeout=60) as c:
        c.sendall(b"b")
        t0 = time.perf_counter()
        for _ in range(mib):
            c.sendall(chunk)
        c.shutdown(socket.SHUT_WR)
        if c.recv(1) != b"k":
            raise RuntimeError("the target did not confirm the transfer")
        return mib / (time.perf_counter() - t0)


def pings(host: str, port: int, n: int) -> list[float]:
    """Round-trip times in microseconds of ``n`` 64-byte messages, one after another."""
    msg = b"\x01" * MSG
    out = []
    with socket.create_connection((host, port), timeout=30) as c:
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.sendall(b"p")
        for _ in range(n + 100):
            t0 = time.perf_counter()
            c.sendall(msg)
            got = 0
            while got < MSG:
                got += len(c.recv(MSG - got))
            out.append((time.perf_counter() - t0) * 1e6)
    return out[100:]  # the first round trips warm caches and the proxy's buffers


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(len(s) * p))]


# -- the proxies --------------------------------------------------------------------------


def pinned(argv: list[str]) -> list[str]:
    return ["taskset", "-c", "0", *argv] if shutil.which("taskset") else argv


def start_homeport(d: Path, tport: int) -> tuple[str, int, int]:
    os.environ["HOMEPORT_STATE_DIR"] = str(d / "state")  # the daemon inherits these
    os.environ["HOMEPORT_PORT"] = str(free_port())
    os.environ["HOMEPORT_HOSTS_FILE"] = os.devnull
    from homeport.daemon.client import Client
    from homeport.daemon.config import DaemonConfig
    from homeport.daemon.process import start_background

    config = DaemonConfig.build()
    pid = int(start_background(config)["pid"])
    if shutil.which("taskset"):
        subprocess.run(["taskset", "-pc", "0", str(pid)], capture_output=True, check=False)
    data = Client.for_config(config).call(
        "POST", "/api/routes", {"name": "bench", "target": str(tport), "tcp": True}
    )
    host, _, port = str(data["listen"]).rpartition(":")
    return host, int(port), pid


def bare(tport: int, addr: str) -> None:
    """``--bare``: TcpRoutes alone, on a fixed address, on uvloop when installed."""
    import asyncio

    from homeport.gateway.contract import Route, RouteTable
    from homeport.gateway.server import loop_factory
    from homeport.gateway.tcp import TcpRoutes

    async def main() -> None:
        routes = TcpRoutes(lambda name, p: addr, lambda a: None, None)
        routes.set_routes(RouteTable((Route("bare.localhost", f"tcp://127.0.0.1:{tport}"),)))
        await asyncio.Event().wait()

    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(main())


BARE_ADDR = "127.0.250.250"


def start_peers(
    d: Path, tport: int, procs: list[subprocess.Popen[bytes]]
) -> tuple[dict[str, tuple[str, int]], list[str]]:
    paths: dict[str, tuple[str, int]] = {}
    skipped = []
    argv = [sys.executable, __file__, "--bare", str(tport)]
    procs.append(subprocess.Popen(pinned(argv)))
    paths["hp-bare"] = (BARE_ADDR, tport)
    if shutil.which("socat"):
        p = free_port()
        argv = ["socat", f"TCP-LISTEN:{p},bind=127.0.0.1,reuseaddr,fork", f"TCP:127.0.0.1:{tport}"]
        procs.append(subprocess.Popen(pinned(argv)))
        paths["socat"] = ("127.0.0.1", p)
    else:
        skipped.append("socat (not installed)")
    haproxy = shutil.which("haproxy") or (
        "/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None
    )
    if haproxy:
        p = free_port()
        cfg = d / "haproxy.cfg"
        cfg.write_text(
            "global\n  nbthread 1\n  maxconn 1000\n"
            "defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n"
            "  timeout server 60s\n"
            f"frontend f\n  bind 127.0.0.1:{p}\n  default_backend b\n"
            f"backend b\n  server t 127.0.0.1:{tport}\n"
        )
        procs.append(subprocess.Popen(pinned([haproxy, "-f", str(cfg), "-db"])))
        paths["haproxy"] = ("127.0.0.1", p)
    else:
        skipped.append("haproxy (not installed)")
    return paths, skipped


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--mib", type=int, default=512)
    ap.add_argument("--pings", type=int, default=5000)
    ap.add_argument("--bare", type=int, metavar="TARGET_PORT", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.bare:
        bare(args.bare, BARE_ADDR)
        return 0
    ctx = mp.get_context("fork")
    tport = free_port()
    tgt = ctx.Process(target=target, args=(tport,), daemon=True)
    tgt.start()
    procs: list[subprocess.Popen[bytes]] = []
    daemon_pid = None
    with tempfile.TemporaryDirectory() as tmp:
        try:
            wait_port("127.0.0.1", tport)
            paths, skipped = start_peers(Path(tmp), tport, procs)
            host, port, daemon_pid = start_homeport(Path(tmp), tport)
            paths = {"homeport": (host, port), **paths, "direct": ("127.0.0.1", tport)}
            for h, p in paths.values():
                wait_port(h, p)
            run_rounds(paths, args, skipped)
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(10)
            if daemon_pid is not None:
                from homeport.daemon.client import Client
                from homeport.daemon.config import DaemonConfig

                Client.for_config(DaemonConfig.build()).call("POST", "/api/shutdown", {})
            tgt.terminate()
            tgt.join(10)
    return 0


def run_rounds(
    paths: dict[str, tuple[str, int]], args: argparse.Namespace, skipped: list[str]
) -> None:
    names = list(paths)
    rate: dict[str, list[float]] = {n: [] for n in names}
    lat: dict[str, list[tuple[float, float, float]]] = {n: [] for n in names}
    for r in range(args.rounds):
        for n in names[r % len(names) :] + names[: r % len(names)]:
            h, p = paths[n]
            mibs = bulk(h, p, args.mib)
            rtt = pings(h, p, args.pings)
            rate[n].append(mibs)
            lat[n].append((pct(rtt, 0.5), pct(rtt, 0.99), pct(rtt, 0.999)))
            a, b, c = lat[n][-1]
            print(f"round {r + 1} {n:9s} {mibs:7.0f} MiB/s  rtt p50 {a:6.1f} p99 {b:6.1f}"
                  f" p99.9 {c:6.1f} us", flush=True)  # fmt: skip
    report(names, rate, lat, args, skipped)


def report(
    names: list[str],
    rate: dict[str, list[float]],
    lat: dict[str, list[tuple[float, float, float]]],
    args: argparse.Namespace,
    skipped: list[str],
) -> None:
    med = statistics.median
    print(f"\n{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; {machine()}")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} (other work shares the CPUs)")
    print(f"{args.mib} MiB bulk + {args.pings} x {MSG} B ping-pong per path, median of"
          f" {args.rounds} rounds; proxies on core 0, client and target on core 1")  # fmt: skip
    if skipped:
        print("skipped:", ", ".join(skipped))
    p50 = {n: med(x[0] for x in lat[n]) for n in names}
    p99 = {n: med(x[1] for x in lat[n]) for n in names}
    p999 = {n: med(x[2] for x in lat[n]) for n in names}
    print(f"{'path':9s} {'MiB/s':>7s} {'p50 us':>7s} {'p99 us':>7s} {'p99.9 us':>8s}"
          f" {'+p50 us':>7s} {'+p99 us':>7s}")  # fmt: skip
    for n in names:
        print(f"{n:9s} {med(rate[n]):7.0f} {p50[n]:7.1f} {p99[n]:7.1f} {p999[n]:8.1f}"
              f" {p50[n] - p50['direct']:7.1f} {p99[n] - p99['direct']:7.1f}")  # fmt: skip
    if "haproxy" in names:
        added = {n: max(0.1, p99[n] - p99["direct"]) for n in ("homeport", "haproxy")}
        print(f"homeport / haproxy: {med(rate['homeport']) / med(rate['haproxy']):.2f}x MiB/s"
              f" (target >= 0.8), {added['homeport'] / added['haproxy']:.2f}x p99 added"
              " latency (target <= 2)")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
