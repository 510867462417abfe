"""The default cross-site rule on real sockets (issue 16): a proxy process, a Python backend that
records what reaches it, real clients (httpx, curl, websockets). Names resolve nowhere: clients
connect to 127.0.0.1 and send ``Host`` themselves. The browser's side is in
``tests/browser/test_cross_site_browser.py``."""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from gateway_support import BackendState, Gateway, backend, gateway, ws_echo

EVIL = "http://evil.localhost:62893"


@pytest.fixture
def app(tmp_path: Path) -> Iterator[tuple[Gateway, BackendState]]:
    with backend() as (port, state):
        target = f"http://127.0.0.1:{port}"
        routes = [
            {"name": "api.localhost", "target": target},
            {"name": "api.shop.localhost", "target": target},
            {"name": "open.localhost", "target": target, "allow_cross_site": True},
            {"name": "listed.localhost", "target": target,
             "allow_origins": ("http://localhost:5173",)},
        ]  # fmt: skip
        with gateway(tmp_path, routes) as gw:
            yield gw, state


def post(gw: Gateway, host: str, **headers: str) -> httpx.Response:
    return httpx.post(
        gw.url + "/write",
        headers={"Host": host, "Content-Type": "text/plain", **headers},
        content=b'{"jsonrpc":"2.0","id":1,"method":"ping"}',
    )


def test_a_cross_site_post_never_reaches_the_service(app: tuple[Gateway, BackendState]) -> None:
    gw, state = app
    r = post(gw, "api.localhost:62893", Origin=EVIL, **{"Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 403
    assert "api.localhost" in r.text
    assert EVIL in r.text
    assert "--allow-origin" in r.text
    assert state.requests == []
    rec = gw.records(at_least=1)[-1]
    assert (rec["status"], rec["reason"], rec["route"]) == (403, "cross-site", "api.localhost")


def test_clients_without_origin_are_unaffected(app: tuple[Gateway, BackendState]) -> None:
    gw, state = app
    assert post(gw, "api.localhost").status_code == 200
    if shutil.which("curl"):
        out = subprocess.run(
            ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
             "-H", "Host: api.localhost", "--data", "x=1", gw.url + "/curl"],
            capture_output=True, text=True, timeout=30, check=True,
        )  # fmt: skip
        assert out.stdout == "200"
    assert "/write" in state.requests


def test_the_same_project_may_write_to_its_api(app: tuple[Gateway, BackendState]) -> None:
    gw, state = app
    origin = "http://web.shop.localhost:62893"
    assert post(gw, "api.shop.localhost:62893", Origin=origin).status_code == 200
    other = post(gw, "api.shop.localhost:62893", Origin="http://web.blog.localhost:62893")
    assert other.status_code == 403
    assert state.requests == ["/write"]


def test_opt_outs_let_writes_through(app: tuple[Gateway, BackendState]) -> None:
    gw, state = app
    cross = {"Origin": EVIL, "Sec-Fetch-Site": "cross-site"}
    assert post(gw, "open.localhost", **cross).status_code == 200
    assert post(gw, "listed.localhost", **cross).status_code == 403
    listed = {"Origin": "http://localhost:5173", "Sec-Fetch-Site": "cross-site"}
    assert post(gw, "listed.localhost", **listed).status_code == 200
    assert state.requests == ["/write", "/write"]


def test_a_private_network_preflight_from_a_public_page_is_refused(
    app: tuple[Gateway, BackendState],
) -> None:
    gw, _ = app
    headers = {
        "Host": "api.localhost",
        "Origin": "https://public.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Private-Network": "true",
    }
    r = httpx.request("OPTIONS", gw.url + "/write", headers=headers)
    assert r.status_code == 403
    assert "Private Network Access" in r.text
    assert gw.records(at_least=1)[-1]["reason"] == "private-network"


def test_cross_site_websockets_are_refused_and_scripts_connect(tmp_path: Path) -> None:
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    with ws_echo() as port:
        target = f"http://127.0.0.1:{port}"
        routes = [
            {"name": "ws.localhost", "target": target},
            {"name": "wsopen.localhost", "target": target, "allow_cross_site": True},
        ]
        with gateway(tmp_path, routes) as gw:

            def dial(host: str, origin: str | None) -> str:
                sock = socket.create_connection(("127.0.0.1", gw.port))
                kw = {"origin": origin} if origin else {}
                with connect(f"ws://{host}:{gw.port}/chat", sock=sock, **kw) as ws:  # type: ignore[arg-type]
                    ws.send("hello")
                    return str(ws.recv(timeout=10))

            with pytest.raises(InvalidStatus) as refused:
                dial("ws.localhost", EVIL)
            assert refused.value.response.status_code == 403
            assert dial("ws.localhost", None) == "hello"  # a script: no Origin
            assert dial("ws.localhost", "http://ws.localhost:62893") == "hello"
            assert dial("wsopen.localhost", EVIL) == "hello"
