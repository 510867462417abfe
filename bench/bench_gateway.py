"""Gateway throughput and latency: ``homeport up`` as users run it, against nginx and Caddy.

    .venv/bin/python bench/bench_gateway.py [--duration 5] [--rounds 3] [--only small,close,64k]
        [--targets "homeport up,nginx"] [--connections 50] [--compare-src OTHER/src]

One nginx backend (one worker) serves ``/small`` (13 bytes) and ``/64k`` (65,536 bytes). Each
proxy forwards ``Host: app.localhost`` to it:

- **homeport up**: the console script as ``pip install .`` installs it, which compiles the
  gateway's hot path with mypyc (``make compiled`` builds it in ``.venv-compiled``; its
  ``build`` is printed), run as ``homeport up -d --port P`` with all other settings default
  (SQLite access log, dashboard sampler, store watcher), its own temporary HOME and
  XDG_STATE_HOME, and one route added by ``homeport route add``;
- **homeport up (pure Python)**: the same from the editable ``.venv`` (the pure-Python
  fallback a machine without a C compiler gets);
- with ``--compare-src``, the pure one again on another checkout (``git archive REV src |
  tar -x``), a before/after pair in the same interleaved rounds;
- **ProxyServer (in-process)**: the proxy alone in a bench process, access records into an
  in-memory ring (the row earlier rounds of this benchmark reported), from this checkout's
  ``src`` (pure Python); **ProxyServer (in-process, compiled)** the same from the compiled
  install's interpreter and package: beside ``homeport up`` it is the same build without the
  daemon (its SQLite access log, metrics, sampler and watchers), so the difference of the two
  rows is what the daemon costs the proxy;
- nginx as a reverse proxy (one worker, upstream keepalive, access log off: the ratios'
  baseline), the same with its default access log ("nginx + access log"), Caddy
  (GOMAXPROCS=1), portless (node) when installed, and wrk straight at the backend ("direct").

With two or more cores the proxies are pinned to core 0 and wrk plus the backend to core 1
(``taskset``). wrk runs ``-t1 -c50 --latency`` for ``--duration`` seconds; rounds are
interleaved (every target once per round) and the medians of the rounds are reported: req/s,
MiB/s, p50 / p99 / p99.9 latency (a wrk Lua ``done`` hook prints the percentiles), the proxy's
CPU (% of one core over the run, its whole process group) and its peak RSS, each with its
ratio to nginx. For ``homeport up`` the worst loop lag the daemon sampled during the run
(``homeport status --json``, ``loop_lag_ms.max``) is printed too, and in brackets the same
less the time its thread waited for a CPU (``max_own``): on a shared machine, the part of a
stall the daemon caused itself.

``--serve PORT BACKEND_PORT on|off [--installed]`` is the in-process ProxyServer the benchmark
starts (``--installed``: homeport as this interpreter has it installed, not ``src``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
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
from typing import Any, cast

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


def serve(port: int, backend: int, features: str, installed: bool = False) -> None:
    if not installed:
        sys.path.insert(0, str(ROOT / "src"))
    from homeport.gateway import build
    from homeport.gateway.config import ProxyConfig
    from homeport.gateway.contract import AccessRecord, Route, RouteTable
    from homeport.gateway.server import ProxyServer, loop_factory

    if installed and build() != "mypyc":
        sys.exit(f"the installed homeport is not compiled (build {build()}): make compiled")
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


#: With two cores or more: proxies on core 0, wrk and the backend on core 1 (else unpinned).
CORE_PROXY, CORE_LOAD = (
    (0, 1)
    if (os.cpu_count() or 1) >= 2 and shutil.which("taskset")
    else (
        None,
        None,
    )
)


def spawn(name: str, argv: list[str], core: int | None, env: dict[str, str] | None = None) -> Proc:
    full = argv if core is None else ["taskset", "-c", str(core), *argv]
    logf = (LOGS / f"{name}.log").open("wb")
    p = subprocess.Popen(
        full,
        stdout=logf,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, **(env or {})},
    )
    return Proc(name, p)


NGINX_LOGGED = "nginx + access log"
NGINX_BACKEND = """
worker_processes 1; daemon off; pid {d}/backend.pid; error_log {d}/backend.err;
events {{ worker_connections 4096; }}
http {{ access_log off; keepalive_requests 1000000;
  server {{ listen 127.0.0.1:{port}; root {d}/www;
    location = /small {{ default_type text/plain; return 200 "hello, world\\n"; }}
    location = /64k {{ }} }} }}
