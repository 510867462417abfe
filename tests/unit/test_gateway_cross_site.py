"""The default cross-site rule (issue 16): pure decisions over request fields."""

from __future__ import annotations

import pytest

from homeport.gateway import guard
from homeport.gateway.contract import Route
from homeport.gateway.guard import GuardRequest, check

API = Route("api.localhost", "http://127.0.0.1:3000")
SHOP_API = Route("api.shop.localhost", "http://127.0.0.1:3001")


def req(host: str = "api.localhost:62893", **kw: object) -> GuardRequest:
    base: dict[str, object] = {"method": "POST", "path": "/", "query": "", "host": host}
    base.update(kw)
    return GuardRequest(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("api.localhost", "api.localhost"),
        ("api.localhost:62893", "api.localhost"),
        ("web.shop.localhost:62893", "shop.localhost"),
        ("feature-x.web.shop.localhost", "shop.localhost"),
        ("API.Shop.Localhost.", "shop.localhost"),
        ("localhost:3000", "localhost"),
        ("127.0.0.1:8000", "127.0.0.1"),
        ("[::1]:8000", "[::1]"),
        ("::1", "::1"),
    ],
)
def test_site_is_the_last_two_labels_or_the_ip(host: str, expected: str) -> None:
    assert guard.site(host) == expected


def test_a_cross_site_post_is_refused_by_default_and_names_route_origin_and_flag() -> None:
    v = check(API, req(origin="http://evil.localhost:62893", sec_fetch_site="cross-site"))
    assert (v.allow, v.status, v.reason) == (False, 403, "cross-site")
    assert "api.localhost" in v.message
    assert "http://evil.localhost:62893" in v.message
    assert "--allow-origin http://evil.localhost:62893" in v.message
    assert "homeport route add api.localhost http://127.0.0.1:3000" in v.message


def test_origin_alone_decides_when_sec_fetch_site_is_absent() -> None:
    assert not check(API, req(origin="http://evil.localhost:62893")).allow
    assert check(API, req(origin="http://api.localhost:62893")).allow
    # another port of the same site is same-site (the port is not part of a site)
    assert check(API, req(origin="http://api.localhost:5173")).allow


def test_a_browser_same_site_claim_is_checked_against_origin() -> None:
    # A browser that counted every *.localhost name as one site must not let evil in.
    v = check(API, req(origin="http://evil.localhost:62893", sec_fetch_site="same-site"))
    assert not v.allow
    ok = check(SHOP_API, req("api.shop.localhost:62893", origin="http://web.shop.localhost:62893",
                             sec_fetch_site="same-site"))  # fmt: skip
    assert ok.allow


def test_routes_of_one_project_share_a_site_and_other_projects_do_not() -> None:
    same = req("api.shop.localhost:62893", origin="http://web.shop.localhost:62893")
    assert check(SHOP_API, same).allow
    other = req("api.shop.localhost:62893", origin="http://web.blog.localhost:62893")
    assert not check(SHOP_API, other).allow
    bare = req("api.shop.localhost:62893", origin="http://shop.localhost:62893")
    assert check(SHOP_API, bare).allow  # shop.localhost is the project's own site


def test_scheme_counts_in_the_origin_fallback() -> None:
    v = check(API, req(origin="https://api.localhost:62893"))
    assert not v.allow
    assert check(API, req(origin="https://api.localhost:62893", scheme="https")).allow


def test_safe_methods_and_non_browser_clients_pass() -> None:
    for method in ("GET", "HEAD", "OPTIONS"):
        assert check(API, req(method=method, origin="http://evil.example")).allow
    assert check(API, req()).allow  # curl: neither Origin nor Sec-Fetch-Site
    assert check(API, req(method="DELETE")).allow
    assert check(API, req(sec_fetch_site="same-origin", origin="http://api.localhost:62893")).allow
    assert check(API, req(sec_fetch_site="none")).allow  # typed by the user


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "PROPFIND"])
def test_every_state_changing_method_is_guarded(method: str) -> None:
    assert not check(API, req(method=method, origin="http://evil.example")).allow


def test_cross_site_websocket_handshakes_are_refused() -> None:
    v = check(API, req(method="GET", upgrade=True, origin="http://evil.example"))
    assert (v.allow, v.status) == (False, 403)
    assert "WebSocket" in v.message
    assert check(API, req(method="GET", upgrade=True, origin="http://api.localhost")).allow
    assert check(API, req(method="GET", upgrade=True)).allow  # a script's WebSocket client


def test_a_null_origin_is_refused() -> None:
    assert not check(API, req(origin="null")).allow
    assert not check(API, req(method="GET", upgrade=True, origin="null")).allow


def test_opt_outs() -> None:
    open_route = Route("api.localhost", "http://127.0.0.1:3000", allow_cross_site=True)
    assert check(open_route, req(origin="http://evil.example", sec_fetch_site="cross-site")).allow
    listed = Route(
        "api.localhost", "http://127.0.0.1:3000", allow_origins=("http://localhost:5173",)
    )
    assert check(listed, req(origin="http://LOCALHOST:5173", sec_fetch_site="cross-site")).allow
    assert not check(listed, req(origin="http://localhost:5174", sec_fetch_site="cross-site")).allow


def test_a_private_network_preflight_from_a_public_page_is_refused() -> None:
    pna = req(method="OPTIONS", origin="https://evil.example", private_network=True)
    v = check(API, pna)
    assert (v.allow, v.status, v.reason) == (False, 403, "private-network")
    assert "Private Network Access" in v.message
    assert check(
        API, req(method="OPTIONS", origin="http://web.localhost", private_network=True)
    ).allow
    listed = Route(
        "api.localhost", "http://127.0.0.1:3000", allow_origins=("https://evil.example",)
    )
    assert check(listed, pna).allow


def test_a_service_route_names_the_run_flag() -> None:
    svc = Route("api.localhost", "http://127.0.0.1:3000", service_id="abc")
    v = check(svc, req(origin="http://evil.localhost", sec_fetch_site="cross-site"))
    assert "homeport run --allow-origin http://evil.localhost -- CMD" in v.message


def test_same_origin_stays_stricter_than_the_default() -> None:
    strict = Route("api.shop.localhost", "http://127.0.0.1:3000", same_origin=True)
    same_site = req("api.shop.localhost:62893", origin="http://web.shop.localhost:62893")
    assert check(SHOP_API, same_site).allow
    assert not check(strict, same_site).allow


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("http://localhost:5173", "http://localhost:5173"),
        ("HTTP://Web.Localhost:80/", "http://web.localhost"),
        ("https://x.localhost:443", "https://x.localhost"),
        ("localhost:5173", None),
        ("http://localhost:5173/path", None),
        ("ftp://x", None),
    ],
)
def test_normalize_origin(text: str, expected: str | None) -> None:
    assert guard.normalize_origin(text) == expected
