"""The fleet contract: real ``homeport ls --json`` and ``homeport audit --json`` outputs, from
the real executable, validate against docs/schema/*.schema.json (JSON Schema 2020-12), and
a broken document does not."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema
import pytest

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schema"


def schema(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(data)
    return data


def validate(doc: Any, name: str) -> None:
    jsonschema.Draft202012Validator(schema(name)).validate(doc)


def homeport(*argv: str) -> tuple[int, Any]:
    exe = Path(sys.executable).with_name("homeport")
    done = subprocess.run(
        [str(exe), *argv], capture_output=True, text=True, timeout=120, check=False
    )
    return done.returncode, json.loads(done.stdout)


def test_ls_json_matches_its_schema(sockhost: Callable[..., Any]) -> None:
    # Something on every interface (an "attention" entry), IPv6 both ways, UDP, a fork.
    host = sockhost(
        [
            {"proto": "tcp", "addr": "0.0.0.0", "fork": True},
            {"proto": "tcp", "addr": "::", "v6only": 0},
            {"proto": "udp", "addr": "::1", "v6only": 1},
            {"proto": "tcp", "addr": "127.0.0.1"},
        ]
    )
    status, doc = homeport("ls", "--json")
    assert status == 0
    validate(doc, "ls")
    mine = [x for x in doc["listeners"] if host.pids[0] in x["pids"]]
    assert len(mine) == 4
    assert any(a["port"] == host.ports[0] for a in doc["attention"])
    broken = copy.deepcopy(doc)
    del broken["listeners"][0]["exposure"]
    with pytest.raises(jsonschema.ValidationError, match="exposure"):
        validate(broken, "ls")


class _Open(BaseHTTPRequestHandler):
    """An HTTP server that answers any Host and any Origin: audit findings to validate."""

    def do_GET(self) -> None:
        body = b"<title>open</title>"
        self.send_response(200)
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def open_server() -> Iterator[int]:
    server = ThreadingHTTPServer(("0.0.0.0", 0), _Open)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_audit_json_matches_its_schema(open_server: int) -> None:
    status, doc = homeport("audit", "--port", str(open_server), "--no-outside", "--json")
    assert status == 0
    validate(doc, "audit")
    rules = {f["rule"] for f in doc["findings"]}
    assert {"dns-rebinding", "cors-any-origin", "exposed-unverified"} <= rules
    assert doc["listeners"][0]["service"]["service"] == "http"
    broken = copy.deepcopy(doc)
    broken["findings"][0]["severity"] = "catastrophic"
    with pytest.raises(jsonschema.ValidationError, match="catastrophic"):
        validate(broken, "audit")