"""
#: ``{log}`` is ``off`` (the ratios' baseline) or a file: nginx's default, one ``combined``
#: line written per request, beside it as "nginx + access log" (homeport's log is on).
NGINX_PROXY = """
worker_processes 1; daemon off; pid {d}/{name}.pid; error_log {d}/{name}.err;
events {{ worker_connections 4096; }}
http {{ access_log {log}; keepalive_requests 1000000;
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
    p = spawn("backend", ["nginx", "-c", str(conf), "-p", str(d)], core=CORE_LOAD)
    wait_port(port)
    return p, port


#: The install (``pip install .``, compiled), and the editable pure-Python one.
HOMEPORT = ROOT / ".venv-compiled" / "bin" / "homeport"
PURE = ROOT / ".venv" / "bin" / "homeport"
UP = "homeport up"
UP_PURE = "homeport up (pure Python)"
IN_PROCESS = "ProxyServer (in-process)"
IN_PROCESS_COMPILED = "ProxyServer (in-process, compiled)"


@dataclass
class Daemon:
    """``homeport up -d`` with its own HOME: stopped with ``homeport down``, else SIGTERM."""

    env: dict[str, str]
    pid: int
    port: int
    exe: Path = HOMEPORT

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [str(self.exe), *args], env=self.env, capture_output=True, text=True, timeout=30
        )
        if done.returncode != 0:
            raise RuntimeError(f"homeport {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def stop(self) -> None:
        try:
            self.cli("down")
        except (RuntimeError, subprocess.TimeoutExpired):
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)


def start_daemon(
    d: Path,
    backend: int,
    core: int | None,
    src: str | None = None,
    extra: tuple[str, ...] = (),
    exe: Path = HOMEPORT,
) -> Daemon:
    """The product as a user starts it: the console script, default settings, one route.
    ``homeport up -d`` returns once the daemon listens (its readiness pipe). With ``src``,
    the same script runs another checkout's code (``PYTHONPATH`` comes before the editable
    install's path entry)."""
    home = d / "home"
    if src is not None or home.exists():
        home = d / f"home-{len(list(d.glob('home*')))}"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOMEPORT_")}
    env |= {"HOME": str(home), "XDG_STATE_HOME": str(home / "state")}
    if src is not None:
        env["PYTHONPATH"] = src
    port = free_port()
    argv = [str(exe), "up", "-d", "--json", "--port", str(port), *extra]
    if core is not None:
        argv = ["taskset", "-c", str(core), *argv]  # the daemon inherits the affinity
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"homeport up failed: {done.stderr.strip()}")
    info = json.loads(done.stdout)
    daemon = Daemon(env, int(info["pid"]), port, exe)
    daemon.cli("route", "add", "app", str(backend), "--json")
    return daemon


