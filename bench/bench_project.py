"""A 20-service stack: wall time from ``homeport up`` to all ready, against honcho and the
critical path; supervisor RSS and idle CPU beside honcho's.

Runs alone: ``.venv/bin/python bench/bench_project.py [--runs 5] [--delay 0.2]``.

The stack: 20 small real servers (``python`` that sleeps ``--delay`` seconds, then listens on
$PORT and accepts), in 5 chains of depth 4: ``s{k}_{i}`` depends on ``s{k-1}_{i}`` being ready.
Per run, interleaved:

- **critical path**: one chain started by hand, each server spawned once the previous one
  accepts (spawn -> first accept, summed): what the stack cannot beat. Measured alone, it
  does not pay for 5 chains sharing the CPU; so the critical path *inside* each homeport run
  is reported too (the longest chain's sum of spawn -> ready, from the daemon's records);
- **homeport**: ``homeport up -d`` (a real CLI process; the daemon already runs, as after the
  first ``up``) until it returns with every service ready; then ``homeport down``;
- **honcho, chained**: honcho (PyPI) with the same 20 servers, each Procfile command waiting
  for its dependency's port first (the Procfile way to express an order), until all 20
  accept (polled from outside);
- **honcho, plain**: the same without the waits (no order at all: a lower bound that does not
  do what the stack needs).

Reported: medians, homeport's overhead over the critical path (target <= 100 ms), and, with
the 20 services running, each supervisor's RSS and its CPU over an idle ``--idle`` seconds
(target <= 0.5 % of a core). Every process it starts is stopped by process group.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil

PY = sys.executable
CHAINS, DEPTH = 5, 4

SERVER = textwrap.dedent(
    """
    import os, socket, sys, time
    time.sleep(float(os.environ.get("DELAY", "0.2")))
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", int(os.environ["PORT"])))
    s.listen(64)
    while True:
        c, _ = s.accept()
        c.close()
    """
)
WAIT = textwrap.dedent(
    """
    import socket, sys, time
    port = int(sys.argv[1])
    while True:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.005)
    """
)


def names() -> list[tuple[str, str | None]]:
    out = []
    for k in range(DEPTH):
        for i in range(CHAINS):
            out.append((f"s{k}-{i}", f"s{k - 1}-{i}" if k else None))
    return out


def accepts(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        try:
            s.connect(("127.0.0.1", port))
        except OSError:
            return False
        return s.getsockname() != s.getpeername()


def wait_ports(ports: list[int], limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    todo = list(ports)
    while todo:
        todo = [p for p in todo if not accepts(p)]
        if todo and time.monotonic() > deadline:
            raise RuntimeError(f"ports {todo} never accepted")
        if todo:
            time.sleep(0.002)  # an outside poll is all honcho offers


def free_ports(n: int) -> list[int]:
    from homeport.ports import free_port

    return [free_port(ttl=600) for _ in range(n)]


def stop_group(proc: subprocess.Popen[Any]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


# -- the runs -----------------------------------------------------------------------------


def critical_path(root: Path, delay: float) -> float:
    total = 0.0
    procs = []
    try:
        for port in free_ports(DEPTH):
            t0 = time.monotonic()
            p = subprocess.Popen(
                [PY, "server.py"], cwd=root, env={**os.environ, "PORT": str(port),
                "DELAY": str(delay)}, start_new_session=True,
            )  # fmt: skip
            procs.append(p)
            wait_ports([port])
            total += time.monotonic() - t0
    finally:
        for p in procs:
            stop_group(p)
    return total


class Homeport:
    def __init__(self, root: Path, delay: float) -> None:
        self.root = root
        self.state = root / "state"
        self.state.mkdir(mode=0o700)
        self.env = {**os.environ, "HOMEPORT_STATE_DIR": str(self.state),
                    "HOMEPORT_PORT": str(free_ports(1)[0]), "NO_COLOR": "1"}  # fmt: skip
        lines = []
        for name, dep in names():
            lines += [f"[services.{name}]", f'args = ["{PY}", "server.py"]',
                      f'env = {{ DELAY = "{delay}" }}', "route = false"]  # fmt: skip
            if dep:
                lines.append(f'depends_on = ["{dep}"]')
        (root / "homeport.toml").write_text('[project]\nname = "bench"\n' + "\n".join(lines))
        self.cli("up", "--gateway", "-d")
        self.parts: dict[str, list[float]] = {"first_spawn": [], "gap": [], "exit": []}

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([PY, "-m", "homeport", *args], cwd=self.root, env=self.env,
                              capture_output=True, text=True, check=True, timeout=120)  # fmt: skip

    def up(self) -> tuple[float, float]:
        """(wall seconds of ``homeport up -d``, the critical path inside that run: the longest
        chain's sum of its services' own start times, spawn to ready, from the daemon's
        records: the same servers under the same load as the stack itself)."""
        t0, wall0 = time.monotonic(), time.time()
        done = self.cli("up", "-d", "--json")
        wall = time.monotonic() - t0
        by = {s["name"]: s for s in json.loads(done.stdout)["project"]["services"]}
        chains = [
            sum(by[f"s{k}-{i}"]["ready_since"] - by[f"s{k}-{i}"]["started"] for k in range(DEPTH))
            for i in range(CHAINS)
        ]
        # Where homeport's own time goes: CLI start to the first spawn; each dependent's
        # spawn after its dependency was ready; the last ready to the CLI's exit.
        self.parts["first_spawn"].append(min(x["started"] for x in by.values()) - wall0)
        self.parts["gap"] += [
            by[f"s{k}-{i}"]["started"] - by[f"s{k - 1}-{i}"]["ready_since"]
            for k in range(1, DEPTH)
            for i in range(CHAINS)
        ]
        self.parts["exit"].append(wall0 + wall - max(x["ready_since"] for x in by.values()))
        return wall, max(chains)

    def down(self) -> None:
        self.cli("down")

    def daemon(self) -> psutil.Process:
        info = json.loads((self.state / "daemon.json").read_text())
        return psutil.Process(int(info["pid"]))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.cli("down", "--all")


def procfile(root: Path, delay: float, chained: bool) -> list[int]:
    ports = free_ports(CHAINS * DEPTH)
    port_of = {n: p for (n, _), p in zip(names(), ports, strict=True)}
    lines = []
    for name, dep in names():
        run = f"PORT={port_of[name]} DELAY={delay} exec {PY} server.py"
        if chained and dep:
            run = f"{PY} wait.py {port_of[dep]} && {run}"
        lines.append(f"{name}: {run}")
    (root / "Procfile").write_text("\n".join(lines) + "\n")
    return ports


def honcho_up(root: Path, delay: float, chained: bool, idle: float = 0.0) -> dict[str, float]:
    ports = procfile(root, delay, chained)
    honcho = shutil.which("honcho", path=str(Path(PY).parent)) or "honcho"
    t0 = time.monotonic()
    proc = subprocess.Popen([honcho, "start", "-f", "Procfile"], cwd=root,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip
    try:
        wait_ports(ports)
        out = {"up": time.monotonic() - t0}
        if idle:
            out.update(usage(psutil.Process(proc.pid), idle))
        return out
    finally:
        stop_group(proc)


def usage(p: psutil.Process, seconds: float) -> dict[str, float]:
    before = p.cpu_times()
    time.sleep(seconds)  # the measurement window itself
    after = p.cpu_times()
    cpu = (after.user - before.user + after.system - before.system) / seconds
    return {"rss_mb": p.memory_info().rss / 2**20, "idle_cpu_pct": 100 * cpu}


@contextlib.contextmanager
def workdir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="hp-bench-project-"))
    (d / "server.py").write_text(SERVER)
    (d / "wait.py").write_text(WAIT)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--delay", type=float, default=0.2)
    ap.add_argument("--idle", type=float, default=10.0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    res: dict[str, list[float]] = {"critical": [], "critical_in_run": [], "homeport": [],
                                   "honcho_chained": [], "honcho_plain": []}  # fmt: skip
    with workdir() as root:
        hp = Homeport(root, args.delay)
        try:
            for _ in range(args.runs):
                res["critical"].append(critical_path(root, args.delay))
                wall, in_run = hp.up()
                res["homeport"].append(wall)
                res["critical_in_run"].append(in_run)
                hp.down()
                res["honcho_chained"].append(honcho_up(root, args.delay, True)["up"])
                res["honcho_plain"].append(honcho_up(root, args.delay, False)["up"])
            hp_base = usage(hp.daemon(), args.idle)
            hp.up()
            hp_usage = usage(hp.daemon(), args.idle)
            hp.down()
            honcho_usage = honcho_up(root, args.delay, True, idle=args.idle)
        finally:
            hp.close()
    med = {k: statistics.median(v) for k, v in res.items()}
    report = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cpus",
        "load": os.getloadavg(),
        "runs": args.runs,
        "delay_s": args.delay,
        "median_s": {k: round(v, 3) for k, v in med.items()},
        "homeport_overhead_ms": round(1000 * (med["homeport"] - med["critical"]), 1),
        "homeport_overhead_in_run_ms": round(
            1000
            * statistics.median(
                w - c for w, c in zip(res["homeport"], res["critical_in_run"], strict=True)
            ),
            1,
        ),
        "honcho_chained_overhead_ms": round(1000 * (med["honcho_chained"] - med["critical"]), 1),
        "ratio_homeport_to_honcho_chained": round(med["homeport"] / med["honcho_chained"], 3),
        "homeport_parts_ms": {
            k: round(1000 * statistics.median(v), 1) for k, v in hp.parts.items() if v
        },
        "homeport_daemon": {k: round(v, 2) for k, v in hp_usage.items()},
        "homeport_daemon_no_project": {k: round(v, 2) for k, v in hp_base.items()},
        "honcho": {k: round(v, 2) for k, v in honcho_usage.items() if k != "up"},
        "all_s": {k: [round(x, 3) for x in v] for k, v in res.items()},
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    for k, v in report.items():
        print(f"{k:34} {v}")


if __name__ == "__main__":
    main()
