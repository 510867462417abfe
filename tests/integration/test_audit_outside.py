"""The outside-in probe, as root: a namespace + veth aimed only at an address of this test's
own veth interface (198.18.0.0/15). One listener on 0.0.0.0 (reachable), one on 127.0.0.1
(not), one on 0.0.0.0 behind an nftables drop rule in the test's own table (blocked).
Teardown checks that no namespace, veth, nft table or process is left behind, also after
Ctrl-C, SIGTERM and SIGKILL."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from homeport.audit import AuditConfig, audit, outside
from homeport.inventory import listeners

pytestmark = pytest.mark.root


def _sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=20)


def _requirements() -> None:
    if os.geteuid() != 0:
        pytest.skip("the namespace probe needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN)")
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (iproute2 / nftables)")


def _ours_left(pid: int) -> list[str]:
    names = _sh("ip", "netns", "list").stdout.split()
    links = [x["ifname"] for x in json.loads(_sh("ip", "-j", "link", "show").stdout or "[]")]
    return [n for n in names + links if n.startswith((f"hpaudit-{pid}-", f"hpa{pid}"))]


@dataclass
class Lab:
    address: str
    reachable: int
    loopback: int
    dropped: int
    table: str


def _listen(host: str) -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, 0))
    s.listen(16)
    return s


@pytest.fixture
def lab() -> Iterator[Lab]:
    _requirements()
    tag = f"{os.getpid() % 100000}{random.randrange(100)}"
    dummy, table = f"hpd{tag}", f"hpaudit_test_{tag}"
    address = f"198.18.{random.randrange(200, 255)}.{random.randrange(2, 250)}"
    socks = [_listen("0.0.0.0"), _listen("127.0.0.1"), _listen("0.0.0.0")]
    ports = [s.getsockname()[1] for s in socks]
    try:
        # A veth pair (the kernel here may lack the dummy driver); only its address matters.
        _sh("ip", "link", "add", dummy, "type", "veth", "peer", "name", dummy + "p")
        _sh("ip", "addr", "add", f"{address}/32", "dev", dummy)
        _sh("ip", "link", "set", dummy, "up")
        _sh("ip", "link", "set", dummy + "p", "up")
        rules = (
            f"table inet {table} {{\n chain input {{\n"
            f"  type filter hook input priority 0; policy accept;\n"
            f"  ip daddr {address} tcp dport {ports[2]} drop\n }}\n}}\n"
        )
        subprocess.run(["nft", "-f", "-"], input=rules, text=True, check=True, timeout=20)
        yield Lab(address, ports[0], ports[1], ports[2], table)
    finally:
        for s in socks:
            s.close()
        _sh("nft", "delete", "table", "inet", table, check=False)
        _sh("ip", "link", "del", dummy, check=False)  # takes its peer with it
        assert table not in _sh("nft", "list", "tables").stdout
        assert dummy not in _sh("ip", "-br", "link").stdout
        assert _ours_left(os.getpid()) == []


def _mine(lab: Lab) -> list:  # type: ignore[type-arg]
    ports = {lab.reachable, lab.loopback, lab.dropped}
    return [
        x
        for x in listeners(tcp=True, udp=False)
        if x.port in ports and x.address in ("0.0.0.0", "127.0.0.1")
    ]


def test_reachable_loopback_and_dropped(lab: Lab) -> None:
    report = audit(
        AuditConfig(probe_timeout=0.5, probe_addresses=(lab.address,), web=False),
        listeners=_mine(lab),
    )
    assert report.outside.verified
    assert report.outside.addresses == (lab.address,)
    status = {x.listener.port: x.exposure.status for x in report.listeners}
    assert status == {lab.reachable: "reachable", lab.loopback: "loopback", lab.dropped: "blocked"}
    found = {(f.port, f.rule, f.severity) for f in report.findings}
    assert found == {
        (lab.reachable, "exposed-reachable", "high"),
        (lab.dropped, "exposed-blocked", "info"),
    }
    (reach,) = [f for f in report.findings if f.port == lab.reachable]
    assert f"{lab.address}:{lab.reachable}" in reach.evidence[0].probe
    assert reach.evidence[0].answer == "reachable"
    attempts = {(a.address, a.port): a.reach for a in report.outside.attempts}
    assert attempts[(lab.address, lab.loopback)] == "refused"
    assert attempts[(lab.address, lab.dropped)] == "timeout"
    assert _ours_left(os.getpid()) == []


def _child(lab: Lab) -> subprocess.Popen[str]:
    # The dropped port makes the probe wait its full timeout: time to interrupt it.
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "homeport",
            "audit",
            "--port",
            str(lab.dropped),
            "--probe-address",
            lab.address,
            "--timeout",
            "8",
            "--no-web",
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _wait_namespace(pid: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and proc.poll() is None:
        if any(n.startswith(f"hpaudit-{pid}-") for n in _sh("ip", "netns", "list").stdout.split()):
            return
        time.sleep(0.02)  # bounded poll for an external fact (the namespace appearing)
    raise AssertionError("the audit never created its namespace")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_removes_the_namespace(lab: Lab, sig: signal.Signals) -> None:
    proc = _child(lab)
    try:
        _wait_namespace(proc.pid, proc)
        proc.send_signal(sig)
        proc.communicate(timeout=30)
        assert proc.returncode == 130
        assert _ours_left(proc.pid) == []
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()


def test_killed_audit_is_swept_by_the_next(lab: Lab) -> None:
    proc = _child(lab)
    try:
        _wait_namespace(proc.pid, proc)  # it exists; SIGKILL gives no chance to clean up
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    # The next audit sweeps namespaces whose PID is gone (an audit running in another test
    # worker may get there first: same code, same result).
    outside.sweep_stale()
    # The kernel frees a deleted namespace, and the veth pair in it, from a work queue: the
    # host-side link may outlive `ip netns del` by a moment (seen once in ~10 full runs).
    deadline = time.monotonic() + 10
    while _ours_left(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)  # bounded poll for an external fact (the kernel's cleanup)
    assert _ours_left(proc.pid) == []


def _redis(lab: Lab, bind: str, protected: bool) -> tuple[subprocess.Popen[bytes], int]:
    redis = shutil.which("redis-server")
    if redis is None:
        pytest.skip("redis-server is not installed (Debian package; .ci/run installs it)")
    import portpicker

    port = portpicker.pick_unused_port()
    proc = subprocess.Popen(
        [
            redis,
            "--port",
            str(port),
            "--bind",
            bind,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            "/tmp",
            "--protected-mode",
            "yes" if protected else "no",
        ],
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 15
    while True:  # bounded connect loop: the accept is the readiness signal
        with socket.socket() as s:
            if s.connect_ex((bind if bind != "0.0.0.0" else "127.0.0.1", port)) == 0:
                return proc, port
        assert time.monotonic() < deadline, "redis-server never listened"
        assert proc.poll() is None, "redis-server exited"
        time.sleep(0.02)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(10)


def test_redis_protected_mode_answers_loopback_only(lab: Lab) -> None:
    # No password, protected-mode on, bound to all interfaces: loopback gets +PONG, a
    # client from another address gets -DENIED. Not critical, but still a finding.
    proc, port = _redis(lab, "0.0.0.0", protected=True)
    try:
        mine = [x for x in listeners(port=port, udp=False) if x.address == "0.0.0.0"]
        report = audit(
            AuditConfig(probe_timeout=0.5, probe_addresses=(lab.address,), web=False),
            listeners=mine,
        )
    finally:
        _stop(proc)
    ident = report.listeners[0].identity
    assert ident is not None
    assert (ident.service, ident.auth, ident.remote_auth) == ("redis", "open", "protected")
    assert {(f.rule, f.severity) for f in report.findings} == {
        ("exposed-reachable", "high"),
        ("unauthenticated", "medium"),
    }
    (auth,) = [f for f in report.findings if f.rule == "unauthenticated"]
    assert "loopback clients only" in auth.title
    assert auth.evidence[1].answer.startswith("-DENIED")


def test_redis_without_protection_on_a_lan_address_is_critical(lab: Lab) -> None:
    proc, port = _redis(lab, lab.address, protected=False)
    try:
        mine = [x for x in listeners(port=port, udp=False) if x.address == lab.address]
        report = audit(
            AuditConfig(probe_timeout=0.5, probe_addresses=(lab.address,), web=False),
            listeners=mine,
        )
    finally:
        _stop(proc)
    assert report.listeners[0].target == f"{lab.address}:{port}"
    assert {(f.rule, f.severity) for f in report.findings} == {
        ("exposed-reachable", "critical"),
        ("unauthenticated", "critical"),
    }
