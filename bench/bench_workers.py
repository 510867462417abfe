"""``homeport up --workers N`` (issue 9, item 4): scaling from 1 to 2 gateway processes,
beside nginx going from 1 to 2 worker processes, in the same interleaved rounds.

    .venv/bin/python bench/bench_workers.py [--duration 5] [--rounds 3] [--only small,close]

Nothing is pinned: the proxies, wrk (``-t1 -c50``) and the nginx backend share the machine's
cores, which is what a user running ``--workers 2`` on a laptop gets. On a 2-core machine the
second gateway process competes with wrk and the backend for the second core, so the ratio
is what two cores allow, not what the gateway could do with a core of its own. The daemon
runs as a user starts it (the installed console script, default settings, one route).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import bench_gateway as bg  # the same helpers: nginx, wrk, the daemon

NGINX = bg.NGINX_PROXY.replace("worker_processes 1;", "worker_processes {workers};")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--only", default="small,close")
    args = ap.parse_args()
    bg.CORE_LOAD = None  # wrk unpinned
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} · {bg.machine()}")
    print(f"# nothing pinned, {os.cpu_count()} cores · load {os.getloadavg()}")
    with tempfile.TemporaryDirectory(prefix="hp-bench-w-") as tmp:
        d = Path(tmp)
        d.chmod(0o755)
        bg.LOGS = d
        (d / "pct.lua").write_text(bg.LUA)
        backend, bport = bg.start_backend(d)
        procs: list[bg.Proc] = [backend]
        daemons: list[bg.Daemon] = []
        ports: dict[str, int] = {}
        pids: dict[str, int] = {}
        try:
            for n in (1, 2):
                daemons.append(bg.start_daemon(d, bport, None, extra=("--workers", str(n))))
                name = f"homeport up --workers {n}"
                ports[name], pids[name] = daemons[-1].port, daemons[-1].pid
            for n in (1, 2):
                port = bg.free_port()
                sub = d / f"nginx{n}"
                sub.mkdir()
                conf = sub / "proxy.conf"
                conf.write_text(NGINX.format(d=sub, port=port, backend=bport, workers=n))
                procs.append(
                    bg.spawn(f"nginx{n}", ["nginx", "-c", str(conf), "-p", str(sub)], None)
                )
                ports[f"nginx {n} worker(s)"], pids[f"nginx {n} worker(s)"] = (
                    port,
                    procs[-1].popen.pid,
                )
            for port in ports.values():
                bg.wait_port(port)
            by_port = {dm.port: dm for dm in daemons}
            for scenario in args.only.split(","):
                path, extra = bg.SCENARIOS[scenario]
                for port in ports.values():
                    bg.wrk(port, path, extra, 1.0, args.connections)
                results: dict[str, list[bg.Result]] = {name: [] for name in ports}
                for _ in range(args.rounds):
                    for name, port in ports.items():
                        r = bg.measured(
                            name, port, pids[name], by_port.get(port),
                            bg.SCENARIOS[scenario], args.duration, args.connections,
                        )  # fmt: skip
                        results[name].append(r)
                report(scenario, results, args)
        finally:
            for dm in daemons:
                dm.stop()
            for p in reversed(procs):
                p.stop()
    print(f"# load after: {os.getloadavg()}")
    return 0


def report(scenario: str, results: dict[str, list[bg.Result]], args: argparse.Namespace) -> None:
    def med(name: str, attr: str) -> float:
        return statistics.median(getattr(r, attr) for r in results[name])

    load = os.getloadavg()
    print(f"\n## {scenario} (wrk -c{args.connections}, median of {args.rounds}; load {load})")
    print("| target | req/s | p50 ms | p99 ms | p99.9 ms | CPU % | RSS MiB | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name in results:
        print(
            f"| {name} | {med(name, 'rps'):,.0f} | {med(name, 'p50_ms'):.2f} | "
            f"{med(name, 'p99_ms'):.2f} | {med(name, 'p999_ms'):.2f} | "
            f"{med(name, 'cpu_pct'):.0f} | {med(name, 'rss_mib'):.0f} | "
            f"{sum(r.errors for r in results[name])} |"
        )
    up = med("homeport up --workers 2", "rps") / med("homeport up --workers 1", "rps")
    ng = med("nginx 2 worker(s)", "rps") / med("nginx 1 worker(s)", "rps")
    print(f"\nscaling 1 -> 2: homeport {up:.2f}x, nginx {ng:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