def start_proxies(
    d: Path, backend: int, procs: list[Proc], daemons: list[Daemon], compare: str | None = None
) -> tuple[dict[str, int], dict[str, int], list[str]]:
    """Start every proxy; each one is added to ``procs`` (or ``daemons``) as soon as it is
    spawned, so the caller stops it even when a later one fails to start. Returns the ports
    and the process-group leaders whose CPU and memory are measured."""
    ports: dict[str, int] = {"direct": backend}
    pids: dict[str, int] = {}
    notes: list[str] = []
    for name, exe, missing in (
        (UP, HOMEPORT, "make compiled"),
        (UP_PURE, PURE, "make .venv/.installed"),
    ):
        if not exe.exists():
            notes.append(f"{name}: {exe} is missing ({missing})")
            continue
        daemons.append(start_daemon(d, backend, CORE_PROXY, exe=exe))
        ports[name], pids[name] = daemons[-1].port, daemons[-1].pid
        notes.append(f"{name}: {exe}, build {_status(daemons[-1]).get('build', '?')}")
    if compare and PURE.exists():
        daemons.append(start_daemon(d, backend, CORE_PROXY, compare, exe=PURE))
        name = f"{UP_PURE} @ {compare}"
        ports[name], pids[name] = daemons[-1].port, daemons[-1].pid
    port = free_port()
    argv = [sys.executable, __file__, "--serve", str(port), str(backend), "on"]
    procs.append(spawn("homeport-in-process", argv, core=CORE_PROXY))
    ports[IN_PROCESS], pids[IN_PROCESS] = port, procs[-1].popen.pid
    compiled_python = HOMEPORT.parent / "python"
    if compiled_python.exists():
        port = free_port()
        argv = [str(compiled_python), __file__, "--serve", str(port), str(backend), "on"]
        env = {"PYTHONPATH": ""}  # the install's own package, never a checkout's src
        procs.append(spawn("homeport-in-process-compiled", [*argv, "--installed"], CORE_PROXY, env))
        ports[IN_PROCESS_COMPILED], pids[IN_PROCESS_COMPILED] = port, procs[-1].popen.pid
    for target, name, log in (
        ("nginx", "proxy", "off"),
        (NGINX_LOGGED, "proxy-logged", str(d / "proxy-access.log")),
    ):
        port = free_port()
        conf = d / f"{name}.conf"
        conf.write_text(NGINX_PROXY.format(d=d, port=port, backend=backend, name=name, log=log))
        procs.append(spawn(target, ["nginx", "-c", str(conf), "-p", str(d)], core=CORE_PROXY))
        ports[target], pids[target] = port, procs[-1].popen.pid
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
        procs.append(spawn("caddy", argv, core=CORE_PROXY, env=env))
        ports["caddy"], pids["caddy"] = port, procs[-1].popen.pid
    else:
        notes.append("caddy: not installed (apt-get install caddy)")
    if PORTLESS.exists() and shutil.which("node"):
        port = free_port()
        env = {"PORTLESS_STATE_DIR": str(d / "portless"), "PORTLESS_SYNC_HOSTS": "0"}
        argv = ["node", str(PORTLESS), "proxy", "start", "--no-tls", "-p", str(port)]
        procs.append(spawn("portless", [*argv, "--foreground"], core=CORE_PROXY, env=env))
        pids["portless"] = procs[-1].popen.pid
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
    return ports, pids, notes


# -- wrk ----------------------------------------------------------------------------------------


@dataclass
class Result:
    rps: float
    mib_s: float
    p50_ms: float
    p99_ms: float
    p999_ms: float
    errors: int
    cpu_pct: float = float("nan")  # of one core, over the run
    rss_mib: float = float("nan")  # peak (VmHWM) of the proxy's processes
    lag_ms: float = float("nan")  # homeport up: the daemon's worst loop lag in the run
    own_ms: float = float("nan")  # the same, less the time its thread waited for a CPU
    dropped: int = 0  # homeport up: access records it dropped during the run
    user_us: float = float("nan")  # the proxy's user CPU per request, µs
    sys_us: float = float("nan")  # the same in the kernel (socket calls), µs


_BYTES = {"B": 1 / 2**20, "KB": 1 / 1024, "MB": 1.0, "GB": 1024.0}
#: wrk's --latency lists 50/75/90/99 only; this hook prints p99.9 too (in microseconds).
LUA = """
done = function(summary, latency, requests)
  for _, p in pairs({50, 99, 99.9}) do
    io.write(string.format("PCT %g %d\\n", p, latency:percentile(p)))
  end
end
"""


