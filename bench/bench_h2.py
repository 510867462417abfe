"""HTTPS and HTTP/2 through the gateway: homeport against Caddy (``tls internal``) and nginx
(TLS), same run, interleaved.

    .venv/bin/python bench/bench_h2.py [--duration 5] [--rounds 5]
        [--only h2,handshake,h1tls,pageload]

One nginx backend (one worker, pinned to core 1 with the load generator) serves ``/small``
(13 bytes). Each proxy runs pinned to core 0 and forwards to it:

- homeport: this checkout's gateway with a TLS context (a throwaway self-signed leaf made with
  ``openssl req``), access log and Host check on;
- Caddy (GOMAXPROCS=1) with ``tls internal``, its CA under a temporary HOME (never trusted
  anywhere: ``skip_install_trust``);
- nginx (one worker) with ``ssl`` (and ``http2`` for the h2 row), upstream keepalive.

Scenarios (h2load from nghttp2-client, on core 1):

- ``h2``: ``h2load -c10 -m10`` over TLS + h2 for ``--duration`` seconds: req/s;
- ``handshake``: each request on a new TLS connection (``-c 50 -n 50``, repeated for
  ``--duration``): full handshakes/s (TLS 1.3, ECDSA P-256);
- ``h1tls``: HTTP/1.1 over TLS, keep-alive, ``h2load --h1 -c10 -m1``: req/s;
- ``pageload`` (Debian chromium + Playwright): a page importing 300 small ES modules, as an
  unbundled dev server serves them, loaded in a fresh browser context each time (no cache):
  through homeport over h2, through homeport over HTTPS/1.1 (``--disable-http2``), and straight
  from the backend over plain HTTP/1.1; milliseconds to the load event (``loadEventEnd``).

Medians of ``--rounds`` rounds, each target once per round, with the ratio to the peer the
issue names (Caddy for h2 and handshakes, nginx for HTTP/1.1 over TLS).
``--local-ca`` adds a row for homeport on ``homeport.tls.server_context`` (what the daemon runs:
the local CA, its SNI callback on every handshake). ``--serve PORT BACKEND CERT KEY`` is the
homeport process the benchmark starts itself (CERT ``local-ca``: KEY is then a state dir).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

NGINX_BACKEND = """
worker_processes 1; daemon off; pid {d}/backend.pid; error_log {d}/backend.err;
events {{ worker_connections 4096; }}
http {{ access_log off; keepalive_requests 1000000;
  include /etc/nginx/mime.types;
  server {{ listen 127.0.0.1:{port}; root {d}/www;
    location = /small {{ default_type text/plain; return 200 "hello, world\\n"; }} }} }}
"""
NGINX_TLS = """
worker_processes 1; daemon off; pid {d}/proxy.pid; error_log {d}/proxy.err;
events {{ worker_connections 4096; }}
http {{ access_log off; keepalive_requests 1000000;
  upstream app {{ server 127.0.0.1:{backend}; keepalive 64; }}
  server {{ listen 127.0.0.1:{port} ssl http2; server_name app.localhost;
    ssl_certificate {cert}; ssl_certificate_key {key}; ssl_protocols TLSv1.2 TLSv1.3;
    location / {{ proxy_pass http://app; proxy_http_version 1.1;
      proxy_set_header Connection ""; proxy_set_header Host $host; }} }} }}
