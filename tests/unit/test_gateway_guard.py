"""Pure per-route protection: token, basic auth, same-origin."""

from __future__ import annotations

import base64

from homeport.gateway import guard
from homeport.gateway.contract import Route
from homeport.gateway.guard import GuardRequest, check

TOKEN_ROUTE = Route("app.localhost", "http://127.0.0.1:3000", auth="token", secret="s3cret")
BASIC_ROUTE = Route("app.localhost", "http://127.0.0.1:3000", auth="basic", secret="ann:pw")
SAME_ORIGIN = Route("app.localhost", "http://127.0.0.1:3000", same_origin=True)


def req(**kw: object) -> GuardRequest:
    base: dict[str, object] = {
        "method": "GET",
        "path": "/",
        "query": "",
        "host": "app.localhost:62893",
    }
    base.update(kw)
    return GuardRequest(**base)  # type: ignore[arg-type]


def test_token_bearer_is_accepted_and_stripped() -> None:
    v = check(TOKEN_ROUTE, req(authorization="Bearer s3cret"))
    assert v.allow
    assert v.strip_authorization
    refused = check(TOKEN_ROUTE, req(authorization="Bearer wrong"))
    assert (refused.allow, refused.status, refused.reason) == (False, 401, "auth")
    assert check(TOKEN_ROUTE, req()).status == 401


def test_token_link_sets_a_strict_cookie_and_redirects_without_the_token() -> None:
    v = check(TOKEN_ROUTE, req(path="/page", query="a=1&homeport_token=s3cret&b=2"))
    assert (v.allow, v.status) == (False, 303)
    headers = dict(v.headers)
    assert headers["location"] == "/page?a=1&b=2"
    cookie = headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert "s3cret" not in cookie  # the cookie carries an HMAC, not the token
    value = cookie.split(";")[0].split("=", 1)[1]
    back = check(TOKEN_ROUTE, req(cookie=f"theme=dark; {guard.COOKIE}={value}"))
    assert back.allow
    assert back.strip_cookie


def test_token_link_with_a_wrong_token_or_a_post_is_refused() -> None:
    assert check(TOKEN_ROUTE, req(query="homeport_token=nope")).status == 401
    assert check(TOKEN_ROUTE, req(method="POST", query="homeport_token=s3cret")).status == 401


def test_a_cookie_for_another_route_does_not_open_this_one() -> None:
    other = guard.cookie_value("other.localhost", "s3cret")
    assert check(TOKEN_ROUTE, req(cookie=f"{guard.COOKIE}={other}")).status == 401


def test_basic_auth() -> None:
    good = base64.b64encode(b"ann:pw").decode()
    assert check(BASIC_ROUTE, req(authorization=f"Basic {good}")).allow
    bad = base64.b64encode(b"ann:nope").decode()
    refused = check(BASIC_ROUTE, req(authorization=f"Basic {bad}"))
    assert refused.status == 401
    assert dict(refused.headers)["www-authenticate"].startswith('Basic realm="app.localhost"')
    assert check(BASIC_ROUTE, req(authorization="Basic !!!")).status == 401


def test_same_origin_refuses_cross_site_state_changes() -> None:
    assert check(SAME_ORIGIN, req(method="POST", origin="http://evil.example")).status == 403
    assert check(SAME_ORIGIN, req(method="POST", origin="null")).status == 403
    # Another *.localhost app is "same-site" for a browser: still refused.
    assert check(SAME_ORIGIN, req(method="DELETE", sec_fetch_site="same-site")).status == 403
    assert check(SAME_ORIGIN, req(method="POST", origin="http://app.localhost:62893")).allow
    assert check(SAME_ORIGIN, req(method="POST", sec_fetch_site="same-origin")).allow
    assert check(SAME_ORIGIN, req(method="POST")).allow  # curl: no browser, no Origin
    assert check(SAME_ORIGIN, req(method="GET", origin="http://evil.example")).allow


def test_same_origin_refuses_cross_site_websockets() -> None:
    ws = req(upgrade=True, origin="http://evil.localhost:62893")
    v = check(SAME_ORIGIN, ws)
    assert v.status == 403
    assert "WebSocket" in v.message
    assert check(SAME_ORIGIN, req(upgrade=True, origin="http://app.localhost:62893")).allow


def test_same_origin_port_defaults() -> None:
    assert guard.same_origin("http://app.localhost", "app.localhost:80")
    assert guard.same_origin("http://app.localhost:80", "app.localhost")
    assert not guard.same_origin("https://app.localhost", "app.localhost")
    assert not guard.same_origin("http://app.localhost:1", "app.localhost:2")


def test_strip_cookie_and_token_param() -> None:
    assert guard.strip_cookie(f"a=1; {guard.COOKIE}=x; b=2") == "a=1; b=2"
    assert guard.split_token_param("homeport_token=t") == ("t", "")
    assert guard.split_token_param("x=1") == (None, "x=1")
