"""The access log's cost on the proxy's hot path, against the usual way: a ``logging``
FileHandler writing one formatted line per request (what most dev proxies do).

    .venv/bin/python bench/bench_access_log.py [--records 100000] [--runs 5]

homeport: ``AccessWriter.sink(record)`` per request (a deque append); a thread batches the
          records into SQLite (WAL) and keeps the ring at 100,000 rows. Measured: the time
          spent in ``sink`` calls (hot path), and the time until every record is on disk.
logging:  ``logger.info(...)`` per request into a FileHandler (hot path = everything).
Interleaved, median of the runs, ratio reported.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from homeport.gateway.contract import AccessRecord
from homeport.store import AccessWriter, Store


def records(n: int) -> list[AccessRecord]:
    return [
        AccessRecord(
            time.time(),
            "127.0.0.1",
            40000 + i % 20000,
            "api.localhost:62893",
            "GET",
            f"/items/{i}",
            200,
            0,
            512,
            0.4,
            "api.localhost",
        )
        for i in range(n)
    ]


def homeport_run(recs: list[AccessRecord], tmp: Path) -> tuple[float, float]:
    path = tmp / f"h{time.monotonic_ns()}.db"
    Store(path).close()
    writer = AccessWriter(path, backlog=len(recs))  # a burst bigger than the default 50k
    writer.start()
    sink = writer.sink
    t0 = time.perf_counter()
    for r in recs:
        sink(r)
    hot = time.perf_counter() - t0
    writer.close()  # final flush
    total = time.perf_counter() - t0
    assert writer.written == len(recs), (writer.written, writer.dropped)
    return hot, total


def logging_run(recs: list[AccessRecord], tmp: Path) -> tuple[float, float]:
    log = logging.getLogger(f"bench.{time.monotonic_ns()}")
    log.propagate = False
    log.setLevel(logging.INFO)
    handler = logging.FileHandler(tmp / f"l{time.monotonic_ns()}.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    log.addHandler(handler)
    t0 = time.perf_counter()
    for r in recs:
        log.info(
            "%s:%d %s %s%s %d %d %.1fms",
            r.client_addr,
            r.client_port,
            r.method,
            r.host,
            r.path,
            r.status,
            r.bytes_out,
            r.duration_ms,
        )
    hot = time.perf_counter() - t0
    handler.close()
    return hot, time.perf_counter() - t0


def machine() -> str:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (
        f"nproc {os.cpu_count()}, kernel {platform.release()}, {cpu}, "
        f"load {os.getloadavg()[0]:.1f}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    recs = records(args.records)
    res: dict[str, list[tuple[float, float]]] = {"homeport": [], "logging": []}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for _ in range(args.runs):
            res["homeport"].append(homeport_run(recs, tmp))
            res["logging"].append(logging_run(recs, tmp))
    print(machine())
    print(f"{args.records} records, median of {args.runs} interleaved runs")
    med = {
        k: (statistics.median(h for h, _ in v), statistics.median(t for _, t in v))
        for k, v in res.items()
    }
    for k, (hot, total) in med.items():
        print(
            f"{k:9} hot path {hot / args.records * 1e9:8.0f} ns/request   "
            f"until on disk {args.records / total:10,.0f} req/s"
        )
    print(f"ratio logging/homeport hot-path cost: {med['logging'][0] / med['homeport'][0]:.1f}x")


if __name__ == "__main__":
    main()
