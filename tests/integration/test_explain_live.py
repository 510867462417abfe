"""explain and doctor against real sockets, real clients' errors, and real firewall rules
(the latter inside a throwaway network namespace)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from homeport.explain import explain

needs_node = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
needs_netns = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in ("unshare", "nft", "ip", "curl")),
    reason="needs root and unshare, nft, ip, curl for a private network namespace",
)


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port nothing listens on, and nobody else can take while the test runs: a TCP
    socket bound without SO_REUSEADDR and never listening holds it, and connect() to it is
    refused. (A bind(0)-and-close port can be taken by a parallel test meanwhile.)"""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])


@needs_node
def test_node_refused_on_v6_while_server_is_on_v4(sockhost: Callable[..., Any]) -> None:
    host, port = None, 0
    for _ in range(10):
        host = sockhost([{"proto": "tcp", "addr": "127.0.0.1"}])
        port = host.ports[0]
        # Hold [::1]:port (bound, not listening) so no parallel test listens there meanwhile.
        guard = socket.socket(socket.AF_INET6)
        try:
            guard.bind(("::1", port))
            break
        except OSError:
            guard.close()
    else:
        pytest.fail("no port free on both 127.0.0.1 and ::1 after 10 tries")
    with guard:
        node = subprocess.run(
            ["node", "-e", f"require('net').connect({port}, '::1')"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        e = explain(node.stderr)
    assert "ECONNREFUSED" in node.stderr
    assert e.parsed.tool == "node"
    assert e.diagnosis[0].id == "refused.family"
    assert f"pid {host.pids[0]}" in e.diagnosis[0].summary
    assert any("dns-result-order=ipv4first" in s for s in e.next_steps)
    assert [x.pids for x in e.facts.listeners] == [(host.pids[0],)]


def test_in_use_names_every_owner_of_a_forked_server(sockhost: Callable[..., Any]) -> None:
    host = sockhost([{"proto": "tcp", "addr": "127.0.0.1", "fork": True}])
    port = host.ports[0]
    with socket.socket() as s, pytest.raises(OSError, match="in use") as info:
        s.bind(("127.0.0.1", port))
    text = f"OSError: {info.value}"
    e = explain(text, at=f"127.0.0.1:{port}")
    assert e.diagnosis[0].id == "in-use.held"
    for pid in host.pids:
        assert f"pid {pid}" in e.diagnosis[0].summary


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_refused_on_a_closed_port(closed_port: int) -> None:
    port = closed_port
    curl = subprocess.run(
        ["curl", "-sS", f"http://127.0.0.1:{port}/"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    e = explain(curl.stderr)
    assert (e.parsed.tool, e.parsed.port) == ("curl", port)
    assert e.diagnosis[0].id == "refused.nothing"


def test_dual_stack_listener_serves_localhost(sockhost: Callable[..., Any]) -> None:
    host = sockhost([{"proto": "tcp", "addr": "::", "v6only": 0}])
    e = explain(f"localhost:{host.ports[0]}")
    assert e.diagnosis[0].id == "address.listening"
    assert set(e.serving) == set(e.destinations)


def test_not_available_tests_the_address_for_real() -> None:
    e = explain("Error: listen EADDRNOTAVAIL: address not available 192.0.2.99:3000")
    assert e.facts.bindable is False
    assert e.diagnosis[0].id == "not-available.not-local"
    e = explain("Error: connect EADDRNOTAVAIL 127.0.0.1:3000")
    assert e.facts.bindable is True
    assert e.diagnosis[0].id == "not-available.bindable-now"


_IN_NETNS = r"""
import json, subprocess, sys
def sh(*a): subprocess.run(a, check=True, capture_output=True)
sh("ip", "link", "set", "lo", "up")
for cmd in sys.argv[2:]:
    sh("sh", "-c", cmd)
mode = sys.argv[1]
if mode == "timeout":
    curl = subprocess.run(["curl", "-sS", "--connect-timeout", "1", "http://127.0.0.1:5555/"],
                          capture_output=True, text=True)
    out = subprocess.run([sys.executable, "-m", "homeport", "explain", "--json", curl.stderr],
                         capture_output=True, text=True)
else:
    out = subprocess.run([sys.executable, "-m", "homeport", "doctor", "--json"],
                         capture_output=True, text=True)
print(json.dumps({"status": out.returncode, "out": out.stdout, "err": out.stderr}))
"""


def _in_netns(mode: str, *commands: str) -> dict[str, Any]:
    run = subprocess.run(
        ["unshare", "-n", sys.executable, "-c", _IN_NETNS, mode, *commands],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    res: dict[str, Any] = json.loads(run.stdout)
    res["json"] = json.loads(res["out"]) if res["out"].strip() else None
    return res


_TABLE = "nft add table inet hp"
_INPUT = "nft add chain inet hp in '{ type filter hook input priority 0; policy %s; }'"


@pytest.mark.root
@needs_netns
def test_loopback_timeout_points_at_the_drop_rule() -> None:
    res = _in_netns(
        "timeout", _TABLE, _INPUT % "accept", "nft add rule inet hp in iif lo tcp dport 5555 drop"
    )
    assert res["status"] == 0, res["err"]
    j = res["json"]
    assert j["error"]["kind"] == "timeout"
    assert j["diagnosis"][0]["id"] == "timeout.loopback"
    assert any("dport 5555 drop" in r for r in j["live"]["firewall_lo"])


@pytest.mark.root
@needs_netns
def test_doctor_fails_when_input_policy_drops_loopback() -> None:
    res = _in_netns(
        "doctor", _TABLE, _INPUT % "drop", "nft add rule inet hp in tcp dport 22 accept"
    )
    assert res["status"] == 1, res["err"]
    checks = {c["id"]: c for c in res["json"]["checks"]}
    assert checks["firewall.lo"]["status"] == "fail"
    assert "iif lo accept" in checks["firewall.lo"]["fix"]
    assert checks["loopback.interface"]["status"] == "ok"


@pytest.mark.root
@needs_netns
def test_doctor_passes_firewall_with_lo_accepted() -> None:
    res = _in_netns("doctor", _TABLE, _INPUT % "drop", "nft add rule inet hp in iif lo accept")
    checks = {c["id"]: c for c in res["json"]["checks"]}
    assert checks["firewall.lo"]["status"] == "ok"


def test_doctor_degrades_without_firewall_tools(tmp_path: Any) -> None:
    """No nft, no iptables-save on PATH: the firewall check says skip, nothing crashes."""
    env = {k: v for k, v in os.environ.items() if k != "PATH"}
    env["PATH"] = str(tmp_path)  # an empty directory
    run = subprocess.run(
        [sys.executable, "-m", "homeport", "doctor", "--json", "--only", "firewall.lo"],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    check = json.loads(run.stdout)["checks"][0]
    assert check["status"] == "skip"
    assert "nft not installed" in check["summary"]


def test_doctor_portable_loopback_reader_agrees_with_linux_reader() -> None:
    """psutil's view (used where there is no /proc) and the sysfs/ioctl view agree here."""
    from homeport.doctor.gather import loopback, loopback_portable

    portable, linux = loopback_portable(), loopback()
    assert portable.exists
    assert linux.exists
    assert portable.up is True
    assert linux.up is True
    assert "127.0.0.1" in portable.ipv4
    assert "127.0.0.1" in linux.ipv4
    assert ("::1" in portable.ipv6) == ("::1" in linux.ipv6)
