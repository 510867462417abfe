"""Pure per-route protection: token auth, basic auth and the same-origin rule.

- ``token``: ``Authorization: Bearer TOKEN``, or a link with ``?homeport_token=TOKEN`` once: the
  gateway answers with a redirect to the same URL without the token and sets an HttpOnly,
  SameSite=Strict cookie that carries an HMAC of the token (never the token itself), so the
  token leaves the address bar and the history, and other sites cannot ride on the cookie.
- ``basic``: ``Authorization: Basic`` against ``user:password`` (RFC 7617).
- **cross-site refusal, on by default** (``check_cross_site``): a state-changing request
  (anything but GET/HEAD/OPTIONS) or a WebSocket/Upgrade handshake that a browser marks as
  coming from another *site* is refused with a 403 — the attack Vite, webpack-dev-server,
  Jupyter and several MCP servers each shipped a CVE for. ``Sec-Fetch-Site: cross-site`` is
  refused; ``same-origin`` and ``none`` (typed by the user) pass; ``same-site`` or no such
  field is judged by ``Origin`` against the route's own site. Requests with neither field
  (curl, scripts, server to server) are not from a browser page and pass. A route opts out
  with ``allow_cross_site`` or lets named origins through with ``allow_origins``.
- **the site rule** (``site``): the public-suffix default rule ("*") makes the last label the
  suffix, so the site is the last two labels: ``web.shop.localhost`` and ``api.shop.localhost``
  share ``shop.localhost`` (a project's frontend may call its own API), while
  ``evil.localhost`` and ``api.localhost`` are two sites. IP literals are their own site;
  scheme counts (schemeful same-site), the port does not.
- **Private Network Access** preflights (``Access-Control-Request-Private-Network: true``, WICG
  Private/Local Network Access) from an origin that is not on loopback are refused unless the
  route allows that origin: the gateway only listens on loopback, so every such preflight asks
  to let a page from elsewhere in.
- ``same_origin``: the stricter rule, per route: only ``same-origin`` passes.

Secrets are compared in constant time. The credentials homeport consumed are stripped before
the request goes upstream (``Verdict.strip_authorization`` / ``strip_cookie``).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
from dataclasses import dataclass
from typing import NamedTuple

from homeport.gateway.contract import Route

COOKIE = "homeport_auth"
QUERY_PARAM = "homeport_token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class GuardRequest(NamedTuple):
    """The parts of a request the guard reads (values as received, or None when absent).

    A NamedTuple, not a frozen dataclass, as ``AccessRecord`` is: the cross-site rule builds
    one for every POST, and a frozen dataclass of ten fields took ~3 µs to build against
    ~0.3 µs (bench/bench_cross_site.py --cpu)."""

    method: str
    path: str
    query: str
    host: str
    authorization: str | None = None
    cookie: str | None = None
    origin: str | None = None
    sec_fetch_site: str | None = None
    upgrade: bool = False
    #: ``Access-Control-Request-Private-Network: true`` was sent (a PNA/LNA preflight).
    private_network: bool = False
    #: The scheme the client used to reach the gateway (``https`` over TLS).
    scheme: str = "http"


@dataclass(frozen=True, slots=True)
class Verdict:
    allow: bool
    status: int = 200
    reason: str | None = None
    message: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    strip_authorization: bool = False
    strip_cookie: bool = False


ALLOW = Verdict(True)


def check(route: Route, req: GuardRequest) -> Verdict:
    """Decide whether ``req`` may pass to ``route``'s upstream."""
    if route.same_origin:
        verdict = check_same_origin(req)
    elif not route.allow_cross_site:
        verdict = check_cross_site(route, req)
    else:
        verdict = ALLOW
    if not verdict.allow:
        return verdict
    if route.auth == "token" and route.secret:
        return check_token(route.name, route.secret, req)
    if route.auth == "basic" and route.secret:
        return check_basic(route.name, route.secret, req)
    return ALLOW


def cookie_value(route_name: str, token: str) -> str:
    """What the login cookie holds: an HMAC of the token bound to the route's name."""
    mac = hmac.new(token.encode(), b"homeport-cookie:" + route_name.encode(), hashlib.sha256)
    return mac.hexdigest()