"""
CADDYFILE = """{{
  admin off
  skip_install_trust
  local_certs
  auto_https disable_redirects
  default_sni 127.0.0.1
}}
https://127.0.0.1:{port} {{
  bind 127.0.0.1
  tls internal
  reverse_proxy 127.0.0.1:{backend}
}}
"""


def serve(port: int, backend: int, cert: str, key: str) -> None:
    sys.path.insert(0, str(ROOT / "src"))
    from homeport.gateway.config import ProxyConfig
    from homeport.gateway.contract import AccessRecord, Route, RouteTable
    from homeport.gateway.server import ProxyServer, loop_factory

    ring: deque[AccessRecord] = deque(maxlen=1000)  # the daemon's batcher, as in bench_gateway
    if cert == "local-ca":
        # What the daemon runs: the local CA's context, its SNI callback on every handshake.
        from homeport.tls import server_context

        ctx = server_context(Path(key))
    else:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        ctx.set_alpn_protocols(["h2", "http/1.1"])

    async def main() -> None:
        server = ProxyServer(ProxyConfig(), access_sink=ring.append, tls=ctx)
        await server.start([("127.0.0.1", port)])
        server.set_routes(RouteTable((Route("app.localhost", f"http://127.0.0.1:{backend}"),)))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await server.close()

    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(main())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def spawn(d: Path, name: str, argv: list[str], core: int, env: dict[str, str] | None = None
          ) -> subprocess.Popen[bytes]:  # fmt: skip
    log = (d / f"{name}.log").open("wb")
    return subprocess.Popen(
        ["taskset", "-c", str(core), *argv],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, **(env or {})},
    )


def stop(p: subprocess.Popen[bytes]) -> None:
    if p.poll() is None:
        os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def h2load(args: list[str], timeout: float) -> tuple[float, int]:
    """Run h2load on core 1; (req/s, failed+errored)."""
    r = subprocess.run(
        ["taskset", "-c", "1", "h2load", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    rps = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", r.stdout)
    bad = re.search(r"\d+ succeeded, (\d+) failed, (\d+) errored", r.stdout)
    if rps is None or bad is None:
        raise RuntimeError(f"h2load: {r.stdout[-500:]} {r.stderr[-500:]}")
    return float(rps.group(1)), int(bad.group(1)) + int(bad.group(2))


def url(name: str, port: int) -> str:
    return f"https://127.0.0.1:{port}/small"


def authority(name: str) -> list[str]:
    return [] if name == "caddy" else ["-H", ":authority: app.localhost"]


def run(name: str, port: int, scenario: str, duration: float) -> tuple[float, int]:
    u, hdr = url(name, port), authority(name)
    if scenario == "h2":
        return h2load(["-c10", "-m10", "-D", str(max(1, round(duration))), *hdr, u], duration + 30)
    if scenario == "h1tls":
        return h2load(
            ["--h1", "-c10", "-m1", "-D", str(max(1, round(duration))), *hdr, u], duration + 30
        )
    # handshake: 50 clients, one request each, as many batches as fit in the duration
    done, bad, t0 = 0, 0, time.monotonic()
    while time.monotonic() - t0 < duration:
        _, b = h2load(["-c50", "-n50", "-m1", *hdr, u], 60)
        done, bad = done + 50, bad + b
    return done / (time.monotonic() - t0), bad


LOCAL_CA = False
PEER = {"h2": "caddy", "handshake": "caddy", "h1tls": "nginx", "pageload": "homeport h1"}
MODULES = 300
CHROMIUM = "/usr/bin/chromium"


def write_modules(www: Path) -> None:
    """index.html imports main.js, which imports 300 modules (each a few hundred bytes)."""
    mods = www / "mods"
    mods.mkdir(parents=True, exist_ok=True)
    for i in range(MODULES):
        body = f"export const v{i} = {i};\n// {'x' * 200}\n"
        (mods / f"m{i}.js").write_text(body)
    imports = "".join(f'import {{ v{i} }} from "./mods/m{i}.js";\n' for i in range(MODULES))
    total = " + ".join(f"v{i}" for i in range(MODULES))
    (www / "main.js").write_text(imports + f"window.total = {total};\n")
    (www / "index.html").write_text(
        '<!doctype html><meta charset="utf-8"><script type="module" src="/main.js"></script>\n'
    )


def pageload(
    ports: dict[str, int], backend: int, rounds: int
) -> dict[str, list[tuple[float, int]]]:
    from playwright.sync_api import sync_playwright

    gw = ports["homeport"]
    rules = f"--host-resolver-rules=MAP app.localhost:{gw} 127.0.0.1:{gw}"
    base = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--ignore-certificate-errors", rules]  # fmt: skip
    targets = {
        "homeport h2": (f"https://app.localhost:{gw}/index.html", []),
        "homeport h1": (f"https://app.localhost:{gw}/index.html", ["--disable-http2"]),
        "direct h1": (f"http://127.0.0.1:{backend}/index.html", []),
    }
    results: dict[str, list[tuple[float, int]]] = {name: [] for name in targets}
    with sync_playwright() as p:
        browsers = {
            name: p.chromium.launch(executable_path=CHROMIUM, args=[*base, *extra])
            for name, (_, extra) in targets.items()
        }
        try:
            for n in range(rounds + 1):  # the first round warms up
                for name, (target, _) in targets.items():
                    ctx = browsers[name].new_context()
                    page = ctx.new_page()
                    page.goto(target, wait_until="load", timeout=60_000)
                    ok = page.evaluate("window.total") == MODULES * (MODULES - 1) // 2
                    ms = page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd")
                    proto = page.evaluate(
                        "performance.getEntriesByType('resource').at(-1).nextHopProtocol"
                    )
                    ctx.close()
                    if n:
                        results[name].append((float(ms), 0 if ok else 1))
                    if n == 1:
                        print(f"# {name}: modules over {proto}")
        finally:
            for b in browsers.values():
                b.close()
    return results


def machine() -> str:
    return f"nproc {os.cpu_count()}, kernel {os.uname().release}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--only", default="h2,handshake,h1tls,pageload")
    ap.add_argument("--serve", nargs=4, metavar=("PORT", "BACKEND", "CERT", "KEY"))
    ap.add_argument(
        "--local-ca", action="store_true", help="also homeport on the local CA's SNI context"
    )
    args = ap.parse_args()
    global LOCAL_CA
    LOCAL_CA = args.local_ca
    if args.serve:
        serve(int(args.serve[0]), int(args.serve[1]), args.serve[2], args.serve[3])
        return 0
    for tool in ("nginx", "h2load", "taskset", "openssl"):
        if not shutil.which(tool):
            print(f"missing {tool}")
            return 3
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} · {machine()}")
    with tempfile.TemporaryDirectory(prefix="hp-bench-h2-") as tmp:
        d = Path(tmp)
        d.chmod(0o755)  # nginx workers run as nobody
        procs: list[subprocess.Popen[bytes]] = []
        try:
            ports, backend = start(d, procs)
            for scenario in args.only.split(","):
                if scenario == "pageload":
                    report(scenario, pageload(ports, backend, args.rounds))
                else:
                    report(scenario, measure(ports, scenario, args))
        finally:
            for p in reversed(procs):
                stop(p)
    return 0


def start(d: Path, procs: list[subprocess.Popen[bytes]]) -> tuple[dict[str, int], int]:
    cert, key = d / "leaf.pem", d / "leaf.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-subj", "/CN=app.localhost", "-days", "1", "-keyout", str(key),
         "-out", str(cert), "-addext", "subjectAltName=DNS:app.localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    write_modules(d / "www")
    backend = free_port()
    (d / "backend.conf").write_text(NGINX_BACKEND.format(d=d, port=backend))
    procs.append(spawn(d, "backend", ["nginx", "-c", str(d / "backend.conf"), "-p", str(d)], 1))
    wait_port(backend)
    ports: dict[str, int] = {}
    port = ports["homeport"] = free_port()
    argv = [sys.executable, __file__, "--serve", str(port), str(backend), str(cert), str(key)]
    procs.append(spawn(d, "homeport", argv, 0))
    if LOCAL_CA:
        port = ports["homeport local CA"] = free_port()
        state = d / "state"
        argv = [
            sys.executable,
            __file__,
            "--serve",
            str(port),
            str(backend),
            "local-ca",
            str(state),
        ]
        procs.append(spawn(d, "homeport-ca", argv, 0))
    port = ports["nginx"] = free_port()
    conf = NGINX_TLS.format(d=d, port=port, backend=backend, cert=cert, key=key)
    (d / "proxy.conf").write_text(conf)
    procs.append(spawn(d, "nginx", ["nginx", "-c", str(d / "proxy.conf"), "-p", str(d)], 0))
    if shutil.which("caddy"):
        port = ports["caddy"] = free_port()
        (d / "Caddyfile").write_text(CADDYFILE.format(port=port, backend=backend))
        home = d / "caddy-home"
        home.mkdir()
        env = {"GOMAXPROCS": "1", "HOME": str(home), "XDG_DATA_HOME": str(home / "data"),
               "XDG_CONFIG_HOME": str(home / "config")}  # fmt: skip
        argv = ["caddy", "run", "--config", str(d / "Caddyfile"), "--adapter", "caddyfile"]
        procs.append(spawn(d, "caddy", argv, 0, env))
    else:
        print("# caddy: not installed (apt-get install caddy)")
    for p in ports.values():
        wait_port(p)
    return ports, backend


def measure(
    ports: dict[str, int], scenario: str, args: argparse.Namespace
) -> dict[str, list[tuple[float, int]]]:
    for name, port in ports.items():  # warm-up: pools, session caches, Caddy's first leaf
        run(name, port, scenario, 1.0)
    results: dict[str, list[tuple[float, int]]] = {name: [] for name in ports}
    for _ in range(args.rounds):
        for name, port in ports.items():
            results[name].append(run(name, port, scenario, args.duration))
    return results


def report(scenario: str, results: dict[str, list[tuple[float, int]]]) -> None:
    peer = PEER[scenario] if PEER[scenario] in results else "nginx"
    base = statistics.median(r for r, _ in results[peer])
    unit = {"handshake": "handshakes/s", "pageload": "ms to load"}.get(scenario, "req/s")
    load = os.getloadavg()[0]
    print(f"\n## {scenario} (median of {len(results[peer])}, load {load:.1f})")
    print(f"| target | {unit} | × {peer} | errors |")
    print("|---|---:|---:|---:|")
    for name, rs in results.items():
        med = statistics.median(r for r, _ in rs)
        print(f"| {name} | {med:,.0f} | {med / base:.2f} | {sum(e for _, e in rs)} |")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
