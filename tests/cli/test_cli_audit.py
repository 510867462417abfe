"""``homeport audit`` through the CLI: text, --json, --sarif, --fail-on, TTY progress,
bad usage. The target is a small in-process HTTP server that allows any Origin (CORS *)
and any Host, on a loopback port of its own."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

Cli = Callable[..., Any]


class _Open(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<title>open dev server</title>"
        self.send_response(200)
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Open)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _mine(doc: dict[str, Any], port: int) -> list[tuple[str, str]]:
    return sorted(
        (f["rule"], f["severity"])
        for f in doc["findings"]
        if f["port"] == port and f["address"] == "127.0.0.1"
    )


def test_json(cli: Cli, port: int) -> None:
    r = cli("audit", "--port", str(port), "--no-outside", "--json")
    assert r.status == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["version"] == 1
    assert _mine(doc, port) == [("cors-any-origin", "medium"), ("dns-rebinding", "medium")]
    (x,) = [x for x in doc["listeners"] if x["proto"] == "tcp" and x["address"] == "127.0.0.1"]
    assert x["service"]["service"] == "http"
    assert x["service"]["title"] == "open dev server"
    assert x["probed_at"] == f"127.0.0.1:{port}"
    assert doc["outside"]["verified"] is False


def test_text(cli: Cli, port: int) -> None:
    r = cli("audit", "--port", str(port), "--no-outside")
    assert r.status == 0
    assert r.stdout.startswith("homeport audit: ")
    assert f"127.0.0.1:{port}/tcp" in r.stdout
    assert "MEDIUM   HTTP server on" in r.stdout
    assert "Access-Control-Allow-Origin: *" in r.stdout
    assert "fix:      refuse foreign Host and Origin headers" in r.stdout
    assert r.stderr == ""  # no progress when not on a terminal


@pytest.mark.parametrize(("threshold", "status"), [("medium", 1), ("MEDIUM", 1), ("high", 0)])
def test_fail_on(cli: Cli, port: int, threshold: str, status: int) -> None:
    r = cli("audit", "--port", str(port), "--no-outside", "--fail-on", threshold)
    assert r.status == status


def test_sarif_file_and_stdout(cli: Cli, port: int, tmp_path: Path) -> None:
    out = tmp_path / "audit.sarif"
    r = cli("audit", "--port", str(port), "--no-outside", "--sarif", str(out))
    assert r.status == 0
    assert "homeport audit:" in r.stdout  # text still goes to stdout
    doc = json.loads(out.read_text())
    assert doc["version"] == "2.1.0"
    rules = {res["ruleId"] for res in doc["runs"][0]["results"]}
    assert {"cors-any-origin", "dns-rebinding"} <= rules
    r = cli("audit", "--port", str(port), "--no-outside", "--sarif", "-")
    assert json.loads(r.stdout)["version"] == "2.1.0"


def test_progress_on_a_tty(cli: Cli, port: int) -> None:
    r = cli("audit", "--port", str(port), "--no-outside", tty=True)
    assert r.status == 0
    assert "audit: 1/" in r.stderr
    assert "listeners probed" in r.stderr


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--fail-on", "severe"], "unknown severity 'severe' (accepted: info, low, medium"),
        (["--port", "0"], "port out of range: 0"),
        (["--port", "http"], "not a port number: 'http'"),
        (["--probe-address", "127.0.0.1"], "--probe-address '127.0.0.1': give one of this host"),
        (["--timeout", "0"], "--timeout 0.0: accepted 0.05 to 30 seconds"),
        (["--probe-address", "192.0.2.9", "--no-outside"], "contradict each other"),
    ],
)
def test_bad_usage_is_one_line(cli: Cli, argv: list[str], words: str) -> None:
    r = cli("audit", *argv)
    assert r.status == 2
    assert words in r.stderr
    assert "Traceback" not in r.stderr
    assert r.stderr.count("\n") <= 2


def test_nothing_listening(cli: Cli) -> None:
    import socket

    with socket.socket() as s:  # a port that was just free, without listening on it
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
        r = cli("audit", "--port", str(free), "--no-outside")
    assert r.status == 1
    assert f"nothing listens on port {free}" in r.stderr


def test_help_teaches(cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    r = cli("audit", "--help")
    text = r.stdout + capsys.readouterr().out  # argparse prints help to sys.stdout itself
    assert r.status == 0
    assert "homeport audit --fail-on high" in text
    assert "--json prints" in text
    assert "127.0.0.1.nip.io" in text