def check_token(route_name: str, token: str, req: GuardRequest) -> Verdict:
    scheme, _, cred = (req.authorization or "").partition(" ")
    if scheme.lower() == "bearer" and _same(cred.strip(), token):
        return Verdict(True, strip_authorization=True)
    cookies = parse_cookies(req.cookie or "")
    if COOKIE in cookies and _same(cookies[COOKIE], cookie_value(route_name, token)):
        return Verdict(True, strip_cookie=True)
    given, rest = split_token_param(req.query)
    if given is not None and _same(given, token) and req.method in ("GET", "HEAD"):
        location = req.path + ("?" + rest if rest else "")
        cookie = f"{COOKIE}={cookie_value(route_name, token)}; Path=/; HttpOnly; SameSite=Strict"
        return Verdict(
            False,
            303,
            "login",
            "Signed in; continue to " + location,
            (("location", location), ("set-cookie", cookie)),
        )
    return Verdict(
        False,
        401,
        "auth",
        f"{route_name} needs a token: open the link `homeport route ls` shows, or send "
        "Authorization: Bearer TOKEN.",
        (("www-authenticate", 'Bearer realm="homeport"'),),
    )


def check_basic(route_name: str, secret: str, req: GuardRequest) -> Verdict:
    scheme, _, cred = (req.authorization or "").partition(" ")
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(cred.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        if decoded and _same(decoded, secret):
            return Verdict(True, strip_authorization=True)
    realm = route_name.replace('"', "")
    return Verdict(
        False,
        401,
        "auth",
        f"{route_name} needs a user name and password.",
        (("www-authenticate", f'Basic realm="{realm}", charset="UTF-8"'),),
    )


def check_same_origin(req: GuardRequest) -> Verdict:
    if req.method in _SAFE_METHODS and not req.upgrade:
        return ALLOW
    what = "WebSocket" if req.upgrade else req.method
    site = (req.sec_fetch_site or "").strip().lower()
    if site in ("cross-site", "same-site"):
        return _refuse(f"a {site} {what} request (Sec-Fetch-Site)")
    if req.origin is not None:
        origin = req.origin.strip()
        if origin == "null" or not same_origin(origin, req.host):
            return _refuse(f"a {what} request from origin {origin}")
    return ALLOW


def _refuse(what: str) -> Verdict:
    return Verdict(
        False,
        403,
        "cross-site",
        f"Refused {what}: this route only accepts state-changing requests from its own pages.",
    )


def check_cross_site(route: Route, req: GuardRequest) -> Verdict:
    """The default rule: refuse what a page of another site makes a browser send."""
    origin = req.origin.strip() if req.origin is not None else None
    if origin is not None and origin_allowed(origin, route.allow_origins):
        return ALLOW
    if req.private_network and req.method == "OPTIONS":
        if origin is not None and _loopback_origin(origin):
            return ALLOW
        return _refuse_cross_site(route, req, origin, "a Private Network Access preflight")
    if req.method in _SAFE_METHODS and not req.upgrade:
        return ALLOW
    fetch_site = (req.sec_fetch_site or "").strip().lower()
    if fetch_site in ("same-origin", "none"):
        return ALLOW
    if fetch_site == "cross-site":
        return _refuse_cross_site(route, req, origin, None)
    # "same-site", or an older browser that sends only Origin: judge Origin ourselves. A
    # browser's own "same-site" is not taken as is: a browser that counted every *.localhost
    # name as one site would let evil.localhost through.
    if origin is None:
        return ALLOW
    if origin == "null" or origin_site(origin) != (req.scheme.lower(), site(req.host)):
        return _refuse_cross_site(route, req, origin, None)
    return ALLOW


def _refuse_cross_site(
    route: Route, req: GuardRequest, origin: str | None, what: str | None
) -> Verdict:
    if what is None:
        what = f"a cross-site {'WebSocket handshake' if req.upgrade else req.method + ' request'}"
    source = f"from origin {origin}" if origin else "without an Origin"
    if req.sec_fetch_site:
        source += f" (Sec-Fetch-Site: {req.sec_fetch_site.strip()})"
    command = (
        "homeport run {flag} -- CMD"
        if route.service_id
        else f"homeport route add {route.name} {route.target} {{flag}}"
    )
    allow = command.format(
        flag=f"--allow-origin {origin}" if origin and origin != "null" else "--allow-cross-site"
    )
    reason = "private-network" if req.private_network and req.method == "OPTIONS" else "cross-site"
    return Verdict(
        False,
        403,
        reason,
        f"Refused {what} to {route.name} {source}. homeport refuses cross-site "
        f"state-changing requests and WebSocket handshakes on every route (the same-site "
        f"rule: a page may write to routes of its own site, {site(req.host)}). "
        f"To allow it: `{allow}`"
        + ("" if "--allow-cross-site" in allow else " (or --allow-cross-site for any origin)")
        + ".",
    )


# Cached: a gateway sees a handful of Host and Origin values, and the split and scans cost
# ~3 µs a request on a POST (bench/bench_cross_site.py --cpu).
@functools.lru_cache(maxsize=512)
def site(host: str) -> str:
    """The site of a host name (port ignored): its last two labels, by the public-suffix
    default rule; an IP literal is its own site."""
    h = host.strip().lower()
    if h.startswith("["):
        return h[: h.find("]") + 1] if "]" in h else h
    if h.count(":") == 1:
        h = h.partition(":")[0]
    h = h.rstrip(".")
    if h.count(":") > 1 or h.replace(".", "").isdigit():
        return h
    return ".".join(h.split(".")[-2:])


@functools.lru_cache(maxsize=512)
def origin_site(origin: str) -> tuple[str, str] | None:
    """``(scheme, site)`` of a serialized origin, or None when it is not http(s)."""
    scheme, sep, authority = origin.strip().partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in ("http", "https") or not authority:
        return None
    return scheme, site(authority.rstrip("/"))


def normalize_origin(origin: str) -> str | None:
    """``HTTP://Web.Localhost:80/`` -> ``http://web.localhost``; None when it is no origin."""
    scheme, sep, authority = origin.strip().partition("://")
    scheme = scheme.lower()
    authority = authority.rstrip("/").lower()
    if not sep or scheme not in ("http", "https") or not authority or "/" in authority:
        return None
    return f"{scheme}://{_norm(authority, ':443' if scheme == 'https' else ':80')}"


def origin_allowed(origin: str, allowed: tuple[str, ...]) -> bool:
    return bool(allowed) and normalize_origin(origin) in allowed


def _loopback_origin(origin: str) -> bool:
    """An origin served from this machine: ``localhost``, ``*.localhost`` or a loopback IP."""
    parsed = origin_site(origin)
    if parsed is None:
        return False
    host = parsed[1].strip("[]")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    return host == "::1" or (host.startswith("127.") and host.replace(".", "").isdigit())


def same_origin(origin: str, host: str) -> bool:
    """``http://app.localhost:62893`` is the origin of a page served with that Host."""
    scheme, sep, authority = origin.partition("://")
    if not sep or scheme.lower() not in ("http", "https"):
        return False
    default = ":443" if scheme.lower() == "https" else ":80"
    return _norm(authority, default) == _norm(host, ":80") and scheme.lower() == "http"


def _norm(authority: str, default_port: str) -> str:
    authority = authority.lower().rstrip("/")
    if authority.endswith(default_port):
        authority = authority[: -len(default_port)]
    return authority


def parse_cookies(header: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in header.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name not in out:
            out[name] = value
    return out


def split_token_param(query: str) -> tuple[str | None, str]:
    """-> (the homeport_token value or None, the query without it)."""
    if QUERY_PARAM not in query:
        return None, query
    token: str | None = None
    kept = []
    for part in query.split("&"):
        name, _, value = part.partition("=")
        if name == QUERY_PARAM:
            token = value
        elif part:
            kept.append(part)
    return token, "&".join(kept)


def strip_cookie(header: str) -> str:
    """The Cookie field without homeport's own cookie (the app never sees it)."""
    parts = [p.strip() for p in header.split(";")]
    return "; ".join(p for p in parts if p and not p.startswith(COOKIE + "="))


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())
