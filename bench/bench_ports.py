"""Parallel port picking: homeport vs portpicker vs naive bind(0), same run, interleaved.

8 processes each pick 500 ports as fast as they can, all at once (a start event opens
the gate after every worker has imported its library), and keep everything they got:
a port handed to two live workers is a collision. Reported per method: picks per
second per process and CPU time per pick (median over workers, then median over
rounds) and collisions (median over rounds), plus homeport's ratios to each peer. CPU
per pick is the number to trust on a shared machine: the wall-clock rate also measures
everyone else's load.

    .venv/bin/python bench/bench_ports.py [--rounds 5] [--procs 8] [--picks 500]
"""

from __future__ import annotations

import argparse
import datetime
import multiprocessing as mp
import os
import platform
import socket
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from pathlib import Path


def naive_bind0() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port: int = s.getsockname()[1]
    s.close()
    return port


def make_picker(method: str, lease_dir: str) -> Callable[[], int]:
    if method == "homeport":
        from homeport.ports import free_port

        return lambda: free_port(lease_dir=Path(lease_dir))
    if method == "portpicker":
        import portpicker

        return lambda: int(portpicker.pick_unused_port())
    return naive_bind0


Maker = Callable[[str, str], Callable[[], object]]


def worker(
    method: str, lease_dir: str, picks: int, gate: Event, out: Connection, make: Maker
) -> None:
    pick = make(method, lease_dir)
    gate.wait()
    t0, c0 = time.perf_counter(), time.process_time()
    got = [pick() for _ in range(picks)]
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    out.send((got, elapsed, cpu))
    out.recv()  # hold the leases (stay alive) until every worker has reported


def one_round(
    method: str, procs: int, picks: int, make: Maker = make_picker
) -> tuple[float, float, int]:
    """One round of ``procs`` workers; also bench_addr.py's, with its own ``make``."""
    ctx = mp.get_context("fork")
    gate = ctx.Event()
    with tempfile.TemporaryDirectory() as lease_dir:
        pipes, workers = [], []
        for _ in range(procs):
            parent, child = ctx.Pipe()
            p = ctx.Process(target=worker, args=(method, lease_dir, picks, gate, child, make))
            p.start()
            pipes.append(parent)
            workers.append(p)
        time.sleep(0.5)  # let every worker import and reach the gate (not timed)
        gate.set()
        results = [pipe.recv() for pipe in pipes]
        for pipe in pipes:
            pipe.send("done")
        for p in workers:
            p.join(timeout=60)
    rates = [picks / elapsed for _, elapsed, _ in results]
    cpu_us = [cpu / picks * 1e6 for _, _, cpu in results]
    counts = Counter(port for got, _, _ in results for port in got)
    collisions = sum(n - 1 for n in counts.values() if n > 1)
    return statistics.median(rates), statistics.median(cpu_us), collisions


def machine() -> str:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"nproc {os.cpu_count()}, kernel {platform.release()}, CPU {model}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--procs", type=int, default=8)
    ap.add_argument("--picks", type=int, default=500)
    args = ap.parse_args()
    methods = ["homeport", "portpicker", "bind0"]
    rates: dict[str, list[float]] = {m: [] for m in methods}
    cpus: dict[str, list[float]] = {m: [] for m in methods}
    colls: dict[str, list[int]] = {m: [] for m in methods}
    for r in range(args.rounds):
        order = methods[r % 3 :] + methods[: r % 3]  # interleave, rotating who goes first
        for m in order:
            rate, cpu, coll = one_round(m, args.procs, args.picks)
            rates[m].append(rate)
            cpus[m].append(cpu)
            colls[m].append(coll)
            print(
                f"round {r + 1} {m:10s} {rate:8.0f} picks/s/proc {cpu:7.0f} us CPU/pick"
                f" {coll:5d} collisions"
            )
    print(f"\n{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; {machine()}")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} (other work shares the CPUs)")
    print(f"{args.procs} processes x {args.picks} picks, median of {args.rounds} rounds")
    print(f"{'method':10s} {'picks/s/proc':>13s} {'CPU us/pick':>12s} {'collisions':>11s}")
    med = statistics.median
    for m in methods:
        print(f"{m:10s} {med(rates[m]):13.0f} {med(cpus[m]):12.0f} {med(colls[m]):11.0f}")
    for m in methods[1:]:
        print(
            f"homeport / {m}: {med(rates['homeport']) / med(rates[m]):.2f}x the pick rate, "
            f"{med(cpus['homeport']) / med(cpus[m]):.2f}x the CPU per pick"
        )


if __name__ == "__main__":
    main()
