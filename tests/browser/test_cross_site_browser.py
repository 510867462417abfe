"""Cross-site refusals as a real Chromium meets them (issue 16): a page served through the
gateway from one route tries a ``fetch`` POST (``text/plain``, no preflight), a form POST and a
WebSocket against another route. A backend in this process records what reaches it, so each
assertion is about what the service received, not about what the page was told."""

from __future__ import annotations

import base64
import hashlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from tests.browser.conftest import Daemon

pytestmark = pytest.mark.browser

_WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 §1.3

# The attacker's page: three ways a page makes a browser write to another site.
PAGE = """<!doctype html><meta charset=utf-8><title>page</title>
<iframe name=sink></iframe>
<script>
window.attack = async (api) => {
  const out = {};
  try {
    await fetch(api + "/fetch", {method: "POST", mode: "no-cors",
                                 headers: {"content-type": "text/plain"}, body: "{}"});
    out.fetch = "sent";
  } catch (e) { out.fetch = "error"; }
  out.form = await new Promise((done) => {
    const frame = document.querySelector("iframe");
    frame.onload = () => done("loaded");
    const form = document.createElement("form");
    form.method = "POST"; form.action = api + "/form"; form.target = "sink";
    form.enctype = "text/plain";
    const input = document.createElement("input");
    input.name = "x"; input.value = "1"; form.appendChild(input);
    document.body.appendChild(form); form.submit();
  });
  out.ws = await new Promise((done) => {
    const ws = new WebSocket(api.replace("http", "ws") + "/ws");
    ws.onopen = () => { ws.close(); done("open"); };
    ws.onerror = () => done("error");
  });
  return out;
};
</script>"""


@dataclass
class Seen:
    writes: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def of(self, host: str) -> list[str]:
        with self.lock:
            return [w["path"] for w in self.writes if w["host"].startswith(host + ":")]

    def fetch_site(self, host: str) -> set[str]:
        """The Sec-Fetch-Site of the POSTs (Chromium sends none on a WebSocket handshake:
        there Origin alone tells the gateway where the page came from)."""
        with self.lock:
            return {
                w["sec-fetch-site"]
                for w in self.writes
                if w["host"].startswith(host + ":") and w["path"] != "/ws"
            }


def _handler(seen: Seen) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _record(self, path: str) -> None:
            with seen.lock:
                seen.writes.append(
                    {
                        "host": self.headers.get("host", ""),
                        "path": path,
                        "sec-fetch-site": self.headers.get("sec-fetch-site", ""),
                    }
                )

        def _reply(self, body: bytes, ctype: str = "text/plain") -> None:
            self.send_response(200)
            self.send_header("content-type", ctype)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.headers.get("upgrade", "").lower() == "websocket":
                key = self.headers["sec-websocket-key"]
                accept = base64.b64encode(hashlib.sha1((key + _WS_GUID).encode()).digest())
                self._record("/ws")
                self.send_response(101)
                self.send_header("upgrade", "websocket")
                self.send_header("connection", "Upgrade")
                self.send_header("sec-websocket-accept", accept.decode())
                self.end_headers()
                self.wfile.flush()
                self.rfile.read(2)  # until the page closes it
                self.close_connection = True
                return
            self._reply(PAGE.encode(), "text/html; charset=utf-8")

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", "0")))
            self._record(self.path)
            self._reply(b"written")

    return Handler


@pytest.fixture
def backend() -> Iterator[tuple[int, Seen]]:
    seen = Seen()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(seen))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _route(daemon: Daemon, name: str, port: int, **extra: Any) -> None:
    body = {"name": name, "target": f"127.0.0.1:{port}", **extra}
    r = daemon.api("POST", "/api/routes", json=body)
    assert r.status_code in (200, 201), r.text


def _attack(browser: Any, daemon: Daemon, page_host: str, api_host: str) -> dict[str, str]:
    pg = browser.new_page()
    try:
        pg.goto(f"http://{page_host}:{daemon.port}/page.html")
        result: dict[str, str] = pg.evaluate(
            "api => window.attack(api)", f"http://{api_host}:{daemon.port}"
        )
        return result
    finally:
        pg.close()


def test_a_page_of_another_site_cannot_write_or_open_a_websocket(
    daemon: Daemon, browser: Any, backend: tuple[int, Seen]
) -> None:
    port, seen = backend
    _route(daemon, "evil", port)
    _route(daemon, "api", port)
    result = _attack(browser, daemon, "evil.localhost", "api.localhost")
    assert result["ws"] == "error"
    assert seen.of("api.localhost") == []  # neither POST nor the handshake reached the API

    def refused() -> list[dict[str, Any]]:
        records = daemon.api("GET", "/api/access?control=0").json()["records"]
        return [r for r in records if r["route"] == "api.localhost"]

    # The access writer commits every 0.2 s: under load the last refusal may not be in yet.
    deadline = time.monotonic() + 10
    while {r["path"] for r in refused()} < {"/fetch", "/form", "/ws"}:
        assert time.monotonic() < deadline, refused()
        time.sleep(0.05)  # bounded poll for the writer's next commit
    assert {(r["status"], r["reason"]) for r in refused()} == {(403, "cross-site")}


def test_the_opt_out_lets_the_same_page_through(
    daemon: Daemon, browser: Any, backend: tuple[int, Seen]
) -> None:
    port, seen = backend
    _route(daemon, "evil", port)
    _route(daemon, "api", port, allow_cross_site=True)
    result = _attack(browser, daemon, "evil.localhost", "api.localhost")
    assert result["ws"] == "open"
    assert sorted(seen.of("api.localhost")) == ["/fetch", "/form", "/ws"]
    # What Chromium calls evil.localhost -> api.localhost: two sites, as the rule says.
    assert seen.fetch_site("api.localhost") == {"cross-site"}


def test_an_allowed_origin_passes_and_others_do_not(
    daemon: Daemon, browser: Any, backend: tuple[int, Seen]
) -> None:
    port, seen = backend
    _route(daemon, "friend", port)
    _route(daemon, "evil", port)
    _route(daemon, "api", port, allow_origins=[f"http://friend.localhost:{daemon.port}"])
    assert _attack(browser, daemon, "friend.localhost", "api.localhost")["ws"] == "open"
    assert _attack(browser, daemon, "evil.localhost", "api.localhost")["ws"] == "error"
    assert sorted(seen.of("api.localhost")) == ["/fetch", "/form", "/ws"]


def test_a_page_of_the_same_project_reaches_its_api_by_default(
    daemon: Daemon, browser: Any, backend: tuple[int, Seen]
) -> None:
    port, seen = backend
    _route(daemon, "web.shop", port)
    _route(daemon, "api.shop", port)
    result = _attack(browser, daemon, "web.shop.localhost", "api.shop.localhost")
    assert result["ws"] == "open"
    assert sorted(seen.of("api.shop.localhost")) == ["/fetch", "/form", "/ws"]
    assert seen.fetch_site("api.shop.localhost") == {"same-site"}
