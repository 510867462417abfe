"""What an idle gateway costs: CPU and wakeups of ``homeport up`` with 20 routes, nobody
watching, beside an idle nginx (one worker) with 20 server blocks, in the same run.

    .venv/bin/python bench/bench_idle.py [--seconds 30] [--rounds 3] [--routes 20]

``homeport up -d`` (the console script as ``pip install .`` installs it, ``make compiled``'s
``.venv-compiled``, else the editable ``.venv``; its own HOME and XDG_STATE_HOME) gets
``--routes`` routes with ``homeport route add``; then, after a settling period of
``--settle`` seconds, CPU time (utime + stime of every thread, ``/proc/PID/task/*/stat``)
and wakeups are counted over ``--seconds``. A wakeup is a thread that slept being made
runnable again: its voluntary context switches (``/proc/PID/task/*/status``), summed over
the process's threads. Beside it, the times a thread was put on a CPU at all (the third
field of ``/proc/PID/task/TID/schedstat``, ``pcount``), which on a loaded machine also
counts every preemption of a thread that was busy. Rounds alternate homeport and nginx;
medians are reported. Targets (issue 9): <= 0.2% of one core and <= 2 wakeups a second.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: The install (compiled), else the editable pure-Python one; the run prints which.
INSTALLED = ROOT / ".venv-compiled" / "bin" / "homeport"
HOMEPORT = INSTALLED if INSTALLED.exists() else ROOT / ".venv" / "bin" / "homeport"
NGINX = """
worker_processes 1; daemon off; pid {d}/nginx.pid; error_log {d}/nginx.err;
events {{ worker_connections 256; }}
http {{ access_log off;
{servers}
}}
"""
SERVER = "  server {{ listen 127.0.0.1:{port}; server_name r{i}.localhost; return 200; }}\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def counters(pid: int) -> tuple[float, int, int]:
    """(CPU seconds, schedule count, voluntary switches) summed over ``pid``'s threads and
    the processes below it (nginx's worker)."""
    hz = os.sysconf("SC_CLK_TCK")
    cpu, runs, vol = 0.0, 0, 0
    for p in [pid, *children(pid)]:
        for task in Path(f"/proc/{p}/task").iterdir():
            try:
                stat = (task / "stat").read_text().rpartition(")")[2].split()
                sched = (task / "schedstat").read_text().split()
                status = (task / "status").read_text()
            except OSError:
                continue  # a thread that ended meanwhile
            cpu += (int(stat[11]) + int(stat[12])) / hz
            runs += int(sched[2])
            for line in status.splitlines():
                if line.startswith("voluntary_ctxt_switches:"):
                    vol += int(line.split()[1])
    return cpu, runs, vol


def children(pid: int) -> list[int]:
    out = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                ppid = Path(f"/proc/{entry.name}/stat").read_text().rpartition(")")[2].split()[1]
            except OSError:
                continue
            if int(ppid) == pid:
                out.append(int(entry.name))
    return out


def measure(pid: int, seconds: float) -> tuple[float, float, float]:
    """(% of one core, on-CPU runs/s, voluntary switches/s) over ``seconds``."""
    c0, r0, v0 = counters(pid)
    t0 = time.monotonic()
    time.sleep(seconds)  # the measurement window itself, not a readiness wait
    c1, r1, v1 = counters(pid)
    dt = time.monotonic() - t0
    return 100.0 * (c1 - c0) / dt, (r1 - r0) / dt, (v1 - v0) / dt


def start_homeport(d: Path, routes: int) -> tuple[dict[str, str], int]:
    home = d / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOMEPORT_")}
    env |= {"HOME": str(home), "XDG_STATE_HOME": str(home / "state")}
    argv = [str(HOMEPORT), "up", "-d", "--json", "--port", str(free_port())]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=True)
    pid = int(json.loads(done.stdout)["pid"])
    for i in range(routes):
        subprocess.run(
            [str(HOMEPORT), "route", "add", f"r{i}", str(free_port())],
            env=env,
            capture_output=True,
            timeout=30,
            check=True,
        )
    return env, pid


def start_nginx(d: Path, routes: int) -> subprocess.Popen[bytes]:
    port = free_port()
    servers = "".join(SERVER.format(port=port, i=i) for i in range(routes))
    (d / "nginx.conf").write_text(NGINX.format(d=d, servers=servers))
    return subprocess.Popen(
        ["nginx", "-c", str(d / "nginx.conf"), "-p", str(d)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--settle", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--routes", type=int, default=20)
    args = ap.parse_args()
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} · load {os.getloadavg()}")
    print(f"# homeport: {HOMEPORT}")
    results: dict[str, list[tuple[float, float, float]]] = {"homeport up": [], "nginx": []}
    with tempfile.TemporaryDirectory(prefix="hp-idle-") as tmp:
        d = Path(tmp)
        env, pid = start_homeport(d, args.routes)
        nginx = start_nginx(d, args.routes) if shutil.which("nginx") else None
        try:
            time.sleep(args.settle)  # start-up work (first inventory sample, imports) ends
            for _ in range(args.rounds):
                results["homeport up"].append(measure(pid, args.seconds))
                if nginx is not None:
                    results["nginx"].append(measure(nginx.pid, args.seconds))
        finally:
            subprocess.run([str(HOMEPORT), "down"], env=env, capture_output=True, timeout=30)
            if nginx is not None:
                os.killpg(nginx.pid, signal.SIGTERM)
                nginx.wait(10)
    print(f"\n## idle, {args.routes} routes, {args.seconds:g} s windows, median of {args.rounds}")
    print("| target | CPU % of a core | wakeups/s (voluntary switches) | on-CPU runs/s |")
    print("|---|---:|---:|---:|")
    for name, rows in results.items():
        if rows:
            cpu, runs, vol = (statistics.median(r[i] for r in rows) for i in range(3))
            print(f"| {name} | {cpu:.3f} | {vol:.2f} | {runs:.2f} |")
    print(f"# load after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
