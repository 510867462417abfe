"""Browser-risk judgement on recorded exchanges (pure)."""

from __future__ import annotations

from homeport.audit import web
from homeport.audit.identify import Exchange
from homeport.audit.web import WebExchanges, judge, rewrite


def _ans(status: str, *headers: str, body: str = "ok") -> bytes:
    head = "".join(f"{h}\r\n" for h in headers)
    return f"HTTP/1.1 {status}\r\n{head}Content-Length: {len(body)}\r\n\r\n{body}".encode()


def _ex(probe: str, answer: bytes, sent: bytes = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n") -> Exchange:
    return Exchange(probe, sent, answer)


def _hosts(*statuses: str) -> tuple[tuple[str, Exchange], ...]:
    out = []
    for (label, host), status in zip(web.HOST_VARIANTS, statuses, strict=True):
        sent = f"GET / HTTP/1.1\r\nHost: {host}:80\r\n\r\n".encode()
        out.append((label, _ex("web-baseline", _ans(status), sent)))
    return tuple(out)


OK = _ex("web-baseline", _ans("200 OK"))


def kinds(ex: WebExchanges) -> set[str]:
    return {i.kind for i in judge(ex)}


def test_foreign_host_accepted_and_refused() -> None:
    assert kinds(WebExchanges(OK, _hosts("200 OK", "200 OK", "200 OK", "200 OK"))) == {
        "foreign-host"
    }
    assert (
        kinds(
            WebExchanges(
                OK,
                _hosts(
                    "421 Misdirected Request",
                    "400 Bad Request",
                    "403 Forbidden",
                    "421 Misdirected Request",
                ),
            )
        )
        == set()
    )


def test_allowlist_bypass_is_its_own_finding() -> None:
    issues = judge(WebExchanges(OK, _hosts("403 Forbidden", "403 Forbidden", "200 OK", "200 OK")))
    assert [i.kind for i in issues] == ["host-bypass"]
    assert "127.0.0.1.nip.io:80" in issues[0].detail
    assert "localhost6:80" in issues[0].detail


def test_a_4xx_baseline_proves_nothing() -> None:
    # A gateway answering 404 to every unknown name must not look like a rebinding target.
    base = _ex("web-baseline", _ans("404 Not Found"))
    assert kinds(WebExchanges(base, _hosts(*["404 Not Found"] * 4))) == set()


def test_proof_replay_needs_the_answer_to_still_prove_open_access() -> None:
    sent = b"GET /api/kernels HTTP/1.1\r\nHost: rebind.homeport.invalid:1\r\n\r\n"
    still = Exchange("http-api-kernels", sent, _ans("200 OK", body="[]"))
    refused = Exchange("http-api-kernels", sent, _ans("403 Forbidden", body="[]"))
    base = Exchange("http-api-kernels", b"", _ans("200 OK", body="[]"))
    assert kinds(WebExchanges(base, (("foreign", still),), service="jupyter")) == {"foreign-host"}
    assert kinds(WebExchanges(base, (("foreign", refused),), service="jupyter")) == set()


def test_cors_variants() -> None:
    any_ = _ex("web-cors", _ans("200 OK", "Access-Control-Allow-Origin: *"))
    refl = _ex("web-cors", _ans("200 OK", f"Access-Control-Allow-Origin: {web.FOREIGN_ORIGIN}"))
    cred = _ex(
        "web-cors",
        _ans(
            "200 OK",
            f"Access-Control-Allow-Origin: {web.FOREIGN_ORIGIN}",
            "Access-Control-Allow-Credentials: true",
        ),
    )
    assert kinds(WebExchanges(OK, cors=any_)) == {"cors-any"}
    assert kinds(WebExchanges(OK, cors=refl)) == {"cors-reflected"}
    assert kinds(WebExchanges(OK, cors=cred)) == {"cors-credentials"}
    # `*` with credentials is refused by browsers (Fetch standard): still only "any".
    star_cred = _ex(
        "web-cors",
        _ans("200 OK", "Access-Control-Allow-Origin: *", "Access-Control-Allow-Credentials: true"),
    )
    assert kinds(WebExchanges(OK, cors=star_cred)) == {"cors-any"}


def test_private_network_websocket_and_text_plain() -> None:
    pna = _ex("web-preflight", _ans("204 No Content", "Access-Control-Allow-Private-Network: true"))
    ws_ok = _ex("web-websocket", b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n")
    ws_no = _ex("web-websocket", _ans("403 Forbidden"))
    rpc_ok = _ex("web-text-plain-post", _ans("200 OK", body='{"jsonrpc":"2.0","id":1,"result":{}}'))
    rpc_no = _ex("web-text-plain-post", _ans("415 Unsupported Media Type"))
    assert kinds(WebExchanges(OK, preflight=pna)) == {"private-network"}
    assert kinds(WebExchanges(OK, websockets=(ws_no, ws_ok))) == {"websocket-origin"}
    assert kinds(WebExchanges(OK, websockets=(ws_no,))) == set()
    assert kinds(WebExchanges(OK, rpc=rpc_ok)) == {"text-plain-rpc"}
    assert kinds(WebExchanges(OK, rpc=rpc_no)) == set()


def test_rewrite_changes_only_what_is_asked() -> None:
    req = b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:9\r\nContent-Length: 2\r\n\r\n{}"
    out = rewrite(req, host="evil:9", headers=(("Origin", "http://o"),), method="OPTIONS")
    assert out == (
        b"OPTIONS /mcp HTTP/1.1\r\nHost: evil:9\r\nContent-Length: 2\r\nOrigin: http://o\r\n\r\n{}"
    )


def test_ws_paths_take_the_debugger_url() -> None:
    from homeport.audit.services import SERVICES

    listed = Exchange(
        "http-json-list",
        b"",
        _ans("200 OK", body='[{"webSocketDebuggerUrl": "ws://127.0.0.1:9229/abc-123"}]'),
    )
    assert web.ws_paths(SERVICES["node-inspector"], (listed,)) == ("/", "/abc-123")


def test_the_websocket_key_is_sixteen_bytes() -> None:
    """RFC 6455 §4.1; the websockets library answers 400 to any other length."""
    import base64

    assert len(base64.b64decode(web._WS_KEY, validate=True)) == 16


def test_routes_are_judged_by_what_comes_back_through_the_gateway() -> None:
    refused = Exchange(
        "web-websocket", b"GET", b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n"
    )
    accepted = Exchange(
        "web-websocket",
        b"GET",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    )
    pna_ok = Exchange(
        "web-preflight",
        b"OPTIONS",
        b"HTTP/1.1 204 No Content\r\nAccess-Control-Allow-Private-Network: true\r\n\r\n",
    )
    issues = web.judge_routes(
        [("guarded.localhost", refused, refused), ("opened.localhost", accepted, pna_ok)]
    )
    assert [(i.kind, i.detail.split(":")[0]) for i in issues] == [
        ("websocket-origin", "route opened.localhost"),
        ("private-network", "route opened.localhost"),
    ]
