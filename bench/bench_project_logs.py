"""A service printing 10,000 lines a second: does ``logs -f`` get every line, and does the
gateway's p99 suffer? (issue 10: no loss, p99 no more than 10 % worse)

Runs alone: ``.venv/bin/python bench/bench_project_logs.py [--rounds 3] [--duration 5]``.

One project on a private daemon: ``web`` is nginx (one worker, ``/small``) behind the
gateway as ``web.bench.localhost``; ``chatty`` is a Python process printing numbered lines at
10,000 a second. Per round, interleaved: wrk ``-t1 -c50`` through the gateway with chatty
stopped, then with chatty running and a ``homeport logs -f --json chatty`` reading along.
Reported: the median p99 of each, their ratio, requests/s, and the lines the follower missed
(gaps in the numbers between the first and the last line it saw).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

PY = sys.executable
NGINX = textwrap.dedent(
    """
    worker_processes 1; daemon off; pid nginx.pid; error_log stderr;
    events { worker_connections 4096; }
    http { access_log off; keepalive_requests 1000000;
      server { listen 127.0.0.1:PORT;
        location = /small { default_type text/plain; return 200 "hello, world\\n"; } } }
    """
)
CHATTY = textwrap.dedent(
    """
    import sys, time
    t0, i = time.monotonic(), 0
    while True:
        for _ in range(100):
            sys.stdout.write(f"line {i}\\n")
            i += 1
        sys.stdout.flush()
        time.sleep(max(0.0, t0 + i / 10000 - time.monotonic()))
    """
)
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


class Stack:
    def __init__(self, root: Path) -> None:
        from homeport.ports import free_port

        self.root = root
        (root / "state").mkdir(mode=0o700)
        self.port = free_port(ttl=600)
        self.env = {**os.environ, "HOMEPORT_STATE_DIR": str(root / "state"),
                    "HOMEPORT_PORT": str(self.port), "NO_COLOR": "1"}  # fmt: skip
        (root / "nginx.tmpl").write_text(NGINX)
        (root / "chatty.py").write_text(CHATTY)
        (root / "homeport.toml").write_text(
            '[project]\nname = "bench"\n'
            "[services.web]\n"
            'cmd = "sed s/PORT/$PORT/ nginx.tmpl > nginx.conf && exec nginx -p . -c nginx.conf"\n'
            'stop_signal = "SIGQUIT"\n'
            "[services.chatty]\n"
            f'args = ["{PY}", "chatty.py"]\nport = false\n'
        )
        self.cli("up", "-d", "web")

    def cli(self, *args: str) -> str:
        done = subprocess.run([PY, "-m", "homeport", *args], cwd=self.root, env=self.env,
                              capture_output=True, text=True, check=True, timeout=120)  # fmt: skip
        return done.stdout

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.cli("down", "--all")


def wrk(port: int, duration: float) -> tuple[float, float]:
    out = subprocess.run(
        ["wrk", "-t1", "-c50", f"-d{max(1, round(duration))}s", "--latency",
         "-H", f"Host: web.bench.localhost:{port}", f"http://127.0.0.1:{port}/small"],
        capture_output=True, text=True, timeout=duration + 30,
    ).stdout  # fmt: skip
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    if rps is None or p99 is None:
        raise RuntimeError(f"wrk failed: {out}")
    return float(rps.group(1)), float(p99.group(1)) * UNITS[p99.group(2)]


class Follower:
    """``homeport logs -f --json chatty`` in a thread, keeping the line numbers it saw."""

    def __init__(self, stack: Stack) -> None:
        # --since 0s: only this run's lines (the ring still holds the previous run's).
        argv = [PY, "-m", "homeport", "logs", "-f", "--json", "--since", "0s", "chatty"]
        self.proc = subprocess.Popen(argv,
                                     cwd=stack.root, env=stack.env, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)  # fmt: skip
        self.seen: list[int] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.seen.append(int(json.loads(raw)["line"].split()[1]))

    def stop(self) -> dict[str, int]:
        self.proc.kill()
        self.proc.communicate()
        self.thread.join(5)
        s = self.seen
        expected = (s[-1] - s[0] + 1) if s else 0
        return {"lines": len(s), "missed": expected - len(set(s))}


@contextlib.contextmanager
def workdir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="hp-bench-logs-"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=5.0)
    args = ap.parse_args()
    if shutil.which("wrk") is None or shutil.which("nginx") is None:
        sys.exit("needs wrk and nginx (Debian wrk, nginx-light)")
    quiet: list[tuple[float, float]] = []
    loud: list[tuple[float, float]] = []
    follow: list[dict[str, int]] = []
    with workdir() as root:
        stack = Stack(root)
        try:
            for _ in range(args.rounds):
                quiet.append(wrk(stack.port, args.duration))
                stack.cli("up", "-d", "chatty")
                f = Follower(stack)
                loud.append(wrk(stack.port, args.duration))
                time.sleep(0.5)  # let the follower catch the last lines (it reads as they come)
                follow.append(f.stop())
                stack.cli("stop", "chatty")
        finally:
            stack.close()
    p99_q = statistics.median(p for _, p in quiet)
    p99_l = statistics.median(p for _, p in loud)
    report: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cpus",
        "load": os.getloadavg(),
        "p99_ms_quiet": round(p99_q, 2),
        "p99_ms_with_10k_lines_s": round(p99_l, 2),
        "p99_ratio": round(p99_l / p99_q, 3),
        "rps_quiet": round(statistics.median(r for r, _ in quiet)),
        "rps_with_10k_lines_s": round(statistics.median(r for r, _ in loud)),
        "follower": follow,
        "rounds": {"quiet": quiet, "loud": loud},
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
