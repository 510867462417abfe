"""Browser-risk checks: could a web page the developer visits reach this HTTP service?

Each check sends what a hostile page would make the browser send, over loopback:

- **DNS rebinding** (foreign ``Host``): after rebinding, the browser sends the attacker's
  name as ``Host``. Names are only ever *sent as a header*, never resolved or contacted:
  ``rebind.homeport.invalid`` (RFC 2606 reserves ``.invalid``); when a service refuses
  it, the forms that slip past weak allowlists: the same with a trailing dot,
  ``127.0.0.1.nip.io`` (a public name for 127.0.0.1 that defeats prefix checks) and
  ``localhost6`` (not reserved by RFC 6761: it may resolve through DNS where /etc/hosts
  lacks it). A service accepts one when it answers it like its own name (for a service
  whose open access was proved: when the answer still proves it).
- **CORS** (Fetch standard, CORS protocol): ``Access-Control-Allow-Origin: *`` or a
  reflected foreign Origin lets any page read answers; with
  ``Access-Control-Allow-Credentials: true`` it reads them with the user's cookies.
- **Private Network Access** (WICG draft §3): ``Access-Control-Allow-Private-Network: true``
  opts a local service into being reached from public pages.
- **Cross-site WebSocket**: browsers do not apply the same-origin policy to WebSockets
  (RFC 6455 §10.2): a server must check ``Origin`` itself. The socket is closed as soon as
  the ``101`` arrives; no frame is ever sent.
- **Cross-site JSON-RPC**: a ``text/plain`` POST is a CORS "simple request" sent without a
  preflight; a JSON-RPC/MCP endpoint that parses it can be driven by any page.

Routes of homeport's own gateway are checked through the gateway, with each route's name as
``Host`` (``check_routes``): the cross-site WebSocket handshake and a Private Network Access
preflight from a public origin. The gateway refuses both on every route unless the route opted
out (``gateway.guard.check_cross_site``), so the audit and the gateway agree: a protected route
yields no finding, an opted-out one is judged by what its service answers. No POST is sent
through a route: the service behind it is the user's own, and a probe never writes.

``judge`` and ``judge_routes`` are pure (exchanges in, issues out); ``check`` and
``check_routes`` are the thin edges that send.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Literal

from homeport.audit import httpmsg
from homeport.audit.catalogue import Service
from homeport.audit.identify import Exchange, Identity, match
from homeport.audit.probe import Prober, Target

WebIssue = Literal[
    "foreign-host",
    "host-bypass",
    "cors-any",
    "cors-reflected",
    "cors-credentials",
    "private-network",
    "websocket-origin",
    "text-plain-rpc",
]

FOREIGN = "rebind.homeport.invalid"
#: A public origin for the Private Network Access preflight (``.invalid``: never resolved).
PUBLIC_ORIGIN = "https://public.homeport.invalid"
FOREIGN_ORIGIN = f"http://{FOREIGN}"
#: (label, host) — the first is the plain foreign name; the rest catch weak allowlists.
HOST_VARIANTS: tuple[tuple[str, str], ...] = (
    ("foreign", FOREIGN),
    ("trailing-dot", FOREIGN + "."),
    ("ip-prefix", "127.0.0.1.nip.io"),
    ("localhost6", "localhost6"),
)
# 16 bytes, base64 (RFC 6455 §4.1: "a randomly selected 16-byte value"); strict servers
# (the websockets library) refuse any other length with a 400, which hid their Origin check.
_WS_KEY = "aG9tZXBvcnQtYXVkaXQhIQ=="  # base64 of b"homeport-audit!!"
_RPC_PING = b'{"jsonrpc":"2.0","id":1,"method":"ping"}'


@dataclass(frozen=True, slots=True)
class WebIssueRecord:
    kind: WebIssue
    detail: str
    evidence: tuple[Exchange, ...]


@dataclass(frozen=True, slots=True)
class WebExchanges:
    """Everything ``check`` sent and got back, keyed by role."""

    baseline: Exchange
    hosts: tuple[tuple[str, Exchange], ...] = ()
    cors: Exchange | None = None
    preflight: Exchange | None = None
    websockets: tuple[Exchange, ...] = ()
    rpc: Exchange | None = None
    #: Set when the baseline is the request that proved open access to this service:
    #: a foreign Host is then accepted when the answer still proves it.
    service: str | None = None


def host_accepted(baseline: httpmsg.Response | None, probe: httpmsg.Response | None) -> bool:
    """For a service with no proof of open access: a foreign Host is accepted when it gets
    the same successful answer as the service's own name.

    A 4xx baseline proves nothing (a gateway answers 404 to every name it does not route);
    400, 403, 421 (RFC 9110 §15.5.20, Misdirected Request) and 5xx are refusals.
    """
    if baseline is None or probe is None or baseline.status >= 400:
        return False
    if probe.status in (400, 403, 421) or probe.status >= 500:
        return False
    return probe.status == baseline.status


def still_open(service: str, ex: Exchange) -> bool:
    """Whether an answer still matches a signature proving open access to ``service``."""
    return any(h.signature.service == service and h.signature.verdict == "open" for h in match(ex))


def _accepted(ex: WebExchanges, e: Exchange) -> bool:
    if ex.service is not None:
        return still_open(ex.service, e)
    return host_accepted(ex.baseline.response, e.response)


def judge(ex: WebExchanges) -> list[WebIssueRecord]:
    issues: list[WebIssueRecord] = []
    accepted = [(label, e) for label, e in ex.hosts if _accepted(ex, e)]
    if accepted and accepted[0][0] == "foreign":
        names = ", ".join(_host_of(e) for _, e in accepted)
        issues.append(
            WebIssueRecord(
                "foreign-host",
                f"answers foreign Host names: {names}",
                (ex.baseline, accepted[0][1]),
            )
        )
    elif accepted:
        names = ", ".join(_host_of(e) for _, e in accepted)
        issues.append(
            WebIssueRecord(
                "host-bypass",
                f"refuses {FOREIGN} but accepts {names}",
                (ex.baseline, accepted[0][1]),
            )
        )
    issues += _cors(ex)
    if ex.preflight is not None:
        resp = ex.preflight.response
        if resp and (resp.header("access-control-allow-private-network") or "").lower() == "true":
            issues.append(
                WebIssueRecord(
                    "private-network",
                    "preflight allows Private Network Access from a foreign Origin",
                    (ex.preflight,),
                )
            )
    for ws in ex.websockets:
        resp = ws.response
        if resp is not None and resp.status == 101:
            issues.append(
                WebIssueRecord(
                    "websocket-origin",
                    f"WebSocket upgrade accepted from Origin {FOREIGN_ORIGIN}",
                    (ws,),
                )
            )
            break
    if ex.rpc is not None and _rpc_accepted(ex.rpc.response):
        issues.append(
            WebIssueRecord(
                "text-plain-rpc", "a cross-site text/plain POST was parsed as JSON-RPC", (ex.rpc,)
            )
        )
    return issues


def _cors(ex: WebExchanges) -> list[WebIssueRecord]:
    for e in (ex.cors, ex.preflight):
        resp = e.response if e is not None else None
        if e is None or resp is None:
            continue
        acao = (resp.header("access-control-allow-origin") or "").strip()
        creds = (resp.header("access-control-allow-credentials") or "").lower() == "true"
        if acao in (FOREIGN_ORIGIN, "null") and creds:
            return [
                WebIssueRecord(
                    "cors-credentials",
                    f"reflects Origin {acao} with Access-Control-Allow-Credentials: true",
                    (e,),
                )
            ]
        if acao in (FOREIGN_ORIGIN, "null"):
            return [WebIssueRecord("cors-reflected", f"reflects Origin {acao}", (e,))]
        if acao == "*":
            return [WebIssueRecord("cors-any", "Access-Control-Allow-Origin: *", (e,))]
    return []


def _rpc_accepted(resp: httpmsg.Response | None) -> bool:
    if resp is None or resp.status >= 300:
        return False
    return re.search(rb'"jsonrpc"\s*:\s*"2\.0"', resp.body) is not None


def _host_of(e: Exchange) -> str:
    m = re.search(rb"\r\nHost: ([^\r]*)", e.sent)
    return m.group(1).decode("latin-1") if m else "?"


def ws_paths(service: Service, exchanges: tuple[Exchange, ...]) -> tuple[str, ...]:
    """Where to try an upgrade: the service's own paths, and any debugger URL it listed."""
    paths = list(service.ws_paths) or ["/"]
    for ex in exchanges:
        for m in re.finditer(rb'"webSocketDebuggerUrl"\s*:\s*"wss?://[^/"]+(/[^"]*)"', ex.answer):
            paths.append(m.group(1).decode("latin-1"))
            break
    return tuple(dict.fromkeys(paths))[:3]


