"""Explain an address, a URL or a pasted error message, for this machine, now.

TARGET is an address (127.0.0.1:62893, [::1]:5432, localhost:3000, 0.0.0.0:8000,
127.0.0.2:80, 3000), a URL (http://api.localhost:8080/), or an error text as a tool printed
it. Use '-' (or pipe it in) to read the error from stdin. homeport says what the address and
the port are, what listens there now (which families, which owner, whether `localhost`
resolves here to the family it is bound on), what went wrong, and what to do next.

Error texts it recognises (the rule table is data: homeport/explain/rules.py):
  ECONNREFUSED / "Connection refused"   curl, Node, Python, requests, psql, redis-cli, jdb,
                                        IntelliJ, Go, Chrome (ERR_CONNECTION_REFUSED)
  EADDRINUSE / "Address already in use" Node, Python, uvicorn, vite, Docker, Go
  EACCES on a port below the unprivileged start, EADDRNOTAVAIL, ETIMEDOUT,
  ENOTFOUND for *.localhost, and IntelliJ's "Disconnected from the target VM, address: ...".
  ECONNRESET / "Connection reset by peer" / "Empty reply from server" / "socket hang up" /
  "server closed the connection unexpectedly"
                                        curl, Node, Python, requests, httpx, urllib, psql,
                                        redis-cli, Chrome, Java, Go
  EACCES / EPERM from connect() (also on Unix sockets), told apart from bind's EACCES
  EHOSTUNREACH / "No route to host"     on loopback: a firewall reject rule
  and the clients of the audit's servers: MySQL/MariaDB (2002/2003 over TCP and its socket),
  MongoDB (pymongo, the Node driver), Elasticsearch, memcached, redis-py, psycopg, Docker's
  CLI and SDK (its unix:// socket), Jupyter Server, Ollama and OpenAI clients; and asyncio,
  ssh, wget, socat, git, Java's Socket/HttpClient/BindException

With `-- CMD ARGS`, homeport runs the command, passes its output through as it comes, and
when it fails explains its last error, with the listeners read the moment it exited; the
explanation goes to stderr (--json: one JSON object {"command", "status", "explanation"}),
and the exit status is the command's (127 when it cannot be found).

examples:
  homeport explain -- psql -h 127.0.0.1 -p 5433
  homeport explain -- npm run dev
  homeport explain "connect ECONNREFUSED ::1:3000"
  homeport explain '[::1]:5432'
  homeport explain http://api.localhost:62893/
  npm run dev 2>&1 | tail -20 | homeport explain -
  homeport explain "OSError: [Errno 98] Address already in use" --at :8000

A text no rule names is still read: its address in any form tools print (host:port,
[v6]:port, ('h', p), host h port p, |ip|:port, h/ip:port, URLs, unix: paths), and its
failure class from errno names and numbers (Linux, macOS/BSD, Windows: [Errno 111], (61),
os error 54, code 10061, WSAECONNREFUSED) or the words clients print ("actively refused",
"Connect call failed", "Can't connect to").

When a connection was refused or a name not found, "did you mean" lists the listeners most
likely meant: the same service on its default port or nearby (the audit's read-only
fingerprints, 1 s at most, loopback only), a dev server that moved to the next free port,
the other loopback family, the closest gateway route name.

exit status: 0 when explained; 2 when the input is neither an address nor a known error.

--json prints one object:
  {"input": str, "kind": "address"|"error",
   "error": null | {"rule", "tool", "kind", "meaning",
                    "evidence": str|null (what classed a text no rule names)},
   "target": {"host": str|null, "name": str|null, "port": int|null,
              "path": str|null (a Unix socket), "port_assumed": bool (the tool's default)},
   "address": {"class", "resolves_to": [str]|null, "resolve_error", "localhost": [str],
               "notes": [str]},
   "port": {"number", "service", "notes": [str]},
   "live": {"listeners": [LISTENER as in 'homeport ls --json'], "destinations": [str],
            "serving": [str], "time_wait": int, "firewall_lo": [str],
            "tls": bool|null, "cgroup_connect_hooks": [str], "security_modules": [str],
            "landlock_abi": int|null, "notes": [str]},
   "diagnosis": [{"id", "summary", "detail": [str]}],
   "did_you_mean": [{"target": str, "why": str}] (most likely first),
   "next_steps": [str]}
"kind" of an error is one of refused, in-use, permission, not-available, timeout,
not-found, vm-disconnected, reset, connect-denied, unreachable; "diagnosis[].id" is a key
of rules.DIAGNOSES.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

from homeport.cli import render
from homeport.cli.env import Env

if TYPE_CHECKING:
    from homeport.explain import Explanation

HELP = "explain an address or an error message: what is live there and what to do"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "target",
        metavar="TARGET",
        nargs="*",
        help="address, URL or error text ('-' or a pipe: read it from stdin)",
    )
    p.add_argument(
        "--at",
        metavar="HOST:PORT",
        help="the address, when the error text does not name it (':PORT' or 'PORT' too)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace, env: Env) -> int:
    from homeport.errors import UsageError
    from homeport.explain import explain

    argv = getattr(args, "command_argv", None)
    if argv is not None and not _is_text(argv):
        if args.target:
            raise UsageError("give either TARGET or '-- CMD ARGS', not both")
        return run_command(argv, args, env)
    text = " ".join(argv if argv is not None else args.target)
    if text.strip() in ("", "-"):
        if text.strip() == "" and env.stdin_isatty:
            raise UsageError("nothing to explain: give an address, a URL or an error text")
        text = env.stdin.read()
    e = explain(text, args.at)
    if args.json:
        render.dump_json(env, e.to_json())
    else:
        env.out(render_text(env, e))
    return 0


def _is_text(argv: list[str]) -> bool:
    """``explain -- "connect ECONNREFUSED ::1:3000"``: one argument with spaces that is no
    program is an error text (the older meaning of ``--``), not a command to run."""
    import shutil

    return len(argv) == 1 and any(c.isspace() for c in argv[0]) and shutil.which(argv[0]) is None


def run_command(argv: list[str], args: argparse.Namespace, env: Env) -> int:
    """``homeport explain -- CMD ARGS``: run it, pass its output through, and when it fails
    explain its last error with the facts read right after it exited. Exit status: its own."""
    import shlex
    import time

    from homeport.explain import runcmd

    if not argv:
        from homeport.errors import UsageError

        raise UsageError("nothing to run after '--' (homeport explain -- CMD ARGS)")
    try:
        outcome = runcmd.run(argv, _sink(env.stdout), _sink(env.stderr))
    except runcmd.CannotRun as exc:
        env.err(f"homeport: {exc.message}")
        return exc.status
    if outcome.status == 0 or outcome.interrupted:
        return outcome.status
    e = runcmd.explain_failure(outcome, args.at)
    late = (time.monotonic() - outcome.exited_at) * 1000
    cmd = shlex.join(argv)
    if e is None:
        env.err(
            f"homeport: `{cmd}` exited with status {outcome.status}; its output names no"
            " connection or port error homeport recognises"
        )
        return outcome.status
    if args.json:
        import json

        doc = {"command": argv, "status": outcome.status, "explanation": e.to_json()}
        env.err(json.dumps(doc))
    else:
        env.err("")
        env.err(
            render.paint(env, f"homeport: `{cmd}` exited with status {outcome.status}", "bold")
            + f"; its last error, with what was live within {late:.0f} ms of its exit:"
        )
        env.err(render_text(env, e))
    return outcome.status


def _sink(stream: TextIO) -> Callable[[bytes], None]:
    """Write bytes through as they come: to the stream's binary buffer when it has one (a
    terminal, a pipe), else decoded (tests' StringIO)."""
    buf = getattr(stream, "buffer", None)
    if buf is not None:

        def raw(data: bytes) -> None:
            buf.write(data)
            buf.flush()

        return raw

    def text(data: bytes) -> None:
        stream.write(data.decode("utf-8", "replace"))

    return text


def render_text(env: Env, e: Explanation) -> str:
    p = e.parsed
    lines: list[str] = []
    if p.rule is not None:
        from homeport.explain.rules import TOOL_NAMES

        tool = TOOL_NAMES.get(p.rule.tool, p.rule.tool)
        lines.append(render.paint(env, f"{tool}: {p.rule.kind}", "bold") + f"  (rule {p.rule.id})")
        if e.meaning:
            lines.append(f"  {e.meaning}")
        if p.evidence:
            lines.append(f"  (no rule names this text; recognised by {p.evidence})")
    else:
        lines.append(render.paint(env, p.text.strip(), "bold"))
    for title, body in (("address", e.address), ("port", e.port), ("live now", e.live)):
        lines.append("")
        lines.append(render.paint(env, title, "bold"))
        lines.extend(f"  {line}" for line in body)
    lines.append("")
    lines.append(render.paint(env, "diagnosis", "bold"))
    for d in e.diagnosis:
        lines.append("  " + render.paint(env, d.summary, "yellow"))
        lines.extend(f"  {line}" for line in d.detail)
    if e.did_you_mean:
        lines.append("")
        lines.append(render.paint(env, "did you mean", "bold"))
        lines.extend(f"  {m.target}  {m.why}" for m in e.did_you_mean)
    lines.append("")
    lines.append(render.paint(env, "next steps", "bold"))
    lines.extend(f"  {n}. {step}" for n, step in enumerate(e.next_steps, 1))
    return "\n".join(lines)
