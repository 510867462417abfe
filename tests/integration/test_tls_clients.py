"""Node, Python and curl as children of `homeport run` see them: with ``child_env``'s
variables they trust a server on ``server_context``; without, they refuse it. The server is
on loopback; the name ``app.localhost`` is given to each client with the address, and
clients speak HTTP/1.1 (the test server is http.server; ``server_context`` offers h2 too)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from https_support import PAGE, serving

from homeport.tls import Authority, child_env, server_context
from homeport.tls.env import write_bundle

#: What this machine may already set: stripped so each client starts from its defaults.
CA_VARIABLES = (
    "NODE_EXTRA_CA_CERTS",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "NIX_SSL_CERT_FILE",
)

NODE = """
const https = require('https');
const req = https.get({host: '127.0.0.1', servername: 'app.localhost', port: +process.argv[1],
                       path: '/', headers: {host: 'app.localhost'}}, res => {
  let body = ''; res.on('data', d => body += d); res.on('end', () => console.log(body));
});
req.on('error', e => { console.log('ERROR ' + e.code); process.exit(1); });
"""

PYTHON = """
import socket, ssl, sys
ctx = ssl.create_default_context()
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30) as raw:
    try:
        s = ctx.wrap_socket(raw, server_hostname="app.localhost")
    except ssl.SSLCertVerificationError as exc:
        print("ERROR", exc.verify_message)
        sys.exit(1)
    s.sendall(b"GET / HTTP/1.0\\r\\nHost: app.localhost\\r\\n\\r\\n")
    data = b""
    while chunk := s.recv(65536):  # HTTP/1.0: the server closes after the body
        data += chunk
    print(data.split(b"\\r\\n\\r\\n", 1)[1].decode())
"""


@pytest.fixture
def served(state_dir: Path, free_port: int, monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    system = next(
        (
            p
            for p in ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt")
            if os.path.isfile(p)
        ),
        None,
    )
    if system is None:
        pytest.skip("no system CA bundle to merge with")
    monkeypatch.setenv("HOMEPORT_SYSTEM_CA_BUNDLE", system)  # read only
    Authority(state_dir).root()
    write_bundle(state_dir)  # what `homeport trust` does for the env store
    with serving(server_context(state_dir), free_port) as port:
        yield port


def clients(port: int) -> dict[str, list[str]]:
    out = {"python": [sys.executable, "-c", PYTHON, str(port)]}
    if shutil.which("node"):
        out["node"] = ["node", "-e", NODE, str(port)]
    if shutil.which("curl"):
        out["curl"] = [
            *("curl", "-sS", "--http1.1", "--resolve", f"app.localhost:{port}:127.0.0.1"),
            f"https://app.localhost:{port}/",
        ]
    return out


def run_client(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)


def test_children_trust_the_gateway_with_child_env_and_not_without(
    served: int, state_dir: Path
) -> None:
    bare = {k: v for k, v in os.environ.items() if k not in CA_VARIABLES}
    with_ca = {**bare, **child_env(state_dir)}
    found = clients(served)
    for name, argv in found.items():
        ok = run_client(argv, with_ca)
        assert ok.returncode == 0, (name, ok.stdout, ok.stderr)
        assert PAGE.decode() in ok.stdout, name
        refused = run_client(argv, bare)
        assert refused.returncode != 0, (name, refused.stdout)
        assert PAGE.decode() not in refused.stdout
    assert "python" in found
