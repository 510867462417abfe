"""What ``homeport run`` costs: time until a dev server answers, and time until it is fully
stopped, against starting the same server by hand (the peer), interleaved in one run.

    .venv/bin/python bench/bench_run.py [--runs 7]

direct:   python -m http.server PORT --bind 127.0.0.1 ; connect-loop until it accepts ; SIGTERM
homeport: homeport run --name bench -- python -m http.server ; until GET through the gateway by
          name answers 200 ; SIGINT (Ctrl-C) ; until the CLI exits with nothing left behind.

A private gateway runs on a free port with a temporary state directory.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import platform
import select
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PY = sys.executable


def free_port() -> int:
    from homeport.ports import free_port as pick

    return pick()


def connect_ok(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def direct_once(cwd: Path) -> tuple[float, float]:
    port = free_port()
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [PY, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    while not connect_ok(port):
        time.sleep(0.005)
    up = time.perf_counter() - t0
    t1 = time.perf_counter()
    proc.terminate()
    proc.wait(10)
    return up, time.perf_counter() - t1


def get_by_name(gw: int, host: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", gw, timeout=5)
    try:
        conn.request("GET", "/", headers={"Host": host})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def homeport_once(cwd: Path, gw: int) -> tuple[float, float]:
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [PY, "-m", "homeport", "run", "--name", "bench", "--", PY, "-m", "http.server"],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    assert proc.stdout is not None
    buf = b""
    while b" is at " not in buf:
        select.select([proc.stdout], [], [], 30)
        chunk = os.read(proc.stdout.fileno(), 65536)
        if not chunk:
            raise SystemExit(f"homeport run failed: {buf.decode(errors='replace')}")
        buf += chunk
    while get_by_name(gw, f"bench.localhost:{gw}") != 200:
        time.sleep(0.005)
    up = time.perf_counter() - t0
    t1 = time.perf_counter()
    os.kill(proc.pid, signal.SIGINT)
    proc.communicate(timeout=30)
    return up, time.perf_counter() - t1


def machine() -> str:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    load = os.getloadavg()[0]
    return (
        f"nproc {os.cpu_count()}, kernel {platform.release()}, {cpu}, "
        f"load {load:.1f}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["HOMEPORT_STATE_DIR"] = str(Path(tmp) / "state")
        gw = free_port()
        os.environ["HOMEPORT_PORT"] = str(gw)
        from homeport.daemon.config import DaemonConfig
        from homeport.daemon.process import start_background

        config = DaemonConfig.build()
        pid = int(start_background(config)["pid"])
        try:
            rows = {"direct": [], "homeport": []}  # type: dict[str, list[tuple[float, float]]]
            homeport_once(Path(tmp), gw)  # warm-up: imports, page cache
            for _ in range(args.runs):
                rows["direct"].append(direct_once(Path(tmp)))
                rows["homeport"].append(homeport_once(Path(tmp), gw))
        finally:
            os.kill(pid, signal.SIGTERM)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
    print(machine())
    med = {
        k: (statistics.median(u for u, _ in v), statistics.median(s for _, s in v))
        for k, v in rows.items()
    }
    print(f"{'':10} {'ready (median)':>15} {'stopped (median)':>17}   runs={args.runs}")
    for k, (u, s) in med.items():
        print(f"{k:10} {u * 1000:13.0f}ms {s * 1000:15.0f}ms")
    print(
        f"ratio homeport/direct: ready {med['homeport'][0] / med['direct'][0]:.2f}x, "
        f"stop {med['homeport'][1] / med['direct'][1]:.2f}x"
    )


if __name__ == "__main__":
    main()
