"""Pure routing: Host -> route / control / 404 / foreign (DNS-rebinding guard)."""

from __future__ import annotations

import pytest

from homeport.gateway.contract import Route, RouteTable
from homeport.gateway.routing import Router, Target, is_local_name, parse_target, points_at

ROUTES = RouteTable(
    (
        Route("app.localhost", "http://127.0.0.1:3000"),
        Route("api.shop.localhost", "http://[::1]:4000"),
        Route("shop.localhost", "http://localhost:5000", wildcard=True),
        Route("a.shop.localhost", "unix:/run/a.sock", wildcard=True),
        Route("docs.localhost", "http://127.0.0.1:6000", allow_hosts=("docs.test",)),
        Route("broken.localhost", "http://example.com:80"),
    )
)


@pytest.fixture
def router() -> Router:
    return Router(ROUTES, gateway_names=("homeport.localhost",))


@pytest.mark.parametrize(
    ("host", "route"),
    [
        ("app.localhost", "app.localhost"),
        ("APP.localhost:62893", "app.localhost"),
        ("app.localhost.", "app.localhost"),
        ("api.shop.localhost", "api.shop.localhost"),  # exact beats wildcard
        ("x.shop.localhost", "shop.localhost"),
        ("y.x.shop.localhost", "shop.localhost"),
        ("b.a.shop.localhost", "a.shop.localhost"),  # longest wildcard suffix wins
        ("docs.test:62893", "docs.localhost"),  # allow_hosts alias
    ],
)
def test_route_lookup(router: Router, host: str, route: str) -> None:
    d = router.decide(host, 62893)
    assert d.kind == "route"
    assert d.route is not None
    assert d.route.name == route


def test_wildcard_does_not_match_its_apex(router: Router) -> None:
    assert router.decide("shop.localhost", 62893).kind == "unknown"


@pytest.mark.parametrize(
    ("host", "kind"),
    [
        ("homeport.localhost", "control"),
        ("homeport.localhost:9", "control"),
        ("127.0.0.1:62893", "control"),
        ("[::1]:62893", "control"),
        ("localhost", "control"),
        ("127.0.0.1:3000", "unknown"),  # a loopback IP with another port is not the gateway
        ("nothing.localhost", "unknown"),
        ("evil.example", "foreign"),  # DNS rebinding: a public name pointed at 127.0.0.1
        ("192.168.1.5:62893", "foreign"),
        ("bad host", "bad-host"),
        ("a:b:c", "bad-host"),
        ("broken.localhost", "bad-target"),  # targets off loopback are never proxied
    ],
)
def test_decisions(router: Router, host: str, kind: str) -> None:
    assert router.decide(host, 62893).kind == kind


def test_host_check_off_and_allowlist() -> None:
    off = Router(ROUTES, host_check=False)
    assert off.decide("evil.example", 1).kind == "unknown"
    allowed = Router(ROUTES, allow_hosts=("myvm.lan", "192.168.1.5"))
    assert allowed.decide("myvm.lan:9999", 1).kind == "unknown"
    assert allowed.decide("other.lan", 1).kind == "foreign"
    # The address the gateway was exposed on, with its port, is the gateway's home there.
    assert allowed.decide("192.168.1.5:62893", 62893).kind == "control"


def test_parse_target() -> None:
    assert parse_target("http://127.0.0.1:3000") == Target("127.0.0.1:3000", ("127.0.0.1",), 3000)
    assert parse_target("http://[::1]:4000/").hosts == ("::1",)
    assert parse_target("localhost:5000").hosts == ("127.0.0.1", "::1")
    assert parse_target("unix:/run/a.sock").path == "/run/a.sock"
    for bad in ("http://example.com:80", "http://127.0.0.1", "unix:rel.sock", "http://10.0.0.1:80"):
        with pytest.raises(ValueError, match="target"):
            parse_target(bad)


def test_is_local_name() -> None:
    assert is_local_name("a.b.localhost")
    assert is_local_name("127.0.0.2")
    assert is_local_name("::1")
    assert not is_local_name("localhost.example.com")
    assert not is_local_name("10.0.0.1")


def test_points_at_the_gateway_itself() -> None:
    bound = [("127.0.0.1", 62893), ("::1", 62893)]
    assert points_at(parse_target("http://localhost:62893"), bound)
    assert points_at(parse_target("http://[::1]:62893"), bound)
    assert not points_at(parse_target("http://127.0.0.1:3000"), bound)
    assert not points_at(parse_target("unix:/x"), bound)
