"""CPU per proxied request on the gateway's hot path, without sockets.

    .venv/bin/python bench/bench_gateway_hotpath.py [--src PATH] [--requests 30000] [--repeat 5]

Drives one ``ClientConnection`` and one pooled ``Upstream`` on fake transports with a wrk-like
GET and an nginx-like response, and prints CPU microseconds per request (process time, so
other load on the machine matters less), with the access log and Host check on and off.
``--src`` points at another checkout's ``src`` to measure a before/after pair. Each setting is
measured ``--repeat`` times (on and off interleaved) and the median and minimum are printed: on a
shared machine the minimum is the steadier figure.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REQUEST = b"GET /small HTTP/1.1\r\nHost: app.localhost\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n"
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Fri, 27 Nov 2026 07:28:30 GMT\r\n"
    b"Content-Type: text/plain\r\nContent-Length: 13\r\nConnection: keep-alive\r\n\r\n"
    b"hello, world\n"
)


class FakeTransport:
    def __init__(self) -> None:
        self.out: list[bytes] = []
        self.extra = {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 62893)}

    def write(self, data: bytes) -> None:
        self.out.append(data)

    def writelines(self, items: list[bytes]) -> None:
        self.out.extend(items)

    def close(self) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.extra.get(name, default)


def measure(on: bool, n: int) -> float:
    from homeport.gateway.config import ProxyConfig
    from homeport.gateway.contract import AccessRecord, Route, RouteTable
    from homeport.gateway.proxy import ClientConnection
    from homeport.gateway.server import ProxyServer
    from homeport.gateway.upstream import Upstream

    loop = asyncio.new_event_loop()
    records: list[AccessRecord] = []
    server = ProxyServer(ProxyConfig(access_log=on, host_check=on), access_sink=records.append)
    server.loop = loop
    server.bound = [("127.0.0.1", 62893)]
    server.set_routes(RouteTable((Route("app.localhost", "http://127.0.0.1:3000"),)))
    up = Upstream(server.pool, "127.0.0.1:3000")
    ut, ct = FakeTransport(), FakeTransport()
    up.connection_made(ut)  # type: ignore[arg-type]
    server.pool.give(up)
    conn = ClientConnection(server)
    conn.connection_made(ct)  # type: ignore[arg-type]
    t0 = time.process_time()
    for i in range(n):
        conn.data_received(REQUEST)
        up.data_received(RESPONSE)
        if i % 1000 == 0:
            ut.out.clear()
            ct.out.clear()
            records.clear()
    spent = time.process_time() - t0
    loop.close()
    return spent / n * 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--src", default=str(Path(__file__).resolve().parent.parent / "src"))
    ap.add_argument("--requests", type=int, default=30000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    sys.path.insert(0, args.src)
    runs: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(args.repeat):
        for on in (True, False):
            runs[on].append(measure(on, args.requests))
    for on in (True, False):
        med, low = statistics.median(runs[on]), min(runs[on])
        print(f"{'on ' if on else 'off'} {med:.2f} µs/request CPU (median), {low:.2f} (min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