def rewrite(
    request: bytes,
    host: str | None = None,
    headers: tuple[tuple[str, str], ...] = (),
    method: str | None = None,
) -> bytes:
    """The same request with another Host, a method, or extra headers (replacing any of
    the same name, and ``Connection: close`` when an Upgrade asks for its own)."""
    head, _, body = request.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    if method is not None:
        lines[0] = method + lines[0][lines[0].index(" ") :]
    replace = {k.lower() for k, _ in headers} | ({"host"} if host is not None else set())
    out = [lines[0]]
    if host is not None:
        out.append(f"Host: {host}")
    out += [ln for ln in lines[1:] if ln.partition(":")[0].strip().lower() not in replace]
    out += [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(out) + "\r\n\r\n").encode("latin-1") + body


def _base_request(target: Target, service: Service, ident: Identity | None) -> tuple[str, bytes]:
    """The request the checks vary: the one that proved open access, else GET web_path."""
    ev = ident.evidence if ident is not None else None
    if ident is not None and ident.auth == "open" and ev is not None and ev.response:
        return ev.probe, ev.sent
    return "web-baseline", httpmsg.build_request("GET", service.web_path, target.netloc)


async def check(
    prober: Prober,
    target: Target,
    service: Service,
    ident: Identity | None,
    exchanges: tuple[Exchange, ...],
    *,
    tls: bool = False,
) -> tuple[WebExchanges, list[WebIssueRecord]]:
    """Send the browser-risk requests to one HTTP service and judge the answers."""
    pid, base = _base_request(target, service, ident)
    origin = (("Origin", FOREIGN_ORIGIN),)
    upgrade = (
        *origin,
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", _WS_KEY),
        ("Sec-WebSocket-Version", "13"),
    )
    preflight = (
        *origin,
        ("Access-Control-Request-Method", "GET"),
        ("Access-Control-Request-Private-Network", "true"),
    )

    def send(probe_id: str, data: bytes) -> Awaitable[Exchange]:
        return prober.send(target, probe_id, data, http=True, tls=tls)

    paths = ws_paths(service, exchanges)
    (plain_label, plain_host), *bypass = HOST_VARIANTS
    calls = [
        send(pid, base),
        send("web-cors", rewrite(base, headers=origin)),
        send("web-preflight", rewrite(base, headers=preflight, method="OPTIONS")),
        send(pid, rewrite(base, host=f"{plain_host}:{target.port}")),
        *(
            send("web-websocket", httpmsg.build_request("GET", p, target.netloc, upgrade))
            for p in paths
        ),
    ]
    if service.jsonrpc_path:
        plain = (*origin, ("Content-Type", "text/plain;charset=UTF-8"))
        calls.append(
            send(
                "web-text-plain-post",
                httpmsg.build_request(
                    "POST", service.jsonrpc_path, target.netloc, plain, _RPC_PING
                ),
            )
        )
    got = await asyncio.gather(*calls)
    result = WebExchanges(
        baseline=got[0],
        cors=got[1],
        preflight=got[2],
        hosts=((plain_label, got[3]),),
        websockets=tuple(got[4 : 4 + len(paths)]),
        rpc=got[4 + len(paths)] if service.jsonrpc_path else None,
        service=service.id if pid != "web-baseline" else None,
    )
    if not _accepted(result, got[3]):
        # Only a service that refuses the plain foreign name needs the bypass forms.
        more = await asyncio.gather(
            *(send(pid, rewrite(base, host=f"{h}:{target.port}")) for _, h in bypass)
        )
        hosts = result.hosts + tuple(zip((label for label, _ in bypass), more, strict=True))
        result = dataclasses.replace(result, hosts=hosts)
    return result, judge(result)


