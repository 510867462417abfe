"""Real Chromium over HTTPS through the gateway: with a test CA in the NSS database of a
temporary HOME (``certutil``, Debian ``libnss3-tools``), ``https://app.localhost:PORT`` loads
with no certificate interstitial over HTTP/2; with an empty database it is refused.

The CA here is the tests' own throwaway one (``tests/integration/tls_support.py``); the trust
installation of homeport's real CA is ``homeport trust``'s (issue 12, another branch)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import CHROMIUM, CHROMIUM_ARGS

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from gateway_support import Gateway, backend, gateway
from tls_support import CertFiles, make_cert

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed"),
    pytest.mark.skipif(shutil.which("certutil") is None, reason="libnss3-tools is not installed"),
]


@pytest.fixture
def tls_gateway(tmp_path: Path) -> Iterator[tuple[Gateway, CertFiles]]:
    cert = make_cert(tmp_path)
    with backend() as (port, _state):
        routes = [{"name": "app.localhost", "target": f"http://127.0.0.1:{port}"}]
        spec = {"tls": {"cert": str(cert.cert), "key": str(cert.key)}}
        with gateway(tmp_path, routes, **spec) as gw:
            yield gw, cert


def nss_home(root: Path, ca: Path | None) -> Path:
    """A HOME whose ``~/.pki/nssdb`` (where Chromium on Linux looks) trusts ``ca``, or nothing."""
    db = root / ".pki" / "nssdb"
    db.mkdir(parents=True)
    subprocess.run(["certutil", "-d", f"sql:{db}", "-N", "--empty-password"], check=True)
    if ca is not None:
        add = ["certutil", "-d", f"sql:{db}", "-A", "-t", "C,,", "-n", "homeport-test", "-i"]
        subprocess.run([*add, str(ca)], check=True)
    return root


def open_page(home: Path, url: str, port: int) -> tuple[str | None, str | None]:
    """(nextHopProtocol, error) of loading ``url`` in a fresh Chromium with HOME=home."""
    from playwright.sync_api import Error, sync_playwright

    args = [*CHROMIUM_ARGS, f"--host-resolver-rules=MAP app.localhost:{port} 127.0.0.1:{port}"]
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), args=args, env={"HOME": str(home)}
        )
        try:
            page: Any = browser.new_page()
            try:
                page.goto(url, timeout=30_000)
            except Error as exc:
                return None, str(exc)
            protocol = page.evaluate(
                "performance.getEntriesByType('navigation')[0].nextHopProtocol"
            )
            return str(protocol), None
        finally:
            browser.close()


def test_page_loads_over_h2_when_nss_trusts_the_ca(
    tls_gateway: tuple[Gateway, CertFiles], tmp_path: Path
) -> None:
    gw, cert = tls_gateway
    home = nss_home(tmp_path / "trusted", cert.ca)
    url = f"https://app.localhost:{gw.port}/page"
    protocol, error = open_page(home, url, gw.port)
    assert error is None
    assert protocol == "h2"
    (record,) = [r for r in gw.records(at_least=1) if r["path"] == "/page"]
    assert (record["status"], record["protocol"], record["tls"]) == (200, "h2", True)


def test_page_is_refused_without_the_ca(
    tls_gateway: tuple[Gateway, CertFiles], tmp_path: Path
) -> None:
    gw, _cert = tls_gateway
    home = nss_home(tmp_path / "untrusted", None)
    protocol, error = open_page(home, f"https://app.localhost:{gw.port}/page", gw.port)
    assert protocol is None
    assert error is not None
    assert "ERR_CERT_AUTHORITY_INVALID" in error
