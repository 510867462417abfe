"""Benchmark: ``homeport audit`` of 50 listeners of mixed kinds vs ``nmap -sV`` on the same
ports, in the same run, interleaved; median of N runs (default 5) and the ratio.

Listeners (all on 127.0.0.1, ports picked free): redis-server x10 (half with requirepass),
memcached x7, nginx (one process, 14 ports), PostgreSQL x1 (if installed), and fakes from
tests/integration/audit_fakes.py, in a process of their own, for Node inspector, Chrome
DevTools, Jupyter, MCP, Ollama, OpenAI-compatible, Docker API, etcd (x2 each, safe and
unsafe) and JDWP x2 — 50 in all (49 without PostgreSQL). Accuracy: every port that nmap
identifies by probing (``method="probed"``) must be identified by homeport too.

    .venv/bin/python bench/bench_audit.py [--runs 5] [--nmap-intensity 7]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import portpicker

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))
sys.path.insert(0, str(ROOT / "src"))

import audit_fakes as fakes  # noqa: E402

from homeport.audit import AuditConfig, audit  # noqa: E402
from homeport.inventory import listeners  # noqa: E402

PG = Path("/usr/lib/postgresql/15/bin")


def _wait(port: int, limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing on {port}")


class Lab:
    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.ports: list[int] = []
        self.dir = Path(tempfile.mkdtemp(prefix="hp-bench-audit-"))
        self.dir.chmod(0o755)

    def spawn(self, argv: list[str], ports: list[int]) -> None:
        self.procs.append(
            subprocess.Popen(
                argv, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
        )
        for p in ports:
            _wait(p)
        self.ports += ports

    def stop(self) -> None:
        for p in self.procs:
            if p.stdin is not None:
                p.stdin.close()
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGINT)
        for p in self.procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def _redis(lab: Lab, n: int) -> None:
    for i in range(n):
        port = portpicker.pick_unused_port()
        argv = [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(lab.dir),
            "--protected-mode",
            "no",
        ]
        lab.spawn(argv + (["--requirepass", "bench"] if i % 2 else []), [port])


def _memcached(lab: Lab, n: int) -> None:
    for _ in range(n):
        port = portpicker.pick_unused_port()
        lab.spawn(
            ["memcached", "-u", "memcache", "-l", "127.0.0.1", "-p", str(port), "-U", "0"], [port]
        )


def _nginx(lab: Lab, n: int) -> None:
    ports = [portpicker.pick_unused_port() for _ in range(n)]
    d = lab.dir
    servers = "\n".join(
        f"server {{ listen 127.0.0.1:{p}; location / {{ return 200 'hi'; }} }}" for p in ports
    )
    conf = d / "nginx.conf"
    conf.write_text(
        f"error_log {d}/nginx.err;\nevents {{}}\nhttp {{ access_log off;\n"
        f"client_body_temp_path {d}/b; proxy_temp_path {d}/p;\n"
        f"fastcgi_temp_path {d}/f; uwsgi_temp_path {d}/u; scgi_temp_path {d}/s;\n"
        f"{servers}\n}}\n"
    )
    lab.spawn(
        ["nginx", "-e", f"{d}/nginx.err", "-c", str(conf), "-g", f"daemon off; pid {d}/nginx.pid;"],
        ports,
    )


def _postgres(lab: Lab) -> None:
    if not (PG / "initdb").exists():
        return
    data = lab.dir / "pg"
    shutil.chown(lab.dir, "postgres")
    subprocess.run(
        [
            "runuser",
            "-u",
            "postgres",
            "--",
            str(PG / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "--no-sync",
        ],
        check=True,
        capture_output=True,
    )
    port = portpicker.pick_unused_port()
    lab.spawn(
        [
            "runuser",
            "-u",
            "postgres",
            "--",
            str(PG / "postgres"),
            "-D",
            str(data),
            "-k",
            str(lab.dir),
            "-p",
            str(port),
            "-c",
            "listen_addresses=127.0.0.1",
        ],
        [port],
    )
    _pg_ready(port)


def _pg_ready(port: int, limit: float = 60.0) -> None:
    """Logins are refused while PostgreSQL starts: wait for AuthenticationOk, bounded."""
    from homeport.audit.catalogue import probe

    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        with socket.create_connection(("127.0.0.1", port), 2) as s:
            s.sendall(probe("postgres-startup").payload)
            if s.recv(9).startswith(b"R"):
                return
        time.sleep(0.1)
    raise RuntimeError("PostgreSQL never accepted a login")


def serve_fakes() -> None:
    """Child mode: run the fakes in their own process (threads here would share the GIL
    with the audit being timed), print their ports, serve until stdin closes."""
    with contextlib.ExitStack() as stack:
        ports = []
        for make in (
            fakes.inspector,
            fakes.cdp,
            fakes.jupyter,
            fakes.mcp,
            fakes.ollama,
            fakes.openai,
            fakes.docker,
            fakes.etcd,
        ):
            for safe in (False, True):
                ports.append(stack.enter_context(fakes.serve_http(make, safe)))
        ports += [stack.enter_context(fakes.serve_jdwp()) for _ in range(2)]
        sys.stdout.write(" ".join(map(str, ports)) + "\n")
        sys.stdout.flush()
        with contextlib.suppress(KeyboardInterrupt):
            sys.stdin.read()  # the parent closes our stdin (or interrupts us) to stop us


def _fakes(lb: Lab) -> None:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve-fakes"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    lb.procs.append(proc)  # type: ignore[arg-type]
    lb.ports += [int(p) for p in proc.stdout.readline().split()]  # the readiness line


@contextlib.contextmanager
def lab() -> Iterator[list[int]]:
    lb = Lab()
    try:
        _redis(lb, 10)
        _memcached(lb, 7)
        _nginx(lb, 14)
        _postgres(lb)
        _fakes(lb)
        yield lb.ports
    finally:
        lb.stop()


@contextlib.contextmanager
def probe_address() -> Iterator[str | None]:
    """An address of the benchmark's own, on a veth pair it creates (RFC 2544 range), so the
    outside-in probe runs as users get it but aims only at a host this run made. Without
    root there is no outside-in probe at all (None)."""
    if os.geteuid() != 0:
        yield None
        return
    tag = f"{os.getpid() % 100000}"
    dev, address = f"hpb{tag}", f"198.18.{random.randrange(2, 200)}.{random.randrange(2, 250)}"
    subprocess.run(
        ["ip", "link", "add", dev, "type", "veth", "peer", "name", dev + "p"], check=True
    )
    try:
        subprocess.run(["ip", "addr", "add", f"{address}/32", "dev", dev], check=True)
        subprocess.run(["ip", "link", "set", dev, "up"], check=True)
        subprocess.run(["ip", "link", "set", dev + "p", "up"], check=True)
        yield address
    finally:
        subprocess.run(["ip", "link", "del", dev], check=False)


def run_homeport(ports: list[int], address: str | None) -> tuple[float, dict[int, str]]:
    t0 = time.perf_counter()
    wanted = set(ports)
    mine = [x for x in listeners(udp=False) if x.port in wanted and x.address == "127.0.0.1"]
    # Never the machine's real interfaces: only the address this benchmark created.
    cfg = AuditConfig(probe_addresses=(address,)) if address else AuditConfig(outside=False)
    report = audit(cfg, listeners=mine)
    took = time.perf_counter() - t0
    found = {x.listener.port: (x.identity.service if x.identity else "") for x in report.listeners}
    return took, found


def run_nmap(ports: list[int], intensity: int) -> tuple[float, dict[int, str]]:
    argv = [
        "nmap",
        "-sV",
        "-Pn",
        "-n",
        "--version-intensity",
        str(intensity),
        "-p",
        ",".join(map(str, ports)),
        "-oX",
        "-",
        "127.0.0.1",
    ]
    t0 = time.perf_counter()
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    took = time.perf_counter() - t0
    found: dict[int, str] = {}
    for port in ET.fromstring(out).iter("port"):
        svc = port.find("service")
        # "tcpwrapped" means nmap got no answer it could read: not an identification.
        if svc is not None and svc.get("method") == "probed" and svc.get("name") != "tcpwrapped":
            name = svc.get("name", "")
            product = svc.get("product")
            found[int(port.get("portid", "0"))] = name + (f" ({product})" if product else "")
    return took, found


def machine() -> str:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"nproc={os.cpu_count()} kernel={platform.release()} cpu={cpu}"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--nmap-intensity", type=int, default=7)
    ap.add_argument("--serve-fakes", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_fakes:
        serve_fakes()
        return 0
    if shutil.which("nmap") is None:
        print("nmap is not installed (apt-get install nmap)")
        return 3
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} {machine()}")
    with lab() as ports, probe_address() as address:
        print(
            f"{len(ports)} listeners; outside-in probe aimed at {address or 'nothing (not root)'}"
        )
        hp_t: list[float] = []
        nm_t: list[float] = []
        hp_found: dict[int, str] = {}
        nm_found: dict[int, str] = {}
        for i in range(args.runs):  # interleaved: load changes hit both alike
            t, hp_found = run_homeport(ports, address)
            hp_t.append(t)
            t2, nm_found = run_nmap(ports, args.nmap_intensity)
            nm_t.append(t2)
            print(f"run {i + 1}: homeport {t:.2f}s  nmap -sV {t2:.2f}s")
    hp_med, nm_med = statistics.median(hp_t), statistics.median(nm_t)
    hp_ids = {p for p, s in hp_found.items() if s}
    missed = sorted(set(nm_found) - hp_ids)
    print(
        f"median: homeport {hp_med:.2f}s, nmap -sV {nm_med:.2f}s, "
        f"ratio nmap/homeport {nm_med / hp_med:.1f}x"
    )
    print(f"identified: homeport {len(hp_ids)}/{len(ports)}, nmap {len(nm_found)}/{len(ports)}")
    for p in sorted(ports):
        print(f"  {p:5d}  homeport={hp_found.get(p) or '-':18s}  nmap={nm_found.get(p, '-')}")
    if missed:
        print(f"MISSED by homeport but identified by nmap: {missed}")
        return 1
    print("homeport identified every service nmap identified")
    return 0


if __name__ == "__main__":
    sys.exit(main())
