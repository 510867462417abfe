"""What an MCP client may do, decided without touching the machine (pure).

An agent is a user homeport does not fully trust (issue 14). Three rules, each a function here:

- **run**: ``run_service`` starts a command only when its command line matches a pattern of the
  allowlist given at start (``--allow-run 'npm run *'``, fnmatch), or the list is ``any``.
- **kill**: ``kill_port`` and ``stop_service`` touch only processes of services that this
  session or homeport started; with ``--allow-kill any``, also other processes of the same user,
  but never PID 1, the gateway itself or this server.
- **scrub**: no tool output carries a route's secret, the daemon's token, a ``homeport_token``
  query value, the password of a ``user:password@`` URL or an ``Authorization`` value.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

KillScope = Literal["session", "any"]

#: The placeholder that stands where a secret was.
REDACTED = "[redacted]"

#: Keys whose values are secrets wherever they appear in a JSON answer.
SECRET_KEYS = frozenset(
    {"token", "secret", "password", "passwd", "authorization", "cookie", "env", "environ"}
)
# `?homeport_token=…` (and `/login?token=…`) links, `--password=…` arguments; `user:password@host`
# URLs; headers.
_QUERY_SECRET = re.compile(
    r"((?:homeport_token|token|password|passwd|secret|api_key|apikey)=)[^&\s#'\"]+", re.I
)
#: Command-line flags whose next argument is a secret (``mysql --password hunter2``).
SECRET_FLAGS = frozenset(
    {"--password", "--passwd", "--token", "--secret", "--api-key", "--auth-token", "--apikey"}
)
_USERINFO = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^/\s:@]+:)[^@/\s]+@", re.I)
_AUTH_VALUE = re.compile(r"\b(authorization:\s*(?:bearer|basic)\s+)\S+", re.I)


@dataclass(frozen=True, slots=True)
class McpConfig:
    """Options of one ``homeport mcp`` server, built once by the CLI (and tests)."""

    #: fnmatch patterns over the command line; ("any",) allows every command.
    allow_run: tuple[str, ...] = ()
    allow_kill: KillScope = "session"
    #: Leave services and leases running when the client disconnects.
    keep: bool = False

    @property
    def run_any(self) -> bool:
        return "any" in self.allow_run


def command_line(argv: Sequence[str]) -> str:
    """The one string the allowlist is matched against: the arguments shell-quoted."""
    return shlex.join(argv)


def run_refusal(argv: Sequence[str], config: McpConfig) -> str | None:
    """Why ``argv`` may not run, or None when the allowlist admits it."""
    return line_refusal(command_line(argv), config)


def line_refusal(line: str, config: McpConfig) -> str | None:
    """The same for a command line as written (a project's ``cmd``, run by a shell)."""
    if config.run_any:
        return None
    if any(fnmatch.fnmatchcase(line, pattern) for pattern in config.allow_run):
        return None
    if not config.allow_run:
        return (
            f"refused to run {line!r}: this server allows no commands "
            "(start it with --allow-run 'PATTERN', e.g. --allow-run 'npm run *')"
        )
    allowed = ", ".join(repr(p) for p in config.allow_run)
    return f"refused to run {line!r}: it matches none of the allowed patterns ({allowed})"


@dataclass(frozen=True, slots=True)
class ProcessFacts:
    """What the kill rule needs to know about one process."""

    pid: int
    uid: int | None
    #: The id of the homeport service whose process group holds it, if any.
    service_id: str | None = None


def kill_refusal(
    p: ProcessFacts, config: McpConfig, *, my_uid: int, gateway_pid: int | None, me: int
) -> str | None:
    """Why process ``p`` may not be signalled, or None when it may."""
    if p.pid == 1:
        return "pid 1 is never signalled"
    if p.pid == me:
        return "this MCP server does not signal itself"
    if gateway_pid is not None and p.pid == gateway_pid:
        return "the homeport gateway is not stopped through MCP (use homeport down)"
    if p.service_id is not None:
        return None
    if config.allow_kill != "any":
        return (
            f"pid {p.pid} was started by neither this MCP session nor homeport "
            "(the server allows that only with --allow-kill any)"
        )
    if p.uid is None or p.uid != my_uid:
        return f"pid {p.pid} belongs to another user"
    return None


def scrub(value: Any, secrets: Iterable[str] = ()) -> Any:
    """A copy of the JSON value ``value`` with secrets replaced by ``[redacted]``: values under
    secret-named keys, every occurrence of a known secret string, and the secret parts of
    token links, ``user:password@`` URLs and Authorization headers."""
    known = tuple(sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True))
    return _scrub(value, known)


def scrub_json(value: Any, secrets: Iterable[str] = ()) -> tuple[Any, str]:
    """``(scrubbed value, its compact JSON text)``. The text is searched first: an answer with
    no secret-named key, no known secret and no secret-bearing pattern anywhere (nearly every
    answer) is returned as it is, without the walk and copy that ``scrub`` makes (15 ms for
    200 listeners, bench/bench_mcp.py)."""
    text = json.dumps(value, separators=(",", ":"))
    known = tuple(s for s in secrets if len(s) >= 6)
    lowered = text.lower()
    # Substring tests gate the regular expressions: each costs ~8 ms on 100 kB of text.
    suspect = (
        any(f'"{k}":' in lowered for k in SECRET_KEYS)
        or any(f'"{f}",' in lowered for f in SECRET_FLAGS)
        or any(s in text for s in known)
        or (_has_query_secret(lowered) and _QUERY_SECRET.search(text) is not None)
        or ("@" in text and _USERINFO.search(text) is not None)
        or ("authorization" in lowered and _AUTH_VALUE.search(text) is not None)
    )
    if not suspect:
        return value, text
    clean = scrub(value, known)
    return clean, json.dumps(clean, separators=(",", ":"))


def _scrub(value: Any, known: tuple[str, ...]) -> Any:
    if isinstance(value, str):
        return scrub_text(value, known)
    if isinstance(value, dict):
        return {k: (REDACTED if _secret_key(k, v) else _scrub(v, known)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        out = [_scrub(v, known) for v in value]
        for i in range(1, len(out)):  # an argv: the value after a secret flag
            before = value[i - 1]
            if isinstance(before, str) and before.lower() in SECRET_FLAGS:
                out[i] = REDACTED
        return out
    return value


def _secret_key(key: object, value: object) -> bool:
    return isinstance(key, str) and key.lower() in SECRET_KEYS and value not in (None, "", [], {})


def scrub_text(text: str, known: Iterable[str] = ()) -> str:
    for secret in known:
        if secret in text:
            text = text.replace(secret, REDACTED)
    lowered = text.lower()
    if _has_query_secret(lowered):
        text = _QUERY_SECRET.sub(rf"\g<1>{REDACTED}", text)
    if "@" in text:
        text = _USERINFO.sub(rf"\g<1>{REDACTED}@", text)
    if "authorization" in lowered:
        text = _AUTH_VALUE.sub(rf"\g<1>{REDACTED}", text)
    return text


def _has_query_secret(lowered: str) -> bool:
    return "=" in lowered and any(k in lowered for k in _QUERY_KEYS)


_QUERY_KEYS = ("token=", "password=", "passwd=", "secret=", "api_key=", "apikey=")
