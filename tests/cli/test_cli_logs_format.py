"""How ``homeport logs --access`` shows a request: the scheme and HTTP/2 are visible."""

from __future__ import annotations

import io

from homeport.cli.env import Env
from homeport.cli.logs import format_record
from homeport.gateway.contract import AccessRecord


def line(**fields: object) -> str:
    env = Env(stdout=io.StringIO(), stderr=io.StringIO(), stdout_isatty=False, color=False)
    base = AccessRecord(0.0, "127.0.0.1", 40000, "app.localhost:62893", "GET", "/x", 200, 0, 5,
                        1.0, "app.localhost")  # fmt: skip
    return format_record(env, base._replace(**fields)._asdict())


def test_plain_http11_line_has_no_scheme_or_protocol_mark() -> None:
    out = line()
    assert " app.localhost:62893/x " in out
    assert "https://" not in out
    assert " h2" not in out


def test_https_h2_line_says_both() -> None:
    out = line(protocol="h2", tls=True)
    assert " https://app.localhost:62893/x " in out
    assert out.split()[-1] == "h2"
