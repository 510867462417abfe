"""Support for the gateway's integration tests: the proxy in its own process (so its memory can
be measured and its file-descriptor limit set), and small Python backends in threads.

Run as a script, it is that proxy process: ``python gateway_support.py SPEC_JSON``. It prints
one JSON line ``{"port": P, "pid": N}`` once it listens (the readiness signal), appends every
access record as a JSON line to ``spec["access_log"]``, takes new route tables as JSON lines
on stdin, and exits when stdin closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

# -- the proxy process ---------------------------------------------------------------------------


def _serve(spec: dict[str, Any]) -> None:
    import resource

    from homeport.gateway.config import ProxyConfig
    from homeport.gateway.contract import AccessRecord, Route, RouteTable
    from homeport.gateway.server import ProxyServer, loop_factory

    if spec.get("rlimit_nofile"):
        n = int(spec["rlimit_nofile"])
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))
    log_file = open(spec["access_log"], "a", buffering=1) if spec.get("access_log") else None  # noqa: SIM115

    def sink(record: AccessRecord) -> None:
        if log_file is not None:
            log_file.write(json.dumps(record._asdict()) + "\n")

    def table(routes: list[dict[str, Any]]) -> RouteTable:
        # JSON has lists where Route has tuples (compiled code checks the types: make compiled).
        tuples = ("allow_hosts", "allow_origins")
        return RouteTable(
            tuple(Route(**{**r, **{k: tuple(r.get(k, ())) for k in tuples}}) for r in routes)
        )

    def status(service_id: str) -> tuple[str, list[str]] | None:
        return ("exited with code 3", ["Traceback: boom", "last line"]) if service_id else None

    async def main() -> None:
        config = ProxyConfig(**spec.get("config", {}))
        tls = None
        if spec.get("tls"):  # {"cert": PEM path, "key": PEM path}
            from tls_support import server_context

            tls = server_context(Path(spec["tls"]["cert"]), Path(spec["tls"]["key"]))
        elif spec.get("tls_state_dir"):  # the local CA's own context (homeport.tls)
            from homeport.tls import server_context as local_ca_context

            tls = local_ca_context(Path(spec["tls_state_dir"]))
        server = ProxyServer(config, access_sink=sink, service_status=status, tls=tls)
        bound = await server.start([("127.0.0.1", 0)])
        server.set_routes(table(spec.get("routes", [])))
        print(json.dumps({"port": bound[0][1], "pid": os.getpid()}), flush=True)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := await reader.readline():
            server.set_routes(table(json.loads(line)))
            print(json.dumps({"routes": "ok"}), flush=True)
        await server.close()

    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(main())


@dataclass
class Gateway:
    proc: subprocess.Popen[str]
    port: int
    access_log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set_routes(self, routes: list[dict[str, Any]]) -> None:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(routes) + "\n")
        self.proc.stdin.flush()
        assert json.loads(self.proc.stdout.readline()) == {"routes": "ok"}

    def records(self, at_least: int = 0, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The access records so far; with ``at_least``, wait (bounded) until that many are
        written: the proxy writes a record just after the response, so a client can be
        faster than the log line."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.access_log.read_text() if self.access_log.exists() else ""
            lines = [json.loads(line) for line in text.splitlines() if line.endswith("}")]
            if len(lines) >= at_least or time.monotonic() > deadline:
                return lines
            time.sleep(0.01)

    def rss_kib(self, field_name: str = "VmRSS") -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
        raise AssertionError(f"no {field_name} for {self.proc.pid}")


@contextlib.contextmanager
def gateway(tmp: Path, routes: list[dict[str, Any]], **spec: Any) -> Iterator[Gateway]:
    """Start the proxy process; it is stopped (stdin closed, then killed) on exit."""
    log = tmp / f"access-{len(list(tmp.glob('access-*')))}.jsonl"
    full = {"routes": routes, "access_log": str(log), **spec}
    # The homeport this test imported (the editable src, or an installed compiled build).
    import homeport

    src = Path(homeport.__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(src)}
    proc = subprocess.Popen(
        [sys.executable, __file__, json.dumps(full)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError("the gateway process did not start")
        yield Gateway(proc, json.loads(line)["port"], log)
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


# -- backends --------------------------------------------------------------------------------------


@dataclass
class BackendState:
    connections: int = 0
    requests: list[str] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    sse_go: threading.Event = field(default_factory=threading.Event)
    received: int = 0


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, and 100-continue answered by the stdlib
    state: BackendState

    def setup(self) -> None:
        super().setup()
        self.state.connections += 1

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self, status: int, body: bytes, ctype: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.state.requests.append(self.path)
        self.state.headers.append({k.lower(): v for k, v in self.headers.items()})
        path, _, query = self.path.partition("?")
        if path == "/download":
            self._download(int(query.removeprefix("n=")))
        elif path == "/sse":
            self._sse()
        elif path == "/die":
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(b"x" * 1000)
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
        else:
            self._reply(200, f"hello from {path}".encode())

    do_HEAD = do_GET

    def do_POST(self) -> None:
        self.state.requests.append(self.path)
        self.state.headers.append({k.lower(): v for k, v in self.headers.items()})
        remaining = int(self.headers.get("Content-Length", "0"))
        got = 0
        while remaining:
            piece = self.rfile.read(min(remaining, 1 << 20))
            if not piece:
                break
            got += len(piece)
            remaining -= len(piece)
        self.state.received = got
        self._reply(200, json.dumps({"received": got}).encode(), "application/json")

    do_PUT = do_POST

    def _download(self, n: int) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(n))
        self.end_headers()
        block = b"z" * (1 << 20)
        while n:
            piece = block[: min(n, len(block))]
            self.wfile.write(piece)
            n -= len(piece)

    def _sse(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def chunk(data: bytes) -> None:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

        chunk(b"data: first\n\n")
        # The second event is sent only once the test has *received* the first one.
        self.state.sse_go.wait(30)
        chunk(b"data: second\n\n")
        self.wfile.write(b"0\r\n\r\n")


@contextlib.contextmanager
def backend() -> Iterator[tuple[int, BackendState]]:
    state = BackendState()
    handler = type("BoundHandler", (Handler,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], state
    finally:
        state.sse_go.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


@contextlib.contextmanager
def ws_echo() -> Iterator[int]:
    """A real WebSocket echo server (``websockets``) on a loopback port, in a thread."""
    from websockets.sync.server import serve

    def echo(ws: Any) -> None:
        for message in ws:
            ws.send(message)

    with serve(echo, "127.0.0.1", 0) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield int(server.socket.getsockname()[1])
        finally:
            server.shutdown()
            thread.join(5)


@contextlib.contextmanager
def dead_port() -> Iterator[int]:
    """A loopback port where nothing listens: bound without listen(), so connecting is
    refused, and held for the whole test so no other process can take it meanwhile."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])


if __name__ == "__main__":
    _serve(json.loads(sys.argv[1]))
