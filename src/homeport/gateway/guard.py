"""Pure per-route protection: token auth, basic auth and the same-origin rule.

- ``token``: ``Authorization: Bearer TOKEN``, or a link with ``?homeport_token=TOKEN`` once: the
  gateway answers with a redirect to the same URL without the token and sets an HttpOnly,
  SameSite=Strict cookie that carries an HMAC of the token (never the token itself), so the
  token leaves the address bar and the history, and other sites cannot ride on the cookie.
- ``basic``: ``Authorization: Basic`` against ``user:password`` (RFC 7617).
- ``same_origin``: refuse state-changing requests (anything but GET/HEAD/OPTIONS) and WebSocket
  upgrades that a browser marks as coming from another site, through ``Sec-Fetch-Site`` or
  ``Origin`` (the check Vite, webpack-dev-server and Jupyter added after their CVEs). Note
  that ``evil.localhost`` and ``api.localhost`` are *same-site* for a browser, so only
  ``same-origin`` passes. Requests with neither field (curl, scripts) are not from a browser
  page and pass.

Secrets are compared in constant time. The credentials homeport consumed are stripped before
the request goes upstream (``Verdict.strip_authorization`` / ``strip_cookie``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass

from homeport.gateway.contract import Route

COOKIE = "homeport_auth"
QUERY_PARAM = "homeport_token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class GuardRequest:
    """The parts of a request the guard reads (values as received, or None when absent)."""

    method: str
    path: str
    query: str
    host: str
    authorization: str | None = None
    cookie: str | None = None
    origin: str | None = None
    sec_fetch_site: str | None = None
    upgrade: bool = False


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