def wrk(port: int, path: str, extra: list[str], duration: float, conns: int = 50) -> Result:
    argv = [] if CORE_LOAD is None else ["taskset", "-c", str(CORE_LOAD)]
    argv += ["wrk", "-t1", f"-c{conns}", f"-d{max(1, round(duration))}s", "--latency"]
    argv += ["-s", str(LOGS / "pct.lua"), "-H", "Host: app.localhost", *extra]
    argv.append(f"http://127.0.0.1:{port}{path}")
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 30)
    out = done.stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if m is None:
        raise RuntimeError(f"wrk failed: {done.stderr.strip() or out}")
    rps = float(m.group(1))
    tm = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", out)
    mib = float(tm.group(1)) * _BYTES[tm.group(2)] if tm else 0.0
    pct = {float(p): int(us) / 1000.0 for p, us in re.findall(r"PCT ([\d.]+) (\d+)", out)}
    errors = 0
    em = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if em:
        errors += sum(int(x) for x in em.groups())
    nm = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if nm:
        errors += int(nm.group(1))
    nan = float("nan")
    return Result(rps, mib, pct.get(50, nan), pct.get(99, nan), pct.get(99.9, nan), errors)


def group_pids(leader: int) -> list[int]:
    """The leader and every process in its process group or below it (nginx's worker)."""
    out = [leader]
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry.name}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(entry.name) != leader and leader in (int(fields[1]), int(fields[2])):
            out.append(int(entry.name))
    return out


def cpu_ticks(pids: list[int]) -> tuple[int, int]:
    """User and system clock ticks of ``pids`` so far."""
    user = system = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        user, system = user + int(fields[11]), system + int(fields[12])  # utime, stime
    return user, system


def peak_rss_mib(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
    return total / 1024


def measured(
    name: str, port: int, pid: int | None, daemon: Daemon | None, scenario: tuple[str, list[str]],
    duration: float, conns: int,
) -> Result:  # fmt: skip
    """One wrk run, with the proxy's CPU over it, its peak RSS and (homeport up) loop lag."""
    path, extra = scenario
    pids = group_pids(pid) if pid is not None else []
    dropped0 = _status(daemon).get("access_dropped", 0) if daemon is not None else 0
    t0, (u0, s0) = time.monotonic(), cpu_ticks(pids)
    r = wrk(port, path, extra, duration, conns)
    if pids:
        hz = os.sysconf("SC_CLK_TCK")
        u1, s1 = cpu_ticks(pids)
        r.cpu_pct = 100.0 * (u1 - u0 + s1 - s0) / hz / (time.monotonic() - t0)
        requests = r.rps * (time.monotonic() - t0)
        if requests > 0:  # CPU per request: the interpreter's share against the kernel's
            r.user_us = (u1 - u0) / hz / requests * 1e6
            r.sys_us = (s1 - s0) / hz / requests * 1e6
        r.rss_mib = peak_rss_mib(pids)
    if daemon is not None:
        status = _status(daemon)
        lag = status.get("loop_lag_ms")
        if isinstance(lag, dict) and "max" in lag:
            r.lag_ms, r.own_ms = float(lag["max"]), float(lag.get("max_own", "nan"))
        r.dropped = int(status.get("access_dropped", 0)) - int(dropped0)
    return r


def _status(daemon: Daemon) -> dict[str, Any]:
    return cast(dict[str, Any], json.loads(daemon.cli("status", "--json"))["status"])


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
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument(
        "--compare-src",
        metavar="SRC",
        help="also run homeport up on another checkout's src (before/after, same rounds)",
    )
    ap.add_argument("--only", default="small,close,64k")
    ap.add_argument("--targets", default="", help="comma list; default all")
    ap.add_argument("--serve", nargs=3, metavar=("PORT", "BACKEND", "ON_OFF"))
    ap.add_argument("--installed", action="store_true", help="--serve the installed homeport")
    args = ap.parse_args()
    if args.serve:
        serve(int(args.serve[0]), int(args.serve[1]), args.serve[2], args.installed)
        return 0
    for tool in ("nginx", "wrk", "taskset"):
        if not shutil.which(tool):
            print(f"missing {tool}: apt-get install {tool if tool != 'taskset' else 'util-linux'}")
            return 3
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} · {machine()}")
    pinning = "unpinned" if CORE_PROXY is None else f"proxies on core {CORE_PROXY}"
    print(f"# {pinning}, wrk + backend on core {CORE_LOAD} · load {os.getloadavg()}")
    with tempfile.TemporaryDirectory(prefix="hp-bench-") as tmp:
        d = Path(tmp)
        d.chmod(0o755)  # nginx workers run as nobody
        global LOGS
        LOGS = d
        (d / "pct.lua").write_text(LUA)
        backend, bport = start_backend(d)
        procs: list[Proc] = [backend]
        daemons: list[Daemon] = []
        try:
            ports, pids, notes = start_proxies(d, bport, procs, daemons, args.compare_src)
            for note in notes:
                print("#", note)
            if args.targets:
                keep = set(args.targets.split(","))
                ports = {k: v for k, v in ports.items() if k in keep or k == "nginx"}
            by_port = {daemon.port: daemon for daemon in daemons}
            run_all(ports, pids, by_port, args)
        finally:
            for daemon in daemons:
                daemon.stop()
            for p in reversed(procs):
                p.stop()
    print(f"# load after: {os.getloadavg()}")
    return 0


