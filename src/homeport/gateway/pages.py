"""The pages homeport answers itself, in plain words: 404 (with the live routes as links),
502 (what is wrong upstream), 504, 508, and short pages for refused requests.

Pure: inputs are the facts, output is ``(content_type, body)``. A browser (``Accept`` with
``text/html``) gets HTML; curl and scripts get plain text.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from homeport.gateway.contract import Route

HTML = b"text/html; charset=utf-8"
TEXT = b"text/plain; charset=utf-8"

_STYLE = (
    "body{font:16px/1.5 system-ui,sans-serif;max-width:44rem;margin:3rem auto;padding:0 1rem;"
    "color:#222}h1{font-size:1.4rem}code,pre{background:#f3f3f3;padding:.1rem .3rem}"
    "pre{padding:.6rem;overflow:auto}li{margin:.2rem 0}.muted{color:#666}"
)


def wants_html(accept: bytes | None) -> bool:
    return accept is not None and b"text/html" in accept


def page(
    status: int, title: str, lines: Sequence[str], *, html: bool, extra: str = ""
) -> tuple[bytes, bytes]:
    """A generic page: a title and paragraphs (``extra`` is trusted, pre-escaped HTML)."""
    if not html:
        text = "\n".join([f"{status} {title}", *lines, ""])
        return TEXT, text.encode()
    paras = "".join(f"<p>{escape(line)}</p>" for line in lines)
    body = (
        f"<!doctype html><meta charset=utf-8><title>{status} {escape(title)}</title>"
        f"<style>{_STYLE}</style><h1>{escape(title)}</h1>{paras}{extra}"
        "<p class=muted>homeport gateway</p>"
    )
    return HTML, body.encode()


def _route_url(route: Route, port: int | None) -> str:
    suffix = "" if port in (None, 80) else f":{port}"
    name = ("x." if route.wildcard else "") + route.name.removeprefix("*.")
    return f"http://{name}{suffix}/"


def not_found(
    hostname: str, routes: Sequence[Route], port: int | None, *, html: bool
) -> tuple[bytes, bytes]:
    """404 for a name with no route: say so and list what does exist."""
    title = f"No route for {hostname}"
    if not routes:
        lines = [
            "No routes yet. Name a service with `homeport run -- CMD` or "
            "`homeport route add NAME http://127.0.0.1:PORT`."
        ]
        return page(404, title, lines, html=html)
    listed = sorted(routes, key=lambda r: r.name)
    if not html:
        lines = ["Live routes:"] + [f"  {_route_url(r, port)} -> {r.target}" for r in listed]
        return page(404, title, lines, html=False)
    items = "".join(
        f'<li><a href="{escape(_route_url(r, port))}">{escape(r.name)}</a> '
        f"<span class=muted>→ {escape(r.target)}</span></li>"
        for r in listed
    )
    return page(404, title, ["Live routes:"], html=True, extra=f"<ul>{items}</ul>")


def bad_gateway(
    hostname: str,
    target: str,
    problem: str,
    *,
    service: tuple[str, list[str]] | None,
    html: bool,
) -> tuple[bytes, bytes]:
    """502: ``problem`` is plain words (``nothing listens on 127.0.0.1:3000``); ``service``
    is what the control plane knows of the process behind the route."""
    lines = [f"{hostname} -> {target}: {problem}."]
    log: list[str] = []
    if service is not None:
        state, log = service
        lines.append(f"The service {state}.")
    if not html:
        if log:
            lines += ["Last log lines:", *("  " + line for line in log)]
        return page(502, "Bad gateway", lines, html=False)
    extra = ""
    if log:
        extra = "<p>Last log lines:</p><pre>" + escape("\n".join(log)) + "</pre>"
    return page(502, "Bad gateway", lines, html=True, extra=extra)


def timed_out(hostname: str, target: str, seconds: float, *, html: bool) -> tuple[bytes, bytes]:
    line = f"{hostname} -> {target} did not start answering within {seconds:g} s."
    return page(504, "Gateway timeout", [line], html=html)


def loop_detected(hostname: str, *, html: bool) -> tuple[bytes, bytes]:
    line = f"The route {hostname} leads back into the gateway itself; check its target."
    return page(508, "Loop detected", [line], html=html)
