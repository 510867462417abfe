"""Audit against fakes of services without a Debian package, safe and unsafe: the exact
findings for each, and none where the configuration is safe.

Services that have no authentication at all (the Node inspector, Chrome's DevTools port,
Ollama, JDWP) keep their ``unauthenticated`` finding in the safe configuration: the safe
variant differs in that a web page can no longer reach them.
"""

from __future__ import annotations

from collections.abc import Callable

import audit_fakes as fakes
import pytest

from homeport.audit import AuditConfig, audit
from homeport.audit.run import AuditReport
from homeport.inventory import listeners

Expected = set[tuple[str, str]]


def _run(port: int) -> AuditReport:
    # Other processes may hold the same number (UDP, another address): audit the fake's own
    # TCP listener, as the inventory reports it.
    mine = [x for x in listeners(port=port) if x.proto == "tcp" and x.address == "127.0.0.1"]
    assert len(mine) == 1
    return audit(AuditConfig(port=port, outside=False), listeners=mine)


def _found(report: AuditReport) -> Expected:
    return {(f.rule, f.severity) for f in report.findings}


CASES: list[tuple[str, Callable[[bool, int], fakes.App], bool, str, str, Expected]] = [
    (
        "inspector-unsafe",
        fakes.inspector,
        False,
        "node-inspector",
        "open",
        {("unauthenticated", "high"), ("dns-rebinding", "high"), ("websocket-origin", "high")},
    ),
    (
        "inspector-safe",
        fakes.inspector,
        True,
        "node-inspector",
        "open",
        {("unauthenticated", "high")},
    ),
    (
        "cdp-unsafe",
        fakes.cdp,
        False,
        "chrome-devtools",
        "open",
        {("unauthenticated", "high"), ("dns-rebinding", "high"), ("websocket-origin", "high")},
    ),
    ("cdp-safe", fakes.cdp, True, "chrome-devtools", "open", {("unauthenticated", "high")}),
    (
        "jupyter-unsafe",
        fakes.jupyter,
        False,
        "jupyter",
        "open",
        {("unauthenticated", "high"), ("dns-rebinding", "high")},
    ),
    ("jupyter-safe", fakes.jupyter, True, "jupyter", "protected", set()),
    (
        "mcp-unsafe",
        fakes.mcp,
        False,
        "mcp",
        "open",
        {("unauthenticated", "medium"), ("dns-rebinding", "high"), ("text-plain-jsonrpc", "high")},
    ),
    ("mcp-safe", fakes.mcp, True, "mcp", "protected", set()),
    (
        "ollama-unsafe",
        fakes.ollama,
        False,
        "ollama",
        "open",
        {("unauthenticated", "low"), ("dns-rebinding", "medium"), ("cors-any-origin", "medium")},
    ),
    ("ollama-safe", fakes.ollama, True, "ollama", "open", {("unauthenticated", "low")}),
    (
        "openai-unsafe",
        fakes.openai,
        False,
        "openai-compatible",
        "open",
        {("unauthenticated", "low"), ("dns-rebinding", "medium")},
    ),
    ("openai-safe", fakes.openai, True, "openai-compatible", "protected", set()),
    (
        "docker-unsafe",
        fakes.docker,
        False,
        "docker",
        "open",
        {("unauthenticated", "high"), ("dns-rebinding", "high")},
    ),
    (
        "etcd-unsafe",
        fakes.etcd,
        False,
        "etcd",
        "open",
        {("unauthenticated", "medium"), ("dns-rebinding", "high")},
    ),
    ("etcd-safe", fakes.etcd, True, "etcd", "protected", set()),
    (
        "vite-unsafe",
        fakes.vite,
        False,
        "vite",
        "unknown",
        {("dns-rebinding", "medium"), ("websocket-origin", "medium")},
    ),
    ("vite-safe", fakes.vite, True, "vite", "unknown", set()),
    (
        "prefix-allowlist",
        fakes.weak_allowlist,
        False,
        "http",
        "unknown",
        {("host-allowlist-bypass", "medium")},
    ),
]


@pytest.mark.parametrize(
    ("make", "safe", "service", "auth", "expected"),
    [pytest.param(*c[1:], id=c[0]) for c in CASES],
)
def test_fake_http_service(
    make: Callable[[bool, int], fakes.App],
    safe: bool,
    service: str,
    auth: str,
    expected: Expected,
) -> None:
    with fakes.serve_http(make, safe) as port:
        report = _run(port)
    assert len(report.listeners) == 1
    ident = report.listeners[0].identity
    assert ident is not None
    assert (ident.service, ident.auth) == (service, auth)
    assert _found(report) == expected
    for f in report.findings:
        assert f.evidence, f"{f.rule} has no evidence"
        assert f.fix
        assert f.port == port


def test_jdwp_handshake_is_unauthenticated() -> None:
    with fakes.serve_jdwp() as port:
        report = _run(port)
    ident = report.listeners[0].identity
    assert ident is not None
    assert ident.service == "jdwp"
    assert _found(report) == {("unauthenticated", "high")}
    ev = report.findings[0].evidence[0]
    assert ev.probe == "JDWP-Handshake"
    assert ev.answer == "JDWP-Handshake"


def test_bypass_names_the_forms_that_got_through() -> None:
    with fakes.serve_http(fakes.weak_allowlist, False) as port:
        report = _run(port)
    (f,) = report.findings
    assert f.title.endswith(
        f"refuses rebind.homeport.invalid but accepts 127.0.0.1.nip.io:{port}, localhost6:{port}"
    )


def test_rebinding_evidence_names_the_foreign_host() -> None:
    with fakes.serve_http(fakes.jupyter, False) as port:
        report = _run(port)
    (f,) = [f for f in report.findings if f.rule == "dns-rebinding"]
    assert f"rebind.homeport.invalid:{port}" in f.title
    assert f"Host: rebind.homeport.invalid:{port}" in f.evidence[1].probe
    assert f.evidence[1].probe.startswith("GET /api/kernels HTTP/1.1")
    assert f.evidence[1].answer.startswith("HTTP/1.")
