"""Real Chromium against a TLS server on ``server_context``: with the CA trusted by
``homeport trust`` in a temporary HOME's ~/.pki/nssdb, https://app.localhost:PORT loads with
no certificate error; after ``homeport trust --uninstall`` Chromium refuses it."""

from __future__ import annotations

import os
import shutil
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.integration.https_support import serving

from homeport.tls import Authority, ca, server_context
from homeport.tls.authority import utcnow
from homeport.tls.names import LeafSpec

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed"),
    pytest.mark.skipif(shutil.which("certutil") is None, reason="certutil (libnss3-tools) absent"),
]

Cli = Callable[..., Any]


@pytest.fixture
def https_port(state_dir: Path, free_port: int) -> Iterator[int]:
    """The server on server_context(state_dir): leaves from the local CA per SNI name."""
    with serving(server_context(state_dir), free_port) as port:
        yield port


ROGUE_NAME = "bank.example"


@pytest.fixture
def rogue_port(state_dir: Path, https_port: int, free_port_factory: Any) -> Iterator[int]:
    """What a leaked CA key could do: a leaf for a name outside the root's constraints,
    signed by the same key. Chromium is told that name lives on 127.0.0.1."""
    root = Authority(state_dir).root()
    leaf = ca.build_leaf(root, LeafSpec(ROGUE_NAME, (ROGUE_NAME,)), utcnow())
    (state_dir / "rogue.pem").write_bytes(leaf.cert_pem())
    (state_dir / "rogue.key").write_bytes(leaf.key_pem())
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(state_dir / "rogue.pem", state_dir / "rogue.key")
    with serving(ctx, free_port_factory()) as port:
        yield port


def load(home: Path, urls: list[str], profile: Path) -> list[tuple[str | None, str]]:
    """(error, page text) of each navigation in a fresh Chromium whose HOME is ``home``."""
    from playwright.sync_api import Error, sync_playwright

    out: list[tuple[str | None, str]] = []
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            # The test server speaks HTTP/1.1 only; server_context offers h2 for the gateway.
            # The rogue name resolves to loopback only: nothing leaves this machine.
            args=[
                *CHROMIUM_ARGS,
                "--disable-http2",
                f"--host-resolver-rules=MAP {ROGUE_NAME} 127.0.0.1",
            ],
            env={**os.environ, "HOME": str(home)},
        )
        try:
            page = ctx.new_page()
            for url in urls:
                try:
                    page.goto(url, timeout=60_000)
                except Error as exc:
                    out.append((str(exc), ""))
                else:
                    out.append((None, page.inner_text("#ok")))
        finally:
            ctx.close()
    return out


def test_chromium_trusts_the_ca_after_trust_and_not_after_uninstall(
    https_port: int, rogue_port: int, tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    sysd = tmp_path / "sys"
    sysd.mkdir()
    monkeypatch.setenv("HOME", str(home))
    # The system store is not what Chromium reads on Linux; point it at a throwaway one.
    monkeypatch.setenv("HOMEPORT_SYSTEM_CA_DIR", str(sysd))
    monkeypatch.setenv("HOMEPORT_SYSTEM_CA_UPDATE", "true")
    monkeypatch.setenv("HOMEPORT_SYSTEM_CA_BUNDLE", str(sysd / "bundle.pem"))
    url = f"https://app.localhost:{https_port}/"
    rogue = f"https://{ROGUE_NAME}:{rogue_port}/"

    got = cli("trust")
    assert "nss:chromium" in got.stdout
    assert (home / ".pki" / "nssdb" / "cert9.db").exists()
    (error, text), (rogue_error, _) = load(home, [url, rogue], tmp_path / "profile-1")
    assert error is None, error
    assert text == "served over TLS"
    # Trusted, and still refused for a name its constraints do not permit (the rogue leaf
    # differs from the good one only in its name; Chromium's verifier reports a violated
    # NameConstraints as ERR_CERT_INVALID, not as an unknown issuer).
    assert rogue_error is not None
    assert "ERR_CERT_INVALID" in rogue_error, rogue_error

    assert cli("trust", "--uninstall").status == 0
    [(error, _)] = load(home, [url], tmp_path / "profile-2")
    assert error is not None
    assert "ERR_CERT_AUTHORITY_INVALID" in error
