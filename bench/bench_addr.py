"""Parallel loopback address leasing: homeport vs a naive random-address bind test, same run.

8 processes each lease 200 addresses for port 8000 as fast as they can, all at once (a
start event opens the gate after every worker has imported homeport), and keep every
lease: an address handed to two live workers is a collision. The naive peer does what a
script would: pick a random 127.0.x.y, check that ADDR:8000 binds, use it (no lease).
Reported: picks per second per process and CPU time per pick (median over workers, then
over rounds), and collisions (median over rounds).

    .venv/bin/python bench/bench_addr.py [--rounds 5] [--procs 8] [--picks 200]
"""

from __future__ import annotations

import argparse
import datetime
import os
import random
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_ports import machine, one_round

POOL = "127.0.2.1-127.0.255.254"


def make_picker(method: str, lease_dir: str) -> Callable[[], str]:
    os.environ["HOMEPORT_HOSTS_FILE"] = os.devnull  # the pool, not this machine's names
    from homeport.ports.address import bind_free_on, pick_address
    from homeport.ports.addrpool import parse_pool

    pool = parse_pool(POOL)
    if method == "homeport":

        def leased() -> str:
            lease = pick_address(port=8000, pool=pool, lease_dir=Path(lease_dir))
            return str(lease.address)

        return leased
    rng = random.Random()

    def naive() -> str:
        while True:
            addr = f"127.0.{rng.randint(2, 255)}.{rng.randint(1, 254)}"
            if bind_free_on(addr, 8000):
                return addr

    return naive


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--procs", type=int, default=8)
    ap.add_argument("--picks", type=int, default=200)
    args = ap.parse_args()
    methods = ["homeport", "naive"]
    res: dict[str, list[tuple[float, float, int]]] = {m: [] for m in methods}
    for r in range(args.rounds):
        for m in methods[r % 2 :] + methods[: r % 2]:  # interleaved, alternating first
            rate, cpu, coll = one_round(m, args.procs, args.picks, make_picker)
            res[m].append((rate, cpu, coll))
            print(f"round {r + 1} {m:9s} {rate:8.0f} picks/s/proc {cpu:6.0f} us CPU/pick"
                  f" {coll:4d} collisions")  # fmt: skip
    print(f"\n{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; {machine()}")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} (other work shares the CPUs)")
    print(f"{args.procs} processes x {args.picks} picks, median of {args.rounds} rounds")
    med = statistics.median
    for m in methods:
        rates, cpus, colls = zip(*res[m], strict=True)
        print(f"{m:9s} {med(rates):8.0f} picks/s/proc {med(cpus):6.0f} us CPU/pick"
              f" {med(colls):5.0f} collisions (max {max(colls)})")  # fmt: skip


if __name__ == "__main__":
    main()
