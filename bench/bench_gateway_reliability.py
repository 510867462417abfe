"""Gateway reliability: many connections for a long time, and a backend killed under load.

    .venv/bin/python bench/bench_gateway_reliability.py [--soak 60] [--conns 1000] [--outage 5]

1. Soak: wrk ``-t1 -c1000`` for ``--soak`` seconds through homeport (access log and Host check
   on) to an nginx backend; errors as wrk counts them (connect/read/write/timeout, non-2xx) and
   homeport's RSS sampled every few seconds (flat memory: the last sample against the first).
2. Outage: 50 keep-alive clients (asyncio, raw HTTP/1.1) loop on ``GET /small`` through
   homeport; after a few seconds the backend is killed (SIGKILL), ``--outage`` seconds later it
   is started again on the same port. Every response is classified per phase: during the
   outage only 502s are acceptable, after the restart only 200s (full recovery).

Both parts are bounded in time and stop every process they start.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_gateway import Proc, free_port, machine, spawn, wait_port

ROOT = Path(__file__).resolve().parent.parent
BACKEND = """
worker_processes 1; daemon off; pid {d}/backend-{port}.pid; error_log {d}/backend.err;
worker_rlimit_nofile 8192;
events {{ worker_connections 4096; }}
http {{ access_log off; keepalive_requests 1000000;
  server {{ listen 127.0.0.1:{port} reuseport;
    location = /small {{ default_type text/plain; return 200 "hello, world\\n"; }} }} }}
