"""Gateway throughput and latency: homeport against nginx, Caddy and portless, same run.

    .venv/bin/python bench/bench_gateway.py [--duration 5] [--rounds 5] [--only small,close,64k]

One nginx backend (one worker, pinned with wrk to core 1) serves ``/small`` (13 bytes) and
``/64k`` (65,536 bytes). Each proxy runs pinned to core 0 and forwards ``Host: app.localhost``
to it: homeport (access log + Host check on, and a second row with both off), nginx as a
reverse proxy (one worker, upstream keepalive), Caddy (GOMAXPROCS=1) and portless (node),
plus wrk straight at the backend ("direct"). wrk runs ``-t1 -c50`` for ``--duration`` seconds;
rounds are interleaved (every target once per round) and the median of the rounds is
reported with the ratio to nginx. Peers that are not installed are skipped and said so.

``--serve PORT BACKEND_PORT on|off`` is the homeport process the benchmark starts itself.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PORTLESS = (
    Path(os.environ.get("PORTLESS_DIR", "/tmp/portless")) / "node_modules/portless/dist/cli.js"
)
SCENARIOS = {
    "small": ("/small", []),
    "close": ("/small", ["-H", "Connection: close"]),
    "64k": ("/64k", []),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise RuntimeError(f"nothing listens on {port} after {timeout} s")


# -- the homeport process ---------------------------------------------------------------------


def serve(port: int, backend: int, features: str) -> None:
    sys.path.insert(0, str(ROOT / "src"))
    from homeport.gateway.config import ProxyConfig
    from homeport.gateway.contract import AccessRecord, Route, RouteTable
    from homeport.gateway.server import ProxyServer, loop_factory

    on = features == "on"
    # Stands in for the daemon's batcher, which hands a batch to SQLite every ~1,000 records.
    ring: deque[AccessRecord] = deque(maxlen=1000)

    async def main() -> None:
        cfg = ProxyConfig(access_log=on, host_check=on)
        server = ProxyServer(cfg, access_sink=ring.append if on else None)
        await server.start([("127.0.0.1", port)])
        server.set_routes(RouteTable((Route("app.localhost", f"http://127.0.0.1:{backend}"),)))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        await stop.wait()
        await server.close()

    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(main())


# -- peers ------------------------------------------------------------------------------------


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]

    def stop(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()


LOGS = Path(tempfile.gettempdir())


def spawn(name: str, argv: list[str], core: int, env: dict[str, str] | None = None) -> Proc:
    full = ["taskset", "-c", str(core), *argv]
    logf = (LOGS / f"{name}.log").open("wb")
    p = subprocess.Popen(
        full,
        stdout=logf,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, **(env or {})},
    )
    return Proc(name, p)


NGINX_BACKEND = """
worker_processes 1; daemon off; pid {d}/backend.pid; error_log {d}/backend.err;
events {{ worker_connections 4096; }}
http {{ access_log off; keepalive_requests 1000000;
  server {{ listen 127.0.0.1:{port}; root {d}/www;
    location = /small {{ default_type text/plain; return 200 "hello, world\\n"; }}
    location = /64k {{ }} }} }}
"""
NGINX_PROXY = """
worker_processes 1; daemon off; pid {d}/proxy.pid; error_log {d}/proxy.err;
events {{ worker_connections 4096; }}
http {{ access_log off; keepalive_requests 1000000;
  upstream app {{ server 127.0.0.1:{backend}; keepalive 64; }}
  server {{ listen 127.0.0.1:{port}; server_name app.localhost;
    location / {{ proxy_pass http://app; proxy_http_version 1.1;
      proxy_set_header Connection ""; proxy_set_header Host $host; }} }} }}