def run_all(
    ports: dict[str, int],
    pids: dict[str, int],
    daemons: dict[int, Daemon],
    args: argparse.Namespace,
) -> None:
    for scenario in args.only.split(","):
        path, extra = SCENARIOS[scenario]
        for port in ports.values():  # warm-up: pools filled, JITs and caches warm
            wrk(port, path, extra, 1.0, args.connections)
        results: dict[str, list[Result]] = {name: [] for name in ports}
        for _ in range(args.rounds):
            for name, port in ports.items():
                r = measured(
                    name, port, pids.get(name), daemons.get(port),
                    SCENARIOS[scenario], args.duration, args.connections,
                )  # fmt: skip
                results[name].append(r)
        report(scenario, results, args.connections)


def report(scenario: str, results: dict[str, list[Result]], conns: int) -> None:
    def med(name: str, attr: str) -> float:
        return statistics.median(getattr(r, attr) for r in results[name])

    def ratio(name: str, attr: str) -> str:
        base = med("nginx", attr)
        return f"{med(name, attr) / base:.2f}" if base else "-"

    rounds = len(results["nginx"])
    print(f"\n## {scenario} (wrk -t1 -c{conns}, median of {rounds}; load {os.getloadavg()})")
    print(
        "| target | req/s | × nginx | MiB/s | p50 ms | p99 ms | × nginx | p99.9 ms | × nginx "
        "| CPU % | CPU µs/req user + sys | RSS MiB | loop lag ms (own) | log dropped | errors |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in results:
        errs = sum(r.errors for r in results[name])
        dropped = sum(r.dropped for r in results[name])
        lag, own = med(name, "lag_ms"), med(name, "own_ms")
        print(
            f"| {name} | {med(name, 'rps'):,.0f} | {ratio(name, 'rps')} "
            f"| {med(name, 'mib_s'):,.1f} | {med(name, 'p50_ms'):.2f} "
            f"| {med(name, 'p99_ms'):.2f} | {ratio(name, 'p99_ms')} "
            f"| {med(name, 'p999_ms'):.2f} | {ratio(name, 'p999_ms')} "
            f"| {med(name, 'cpu_pct'):.0f} "
            f"| {med(name, 'user_us'):.1f} + {med(name, 'sys_us'):.1f} "
            f"| {med(name, 'rss_mib'):.0f} "
            f"| {'-' if lag != lag else f'{lag:.1f} ({own:.1f})'} "
            f"| {dropped if lag == lag else '-'} | {errs} |"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
