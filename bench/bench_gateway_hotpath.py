"""CPU per proxied request on the gateway's hot path, without sockets.

    .venv/bin/python bench/bench_gateway_hotpath.py [--src PATH] [--requests 30000] [--repeat 5]
        [--split]

Drives one ``ClientConnection`` and one pooled ``Upstream`` on fake transports with a wrk-like
GET and an nginx-like response, and prints CPU microseconds per request (process time, so
other load on the machine matters less), with the access log and Host check on and off.
``--src`` points at another checkout's ``src`` to measure a before/after pair. Each setting is
measured ``--repeat`` times (on and off interleaved) and the median and minimum are printed: on a
shared machine the minimum is the steadier figure.

The GET arrives in one read, so it takes the request fast path (``http1.whole_head``);
``--split`` delivers it in two reads, which measures the field-by-field path instead.

Process time on a shared machine swings by a third between runs; instruction counts do not.
For those, run one setting under callgrind twice and subtract (6,000 minus 1,000 requests
leaves 5,000 requests without the start-up)::

    valgrind --tool=callgrind --callgrind-out-file=/dev/null .venv/bin/python \
        bench/bench_gateway_hotpath.py --once on --requests 6000

``--sockets keep|close`` runs the same count through real loopback sockets instead: this
process proxies on uvloop (access log and Host check on) to an nginx backend, and a client
in a child process sends the requests one after another on one keep-alive connection, or
each on a new connection with ``Connection: close``. Under callgrind (which follows no
child) that counts every user-space instruction the proxy runs per request, uvloop's
included; the kernel's share is not counted.
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


def measure(on: bool, n: int, split: bool = False) -> float:
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
    first, rest = (REQUEST[:1], REQUEST[1:]) if split else (REQUEST, b"")
    t0 = time.process_time()
    for i in range(n):
        conn.data_received(first)
        if rest:
            conn.data_received(rest)
        up.data_received(RESPONSE)
        if i % 1000 == 0:
            ut.out.clear()
            ct.out.clear()
            records.clear()
    spent = time.process_time() - t0
    loop.close()
    return spent / n * 1e6


def sockets(mode: str, n: int) -> None:
    """Proxy ``n`` requests from a child client through loopback sockets (see the docstring)."""
    import tempfile

    from homeport.gateway.config import ProxyConfig
    from homeport.gateway.contract import AccessRecord, Route, RouteTable
    from homeport.gateway.server import ProxyServer, loop_factory

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import bench_gateway

    records: list[AccessRecord] = []

    async def run(backend: int) -> None:
        server = ProxyServer(ProxyConfig(), access_sink=records.append)
        port = (await server.start([("127.0.0.1", 0)]))[0][1]
        server.set_routes(RouteTable((Route("app.localhost", f"http://127.0.0.1:{backend}"),)))
        argv = [sys.executable, __file__, "--client", str(port), str(n), mode]
        client = await asyncio.create_subprocess_exec(*argv)
        await client.wait()
        await server.close()
        if client.returncode:
            raise SystemExit(f"client failed ({client.returncode})")

    with tempfile.TemporaryDirectory(prefix="hp-hotpath-") as tmp:
        d = Path(tmp)
        d.chmod(0o755)  # nginx workers run as nobody
        bench_gateway.LOGS = d
        backend, port = bench_gateway.start_backend(d)
        try:
            with asyncio.Runner(loop_factory=loop_factory()) as runner:
                runner.run(run(port))
        finally:
            backend.stop()


def client(port: int, n: int, mode: str) -> None:
    """Send ``n`` GETs one after another; each response is read whole before the next."""
    import socket

    close = b"Connection: close\r\n" if mode == "close" else b""
    request = REQUEST.replace(b"\r\n\r\n", b"\r\n" + close + b"\r\n")
    conn = None
    for _ in range(n):
        if conn is None:
            conn = socket.create_connection(("127.0.0.1", port))
        conn.sendall(request)
        data = b""
        while b"hello, world\n" not in data:
            piece = conn.recv(65536)
            if not piece:
                raise SystemExit(f"connection closed early: {data!r}")
            data += piece
        if close:
            conn.close()
            conn = None
    if conn is not None:
        conn.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--src", default=str(Path(__file__).resolve().parent.parent / "src"))
    ap.add_argument("--requests", type=int, default=30000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--split", action="store_true", help="the request head in two reads")
    ap.add_argument("--once", choices=("on", "off"), help="one run of one setting (callgrind)")
    ap.add_argument("--sockets", choices=("keep", "close"), help="through real sockets (callgrind)")
    ap.add_argument("--client", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    sys.path.insert(0, args.src)
    if args.client:
        client(int(args.client[0]), int(args.client[1]), args.client[2])
        return 0
    if args.sockets:
        sockets(args.sockets, args.requests)
        return 0
    if args.once:
        measure(args.once == "on", args.requests, args.split)
        return 0
    runs: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(args.repeat):
        for on in (True, False):
            runs[on].append(measure(on, args.requests, args.split))
    for on in (True, False):
        med, low = statistics.median(runs[on]), min(runs[on])
        print(f"{'on ' if on else 'off'} {med:.2f} µs/request CPU (median), {low:.2f} (min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