"""
CADDYFILE = """{{
  admin off
  auto_https off
}}
http://app.localhost:{port} {{
  bind 127.0.0.1
  reverse_proxy 127.0.0.1:{backend}
}}
"""


def start_backend(d: Path) -> tuple[Proc, int]:
    (d / "www").mkdir()
    (d / "www" / "64k").write_bytes(b"x" * 65536)
    port = free_port()
    conf = d / "backend.conf"
    conf.write_text(NGINX_BACKEND.format(d=d, port=port))
    p = spawn("backend", ["nginx", "-c", str(conf), "-p", str(d)], core=1)
    wait_port(port)
    return p, port


def start_proxies(d: Path, backend: int, procs: list[Proc]) -> tuple[dict[str, int], list[str]]:
    """Start every proxy; each one is added to ``procs`` as soon as it is spawned, so the
    caller stops it even when a later one fails to start."""
    ports: dict[str, int] = {"direct": backend}
    notes: list[str] = []
    for features in ("on", "off"):
        port = free_port()
        argv = [sys.executable, __file__, "--serve", str(port), str(backend), features]
        procs.append(spawn(f"homeport-{features}", argv, core=0))
        ports[f"homeport ({features})"] = port
    port = free_port()
    conf = d / "proxy.conf"
    conf.write_text(NGINX_PROXY.format(d=d, port=port, backend=backend))
    procs.append(spawn("nginx", ["nginx", "-c", str(conf), "-p", str(d)], core=0))
    ports["nginx"] = port
    if shutil.which("caddy"):
        port = free_port()
        (d / "Caddyfile").write_text(CADDYFILE.format(port=port, backend=backend))
        argv = ["caddy", "run", "--config", str(d / "Caddyfile"), "--adapter", "caddyfile"]
        env = {
            "GOMAXPROCS": "1",
            "HOME": str(d),
            "XDG_DATA_HOME": str(d),
            "XDG_CONFIG_HOME": str(d),
        }
        procs.append(spawn("caddy", argv, core=0, env=env))
        ports["caddy"] = port
    else:
        notes.append("caddy: not installed (apt-get install caddy)")
    if PORTLESS.exists() and shutil.which("node"):
        port = free_port()
        env = {"PORTLESS_STATE_DIR": str(d / "portless"), "PORTLESS_SYNC_HOSTS": "0"}
        argv = ["node", str(PORTLESS), "proxy", "start", "--no-tls", "-p", str(port)]
        procs.append(spawn("portless", [*argv, "--foreground"], core=0, env=env))
        wait_port(port)
        subprocess.run(
            ["node", str(PORTLESS), "alias", "app", str(backend), "--force"],
            env={**os.environ, **env},
            capture_output=True,
            check=True,
        )
        ports["portless"] = port
    else:
        notes.append(f"portless: not found at {PORTLESS} (npm install portless there)")
    for name, port in ports.items():
        try:
            wait_port(port)
        except RuntimeError:
            log = d / f"{name}.log"
            print(f"# {name} did not start:", log.read_text()[-2000:] if log.exists() else "")
            raise
    return ports, notes


# -- wrk ----------------------------------------------------------------------------------------


@dataclass
class Result:
    rps: float
    mib_s: float
    p99_ms: float
    errors: int


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}
_BYTES = {"B": 1 / 2**20, "KB": 1 / 1024, "MB": 1.0, "GB": 1024.0}


def wrk(port: int, path: str, extra: list[str], duration: float) -> Result:
    argv = [
        "taskset",
        "-c",
        "1",
        "wrk",
        "-t1",
        "-c50",
        f"-d{max(1, round(duration))}s",
        "--latency",
    ]
    argv += ["-H", "Host: app.localhost", *extra, f"http://127.0.0.1:{port}{path}"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 30)
    out = done.stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if m is None:
        raise RuntimeError(f"wrk failed: {done.stderr.strip() or out}")
    rps = float(m.group(1))
    tm = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", out)
    mib = float(tm.group(1)) * _BYTES[tm.group(2)] if tm else 0.0
    pm = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    p99 = float(pm.group(1)) * _UNITS[pm.group(2)] if pm else float("nan")
    errors = 0
    em = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if em:
        errors += sum(int(x) for x in em.groups())
    nm = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if nm:
        errors += int(nm.group(1))
    return Result(rps, mib, p99, errors)


def machine() -> str:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return f"nproc {os.cpu_count()}, kernel {os.uname().release}, CPU {cpu}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--only", default="small,close,64k")
    ap.add_argument("--targets", default="", help="comma list; default all")
    ap.add_argument("--serve", nargs=3, metavar=("PORT", "BACKEND", "ON_OFF"))
    args = ap.parse_args()
    if args.serve:
        serve(int(args.serve[0]), int(args.serve[1]), args.serve[2])
        return 0
    for tool in ("nginx", "wrk", "taskset"):
        if not shutil.which(tool):
            print(f"missing {tool}: apt-get install {tool if tool != 'taskset' else 'util-linux'}")
            return 3
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} · {machine()}")
    with tempfile.TemporaryDirectory(prefix="hp-bench-") as tmp:
        d = Path(tmp)
        d.chmod(0o755)  # nginx workers run as nobody
        global LOGS
        LOGS = d
        backend, bport = start_backend(d)
        procs: list[Proc] = [backend]
        try:
            ports, notes = start_proxies(d, bport, procs)
            for note in notes:
                print("#", note)
            if args.targets:
                keep = set(args.targets.split(","))
                ports = {k: v for k, v in ports.items() if k in keep or k == "nginx"}
            run_all(ports, args)
        finally:
            for p in reversed(procs):
                p.stop()
    return 0


def run_all(ports: dict[str, int], args: argparse.Namespace) -> None:
    for scenario in args.only.split(","):
        path, extra = SCENARIOS[scenario]
        for port in ports.values():  # warm-up: pools filled, JITs and caches warm
            wrk(port, path, extra, 1.0)
        results: dict[str, list[Result]] = {name: [] for name in ports}
        for _ in range(args.rounds):
            for name, port in ports.items():
                results[name].append(wrk(port, path, extra, args.duration))
        report(scenario, results)


def report(scenario: str, results: dict[str, list[Result]]) -> None:
    def med(name: str, attr: str) -> float:
        return statistics.median(getattr(r, attr) for r in results[name])

    base_rps, base_mib, base_p99 = (
        med("nginx", "rps"),
        med("nginx", "mib_s"),
        med("nginx", "p99_ms"),
    )
    print(f"\n## {scenario} (wrk -t1 -c50, median of {len(results['nginx'])})")
    print("| target | req/s | × nginx | MiB/s | × nginx | p99 ms | × nginx | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name in results:
        rps, mib, p99 = med(name, "rps"), med(name, "mib_s"), med(name, "p99_ms")
        errs = sum(r.errors for r in results[name])
        print(
            f"| {name} | {rps:,.0f} | {rps / base_rps:.2f} | {mib:,.1f} | {mib / base_mib:.2f} "
            f"| {p99:.2f} | {p99 / base_p99:.2f} | {errs} |"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
