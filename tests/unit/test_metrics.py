"""homeport.metrics: batches folded into counters, the exposition a scrape returns (parsed back
with prometheus-client's own parser), and who may read ``/metrics``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from homeport import __version__
from homeport.daemon.config import DaemonConfig
from homeport.daemon.control import ControlApp
from homeport.daemon.state import Gateway
from homeport.gateway.contract import AccessRecord, ControlRequest
from homeport.metrics import (
    BUCKETS,
    BUCKETS_MS,
    ListenerCounts,
    Metrics,
    RequestStats,
    Sources,
    audit_counts,
    code_class,
    count_rows,
    load_audit,
    save_audit,
    service_metrics,
)
from homeport.store import Store


def rec(route: str | None, status: int, ms: float = 3.0, reason: str | None = None) -> AccessRecord:
    return AccessRecord(
        1.0, "127.0.0.1", 40000, "h", "GET", "/p?secret", status, 0, 0, ms, route, reason
    )


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def metrics(audit: dict[str, Any] | None = None, services: Any = ()) -> Metrics:
    return Metrics(
        Sources(
            open_connections=lambda: 4,
            routes=lambda: 2,
            dropped=lambda: 0,
            services=lambda: services,
            audit=lambda: audit,
        ),
        ListenerCounts(read=lambda: {("tcp", "loopback"): 1998, ("tcp", "all-interfaces"): 2}).get,
    )


def test_code_class() -> None:
    assert [code_class(s) for s in (101, 200, 304, 404, 502, 0)] == [
        "1xx", "2xx", "3xx", "4xx", "5xx", "none",
    ]  # fmt: skip


def test_batches_become_counters_histograms_and_upstream_errors() -> None:
    m = metrics()
    m.requests.observe([rec("api.localhost", 200, 0.5), rec("api.localhost", 201, 30.0)])
    m.requests.observe(
        [
            rec("api.localhost", 502, 1.0, "upstream-refused"),
            rec(None, 404, 0.1, "unknown-host"),
            rec(None, 200, 0.1, "control"),
            rec("ws.localhost", 101, 2000.0),
        ]
    )
    got = samples(m.render().decode())
    req = "homeport_gateway_requests_total"
    h11 = ("protocol", "http/1.1")
    assert got[(req, (("code", "2xx"), h11, ("route", "api.localhost")))] == 2
    assert got[(req, (("code", "5xx"), h11, ("route", "api.localhost")))] == 1
    assert got[(req, (("code", "4xx"), h11, ("route", "(none)")))] == 1
    assert got[(req, (("code", "2xx"), h11, ("route", "(gateway)")))] == 1
    assert got[(req, (("code", "1xx"), ("protocol", "websocket"), ("route", "ws.localhost")))] == 1
    dur = "homeport_gateway_request_duration_seconds"
    api = ("route", "api.localhost")
    assert got[(dur + "_bucket", (("le", "0.001"), api))] == 2  # 0.5 ms and 1.0 ms
    assert got[(dur + "_bucket", (("le", "0.025"), api))] == 2
    assert got[(dur + "_bucket", (("le", "0.05"), api))] == 3
    assert got[(dur + "_bucket", (("le", "+Inf"), api))] == 3
    assert got[(dur + "_count", (api,))] == 3
    assert abs(got[(dur + "_sum", (api,))] - 0.0315) < 1e-9
    err = "homeport_gateway_upstream_errors_total"
    assert got[(err, (("reason", "upstream-refused"), api))] == 1
    assert got[("homeport_gateway_open_connections", ())] == 4
    assert got[("homeport_build_info", (("version", __version__),))] == 1
    assert got[("homeport_listeners", (("exposure", "loopback"), ("proto", "tcp")))] == 1998
    # No label carries a path, a client address or a port.
    text = m.render().decode()
    assert "/p" not in text
    assert "40000" not in text
    assert "127.0.0.1" not in text


def test_bucket_bounds_agree_in_both_units() -> None:
    assert tuple(b * 1000 for b in BUCKETS) == BUCKETS_MS


def test_snapshot_is_a_copy() -> None:
    stats = RequestStats()
    stats.observe([rec("a.localhost", 200)])
    snap = stats.snapshot()
    stats.observe([rec("a.localhost", 200)])
    assert snap.requests[("a.localhost", "2xx", "http/1.1")] == 1
    assert sum(snap.durations["a.localhost"][:-1]) == 1  # the last item is the sum


def test_services_by_latest_state_and_restarts() -> None:
    records = [("web", "exited", 1.0), ("web", "exited", 2.0), ("web", "running", 3.0)]
    records += [("db", "running", 1.0)]
    states, restarts = service_metrics(records)
    assert states == {"running": 2}
    assert restarts == {"web": 2, "db": 0}
    got = samples(metrics(services=records).render().decode())
    assert got[("homeport_services", (("state", "running"),))] == 2
    assert got[("homeport_service_restarts_total", (("service", "web"),))] == 2


def test_the_last_audit_is_kept_and_shown(tmp_path: Path) -> None:
    report = {
        "findings": [
            {"rule": "unauthenticated", "severity": "critical"},
            {"rule": "unauthenticated", "severity": "critical"},
            {"rule": "dns-rebinding", "severity": "medium"},
        ]
    }
    save_audit(report, tmp_path)
    last = load_audit(tmp_path)
    assert last is not None
    assert last["findings"] == audit_counts(report)["findings"]
    got = samples(metrics(audit=last).render().decode())
    fam = "homeport_audit_findings"
    assert got[(fam, (("kind", "unauthenticated"), ("severity", "critical")))] == 2
    assert got[(fam, (("kind", "dns-rebinding"), ("severity", "medium")))] == 1
    assert ("homeport_audit_last_run_timestamp_seconds", ()) in got
    assert load_audit(tmp_path / "nowhere") is None


def test_rows_are_counted_by_proto_and_exposure() -> None:
    from homeport.web.sampler import ListenerRow

    rows = [ListenerRow("tcp", 4, "127.0.0.1", p, p, "loopback") for p in (1, 2)]
    rows.append(ListenerRow("udp", 6, "::", 53, 9, "all-interfaces"))
    assert count_rows(rows) == {("tcp", "loopback"): 2, ("udp", "all-interfaces"): 1}


def test_listener_counts_are_cached() -> None:
    calls: list[int] = []

    def read() -> dict[tuple[str, str], int]:
        calls.append(1)
        return {("udp", "lan"): len(calls)}

    cache = ListenerCounts(ttl=3600, read=read)
    assert cache.get() == {("udp", "lan"): 1}
    assert cache.get() == {("udp", "lan"): 1}
    assert len(calls) == 1


class _App:
    def __init__(self, tmp: Path) -> None:
        self.app = ControlApp(
            DaemonConfig(state_dir=tmp, port=62893),
            Gateway(Store(tmp / "homeport.db"), lambda _t: None),
            "tok",
        )
        self.app.metrics = metrics()

    def get(self, client: str, *headers: tuple[str, str]) -> int:
        hs = (("host", "homeport.localhost:62893"), *headers)
        req = ControlRequest("GET", "/metrics", "", hs, b"", client)
        return asyncio.run(self.app.handle(req)).status


def test_metrics_open_on_loopback_token_elsewhere(tmp_path: Path) -> None:
    a = _App(tmp_path)
    assert a.get("127.0.0.1") == 200
    assert a.get("::1") == 200
    assert a.get("192.168.1.20") == 401
    assert a.get("192.168.1.20", ("authorization", "Bearer tok")) == 200
    assert a.get("127.0.0.1", ("origin", "http://evil.example")) == 403
    a.app.metrics = None
    assert a.get("127.0.0.1") == 404


def test_requests_are_labelled_with_the_record_protocol() -> None:
    m = metrics()
    h2_record = rec("api.localhost", 200)._replace(protocol="h2", tls=True)
    m.requests.observe([h2_record, rec("api.localhost", 200)])
    got = samples(m.render().decode())
    req = "homeport_gateway_requests_total"
    api = ("route", "api.localhost")
    assert got[(req, (("code", "2xx"), ("protocol", "h2"), api))] == 1
    assert got[(req, (("code", "2xx"), ("protocol", "http/1.1"), api))] == 1