"""


def start_backend(d: Path, port: int) -> Proc:
    conf = d / f"backend-{port}.conf"
    conf.write_text(BACKEND.format(d=d, port=port))
    p = spawn("backend", ["nginx", "-c", str(conf), "-p", str(d)], core=1)
    wait_port(port)
    return p


def start_homeport(d: Path, backend: int) -> tuple[Proc, int]:
    port = free_port()
    argv = [sys.executable, str(ROOT / "bench" / "bench_gateway.py"), "--serve"]
    p = spawn("homeport", [*argv, str(port), str(backend), "on"], core=0)
    wait_port(port)
    return p, port


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def homeport_pid(proc: Proc) -> int:
    # spawn() runs "taskset -c N python ...": taskset execs, so the pid is python's.
    return proc.popen.pid


def soak(port: int, pid: int, seconds: int, conns: int) -> None:
    argv = ["taskset", "-c", "1", "wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--timeout", "10s"]
    argv += ["-H", "Host: app.localhost", f"http://127.0.0.1:{port}/small"]
    before = tcp_counters()
    wrk = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    samples = [(0.0, rss_kib(pid))]
    t0 = time.monotonic()
    while wrk.poll() is None:
        time.sleep(min(5.0, max(1.0, seconds / 12)))
        samples.append((time.monotonic() - t0, rss_kib(pid)))
    out = wrk.communicate()[0]
    after = tcp_counters()
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    print(f"\n## soak: {conns} connections, {seconds} s (wrk -t1 -c{conns})")
    print(f"- requests: {total.group(1) if total else '?'}, {rps.group(1) if rps else '?'} req/s")
    print(f"- socket errors (connect, read, write, timeout): {errs.groups() if errs else (0,) * 4}")
    print(f"- non-2xx: {non2xx.group(1) if non2xx else 0}")
    rss = [kib for _, kib in samples]
    print(f"- homeport RSS MiB: start {rss[0] / 1024:.1f}, after warm-up {rss[1] / 1024:.1f}, "
          f"end {rss[-1] / 1024:.1f}, max {max(rss) / 1024:.1f} ({len(rss)} samples)")  # fmt: skip
    series = ", ".join(f"{t:.0f}s {kib / 1024:.1f}" for t, kib in samples)
    print(f"- RSS series (MiB): {series}")
    # Where stalls come from when wrk counts timeouts: full accept queues drop handshakes
    # (clients retry after 1, 3, 7 s), retransmissions show lost segments. Machine-wide.
    delta = {k: after[k] - before.get(k, 0) for k in after}
    print("- kernel TCP counters during the soak: "
          + ", ".join(f"{k} {v}" for k, v in delta.items()))  # fmt: skip


def tcp_counters() -> dict[str, int]:
    """TcpExt ListenOverflows / ListenDrops and Tcp RetransSegs from /proc/net/{netstat,snmp}."""
    want = {"ListenOverflows", "ListenDrops", "RetransSegs", "TCPTimeouts"}
    out: dict[str, int] = {}
    for path in ("/proc/net/netstat", "/proc/net/snmp"):
        lines = Path(path).read_text().splitlines()
        for names, values in zip(lines[::2], lines[1::2], strict=False):
            for name, value in zip(names.split()[1:], values.split()[1:], strict=False):
                if name in want:
                    out[name] = int(value)
    return out


async def client(port: int, stop: asyncio.Event, log: list[tuple[float, str]]) -> None:
    req = b"GET /small HTTP/1.1\r\nHost: app.localhost\r\n\r\n"
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError as exc:
            log.append((time.monotonic(), f"connect-error:{type(exc).__name__}"))
            await asyncio.sleep(0.01)
            continue
        try:
            while not stop.is_set():
                sent = time.monotonic()  # phases are judged by when a request was sent
                writer.write(req)
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
                status = head.split(b" ", 2)[1].decode()
                m = re.search(rb"(?i)content-length: (\d+)", head)
                await reader.readexactly(int(m.group(1)) if m else 0)
                log.append((sent, status))
                if b"connection: close" in head.lower():
                    break
        except (OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
            log.append((time.monotonic(), f"error:{type(exc).__name__}"))
        finally:
            writer.close()


async def outage(d: Path, port: int, backend_port: int, backend: list[Proc], down: float) -> None:
    stop = asyncio.Event()
    log: list[tuple[float, str]] = []
    tasks = [asyncio.create_task(client(port, stop, log)) for _ in range(50)]
    await asyncio.sleep(3)
    t_kill = time.monotonic()
    os.killpg(backend[0].popen.pid, signal.SIGKILL)
    backend[0].popen.wait()
    await asyncio.sleep(down)
    t_restart = time.monotonic()
    backend[0] = await asyncio.to_thread(start_backend, d, backend_port)
    t_up = time.monotonic()
    await asyncio.sleep(3)
    stop.set()
    await asyncio.gather(*tasks)
    phases = {"before": collections.Counter(), "outage": collections.Counter(),
              "restarting": collections.Counter(), "after": collections.Counter()}  # fmt: skip
    for t, what in log:
        phase = (
            "before" if t < t_kill else "outage" if t < t_restart
            else "restarting" if t < t_up else "after"
        )  # fmt: skip
        phases[phase][what] += 1
    print(f"\n## backend killed under load (50 keep-alive clients, outage {down:g} s)")
    print("| phase | responses and errors |")
    print("|---|---|")
    for phase, counts in phases.items():
        print(f"| {phase} | {dict(sorted(counts.items()))} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--soak", type=int, default=60, help="seconds of the 1,000-connection soak")
    ap.add_argument("--conns", type=int, default=1000)
    ap.add_argument("--outage", type=float, default=5.0)
    args = ap.parse_args()
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} · {machine()}")
    with tempfile.TemporaryDirectory(prefix="hp-rel-") as tmp:
        d = Path(tmp)
        d.chmod(0o755)
        import bench_gateway

        bench_gateway.LOGS = d
        backend_port = free_port()
        backend = [start_backend(d, backend_port)]
        hp, port = start_homeport(d, backend_port)
        try:
            if args.soak > 0:
                soak(port, homeport_pid(hp), args.soak, args.conns)
            asyncio.run(outage(d, port, backend_port, backend, args.outage))
        finally:
            hp.stop()
            backend[0].stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