def judge_routes(
    answers: Sequence[tuple[str, Exchange, Exchange]],
) -> list[WebIssueRecord]:
    """Issues of gateway routes from (route name, WebSocket handshake, PNA preflight)."""
    issues: list[WebIssueRecord] = []
    for name, ws, preflight in answers:
        resp = ws.response
        if resp is not None and resp.status == 101:
            issues.append(
                WebIssueRecord(
                    "websocket-origin",
                    f"route {name}: WebSocket upgrade accepted from Origin {FOREIGN_ORIGIN} "
                    "through the gateway (the route allows cross-site requests)",
                    (ws,),
                )
            )
        pre = preflight.response
        if pre and (pre.header("access-control-allow-private-network") or "").lower() == "true":
            issues.append(
                WebIssueRecord(
                    "private-network",
                    f"route {name}: preflight allows Private Network Access from "
                    f"{PUBLIC_ORIGIN} through the gateway",
                    (preflight,),
                )
            )
    return issues


async def check_routes(
    prober: Prober, target: Target, names: Sequence[str]
) -> list[WebIssueRecord]:
    """The route checks through the gateway at ``target`` (see the module docstring)."""
    upgrade = (
        ("Origin", FOREIGN_ORIGIN),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", _WS_KEY),
        ("Sec-WebSocket-Version", "13"),
    )
    preflight = (
        ("Origin", PUBLIC_ORIGIN),
        ("Access-Control-Request-Method", "GET"),
        ("Access-Control-Request-Private-Network", "true"),
    )

    async def one(name: str) -> tuple[str, Exchange, Exchange]:
        host = f"{name}:{target.port}"
        ws, pna = await asyncio.gather(
            prober.send(
                target, "web-websocket", httpmsg.build_request("GET", "/", host, upgrade), http=True
            ),
            prober.send(
                target,
                "web-preflight",
                httpmsg.build_request("OPTIONS", "/", host, preflight),
                http=True,
            ),
        )
        return name, ws, pna

    return judge_routes(await asyncio.gather(*(one(n) for n in names)))
