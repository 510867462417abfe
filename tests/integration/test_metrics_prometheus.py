"""``/metrics`` scraped by a real Prometheus (Debian ``prometheus``): the request count this
test makes through the gateway comes back from a PromQL query on Prometheus's HTTP API.

Prometheus sends the target's ``host:port`` as ``Host``. ``homeport.localhost`` would need
Prometheus's own resolver (it is Go, and reads /etc/hosts) to know the name, and tests never
edit /etc/hosts: the target is ``127.0.0.1:PORT``, which the gateway takes as its own name
(a bare loopback IP with the gateway's port, gateway/routing.py)."""

from __future__ import annotations

import http.client
import json
import shutil
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from procutil import stop_popen
from prometheus_client.parser import text_string_to_metric_families
from test_daemon_lifecycle import Daemon, backend, daemon, request, wait_until

from homeport.daemon.client import Client

__all__ = ["backend", "daemon"]  # fixtures re-used from the lifecycle tests

PROMETHEUS = shutil.which("prometheus")


def _get(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=5) as resp:  # loopback only
        data: dict[str, Any] = json.loads(resp.read())
        return data


@pytest.fixture
def prometheus(
    tmp_path: Path, free_port_factory: Callable[[], int], daemon: Daemon
) -> Iterator[str]:
    if PROMETHEUS is None:
        pytest.skip("prometheus is not installed (Debian package prometheus; .ci/run installs it)")
    port = free_port_factory()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n"
        "scrape_configs:\n"
        "  - job_name: homeport\n"
        "    metrics_path: /metrics\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{daemon.config.port}']\n"
    )
    log = (tmp_path / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    log.close()  # the child has its own copy
    base = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool:
            try:
                with urllib.request.urlopen(f"{base}/-/ready", timeout=2) as resp:
                    return bool(resp.status == 200)
            except OSError:
                assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()[-2000:]
                return False

        assert wait_until(ready, 30), "prometheus did not become ready"
        yield base
    finally:
        stop_popen(proc)


def _query(base: str, promql: str) -> list[dict[str, Any]]:
    data = _get(f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": promql}))
    assert data["status"] == "success", data
    result: list[dict[str, Any]] = data["data"]["result"]
    return result


def test_prometheus_scrapes_the_request_count(
    daemon: Daemon, backend: int, prometheus: str
) -> None:
    client = Client.for_config(daemon.config)
    client.call("POST", "/api/routes", {"name": "app", "target": f"http://127.0.0.1:{backend}"})
    port = daemon.config.port
    made = 7
    for i in range(made):
        status, _ = request(port, "GET", f"/hello.txt?n={i}", host=f"app.localhost:{port}")
        assert status == 200
    status, _ = request(port, "GET", "/nothing-here", host=f"app.localhost:{port}")
    assert status == 404

    promql = 'sum by (code) (homeport_gateway_requests_total{route="app.localhost"})'
    found: dict[str, float] = {}

    def counted() -> bool:
        found.clear()
        for row in _query(prometheus, promql):
            found[row["metric"]["code"]] = float(row["value"][1])
        return found.get("2xx") == made and found.get("4xx") == 1

    assert wait_until(counted, 30), found
    # Prometheus saw the target healthy, under the bare loopback IP as Host.
    targets = _get(f"{prometheus}/api/v1/targets")["data"]["activeTargets"]
    assert [t["health"] for t in targets] == ["up"]
    hist = _query(
        prometheus,
        'homeport_gateway_request_duration_seconds_count{route="app.localhost"}',
    )
    assert float(hist[0]["value"][1]) == made + 1


def value(text: str, name: str, **labels: str) -> float:
    """One sample of an exposition, parsed by prometheus-client's parser (-1 when absent)."""
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == name and s.labels == labels:
                return float(s.value)
    return -1.0


def _scrape(port: int, host: str, headers: dict[str, str] | None = None) -> tuple[int, str, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/metrics", headers={"Host": host, **(headers or {})})
        resp = conn.getresponse()
        return resp.status, resp.getheader("content-type") or "", resp.read().decode()
    finally:
        conn.close()


def test_metrics_open_to_loopback_and_guarded_by_host_and_origin(daemon: Daemon) -> None:
    port = daemon.config.port
    status, ctype, body = _scrape(port, f"homeport.localhost:{port}")
    assert status == 200
    assert ctype.startswith("text/plain; version=0.0.4")
    assert "# TYPE homeport_gateway_requests_total counter" in body

    def own_listeners() -> bool:  # the daemon's own two, once its first sample is in
        body = _scrape(port, f"homeport.localhost:{port}")[2]
        return value(body, "homeport_listeners", exposure="loopback", proto="tcp") >= 2

    assert wait_until(own_listeners, 15)
    # A DNS-rebinding page arrives with its own name or origin: refused like the API.
    assert _scrape(port, f"evil.example:{port}")[0] in (403, 421)
    assert _scrape(port, f"homeport.localhost:{port}", {"Origin": "http://evil.example"})[0] == 403


def test_requests_are_counted_with_the_access_log_off(
    state_dir: Path, free_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from homeport.daemon.config import DaemonConfig
    from homeport.daemon.process import start_background

    monkeypatch.setenv("HOMEPORT_PORT", str(free_port))
    config = DaemonConfig.build(access_log=False)
    d = Daemon(config, int(start_background(config)["pid"]))
    try:
        for _ in range(3):
            request(free_port, "GET", "/x", host=f"nothing.localhost:{free_port}")

        def counted() -> bool:
            body = _scrape(free_port, f"127.0.0.1:{free_port}")[2]
            labels = {"code": "4xx", "protocol": "http/1.1", "route": "(none)"}
            return value(body, "homeport_gateway_requests_total", **labels) == 3

        assert wait_until(counted, 10)
        assert d.client.call("GET", "/api/access")["records"] == []
    finally:
        d.stop()
